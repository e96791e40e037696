"""The data lake: datasets (immutable Parquet versions) and SQL over them."""

from kiln.lake._models import Column, Dataset, DatasetFile, DatasetVersion, IngestOptions, SqlHistoryEntry
from kiln.lake.datasets import DatasetService, register as _register_gc

_register_gc()

__all__ = ["Column", "Dataset", "DatasetFile", "DatasetService", "DatasetVersion", "IngestOptions", "SqlHistoryEntry"]
