"""SDK: ``client.features`` (feature groups, records, the online store, training sets)."""

from __future__ import annotations

from typing import Any

from kiln.features import _ops as ops
from kiln.features._models import BatchGetResult, CompactResult, FeatureDefinition, FeatureGroup, FeatureRecord, IngestResult, RebuildResult, RecordIdentifier, StreamIngestResult, WriteResult
from kiln.lake._models import DatasetVersion
from kiln.sdk._base import Namespace

__all__ = ["Features"]


class Features(Namespace):
    """The feature store: SageMaker Feature Store's calls, on any transport."""

    def create(self, name: str, *, record_id: str, event_time: str, features: list[FeatureDefinition | dict[str, Any]] | None = None, dataset: str | None = None,
               description: str = "", tags: dict[str, str] | None = None, ttl: str | float | None = None, online: bool = True, ingest: bool = True) -> FeatureGroup:
        """Create a feature group from definitions, or from a dataset's schema (ingesting it unless ``ingest=False``)."""
        defs = None if features is None else [f if isinstance(f, FeatureDefinition) else FeatureDefinition.model_validate(f) for f in features]
        return self._call(ops.CREATE, name=name, record_id=record_id, event_time=event_time, features=defs, dataset=dataset, description=description, tags=tags, ttl=ttl, online=online, ingest=ingest)  # type: ignore[no-any-return]

    def update(self, name: str, *, features: list[FeatureDefinition | dict[str, Any]] | None = None, description: str | None = None, tags: dict[str, str] | None = None,
               ttl: str | float | None = None, online: bool | None = None) -> FeatureGroup:
        """Change a group; new features make a new version."""
        defs = None if features is None else [f if isinstance(f, FeatureDefinition) else FeatureDefinition.model_validate(f) for f in features]
        return self._call(ops.UPDATE, name=name, features=defs, description=description, tags=tags, ttl=ttl, online=online)  # type: ignore[no-any-return]

    def list(self) -> list[FeatureGroup]:
        return self._call(ops.LIST)  # type: ignore[no-any-return]

    def describe(self, ref: str) -> FeatureGroup:
        return self._call(ops.DESCRIBE, ref=ref)  # type: ignore[no-any-return]

    def delete(self, name: str) -> FeatureGroup:
        return self._call(ops.DELETE, name=name)  # type: ignore[no-any-return]

    def ingest(self, name: str, dataset: str) -> IngestResult:
        """Ingest a dataset version in bulk (offline, and the latest per id online)."""
        return self._call(ops.INGEST, name=name, dataset=dataset)  # type: ignore[no-any-return]

    def ingest_stream(self, name: str, stream: str, *, consumer: str | None = None, max_records: int = 100_000) -> StreamIngestResult:
        """Ingest a stream's new records for a named consumer, exactly once."""
        return self._call(ops.INGEST_STREAM, name=name, stream=stream, consumer=consumer, max_records=max_records)  # type: ignore[no-any-return]

    def put_record(self, name: str, record: dict[str, Any] | list[dict[str, Any]], *, ttl: str | float | None = None) -> WriteResult:
        """PutRecord: ``{feature: value}`` (or SageMaker's ``[{"FeatureName", "ValueAsString"}]``)."""
        return self.put_records(name, [record], ttl=ttl)

    def put_records(self, name: str, records: list[Any], *, ttl: str | float | None = None) -> WriteResult:
        """PutRecord for a batch: checked whole, then written whole."""
        return self._call(ops.PUT_RECORDS, name=name, records=records, ttl=ttl)  # type: ignore[no-any-return]

    def delete_record(self, name: str, record_id: Any, event_time: Any, *, mode: str = "soft") -> WriteResult:
        """DeleteRecord: ``mode="soft"`` (features nulled) or ``"hard"``; an ``is_deleted`` row offline either way."""
        return self.delete_records(name, [{"record_id": record_id, "event_time": event_time}], mode=mode)

    def delete_records(self, name: str, records: list[dict[str, Any]], *, mode: str = "soft") -> WriteResult:
        return self._call(ops.DELETE_RECORDS, name=name, records=records, mode=mode)  # type: ignore[no-any-return]

    def get_record(self, name: str, record_id: Any, *, features: list[str] | None = None) -> FeatureRecord:
        """GetRecord: the latest live record of ``record_id`` online."""
        return self._call(ops.GET_RECORD, name=name, record_id=str(record_id), features=features)  # type: ignore[no-any-return]

    def batch_get(self, identifiers: list[RecordIdentifier | dict[str, Any]]) -> BatchGetResult:
        """BatchGetRecord across groups: ``[{"feature_group", "record_ids", "features"}]``."""
        idents = [i if isinstance(i, RecordIdentifier) else RecordIdentifier.model_validate(i) for i in identifiers]
        return self._call(ops.BATCH_GET, identifiers=idents)  # type: ignore[no-any-return]

    def compact(self, name: str) -> CompactResult:
        return self._call(ops.COMPACT, name=name)  # type: ignore[no-any-return]

    def rebuild_online(self, name: str) -> RebuildResult:
        """Rebuild a group's online store from its offline store (the latest record per id)."""
        return self._call(ops.REBUILD_ONLINE, name=name)  # type: ignore[no-any-return]

    def to_dataset(self, name: str, *, output: str, n_recent: int | None = None, as_of: float | str | None = None, include_deleted: bool = False,
                   start: float | str | None = None, end: float | str | None = None) -> DatasetVersion:
        """A group's offline records as a dataset version: the N most recent per id, as of a time, in an event-time range."""
        return self._call(ops.TO_DATASET, name=name, output_dataset=output, n_recent=n_recent, as_of=as_of, include_deleted=include_deleted, start=start, end=end)  # type: ignore[no-any-return]

    def training_set(self, entities: Any, *, features: list[str], event_time_column: str = "event_time", output: str = "training-set",
                     as_of: float | str | None = None, include_deleted: bool = False, start: float | str | None = None, end: float | str | None = None) -> DatasetVersion:
        """A point-in-time training set as a new version of dataset ``output``.

        ``entities`` is a dataset reference, or a DataFrame / Arrow table (stored first as
        dataset ``<output>-entities``, so the result's lineage names it).
        """
        if not isinstance(entities, str):
            from kiln.sdk.datasets import Datasets

            entities = Datasets(self._t).ingest(f"{output}-entities"[:63], entities).ref
        return self._call(ops.TRAINING_SET, entities=entities, features=features, output_dataset=output, event_time_column=event_time_column,  # type: ignore[no-any-return]
                          as_of=as_of, include_deleted=include_deleted, start=start, end=end)
