"""The lake's operations, declared once (see :mod:`kiln.core.ops`).

Ingest and bundle imports (uploads), exports, heads and SQL results (bytes in a
format the caller picks) are the special cases: hand-written routes in
``kiln.server.routes.datasets`` and ``kiln.server.routes.sql``.
"""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.lake._models import Dataset, DatasetVersion, SqlHistoryEntry

_DATASETS = "kiln.lake.datasets:DatasetService"

ALL = declare(
    Operation(name="datasets.list", method="GET", path="/v1/datasets", role="viewer", service=_DATASETS, call="list", response=list[Dataset]),
    Operation(name="datasets.get", method="GET", path="/v1/datasets/{ref}", role="viewer", service=_DATASETS, call="get", response=DatasetVersion, kind="dataset"),
    Operation(name="datasets.versions", method="GET", path="/v1/datasets/{name}/versions", role="viewer", service=_DATASETS, call="versions", response=list[DatasetVersion], kind="dataset"),
    Operation(name="datasets.delete", method="DELETE", path="/v1/datasets/{ref}", role="editor", service=_DATASETS, call="delete", response=list[int], kind="dataset",
              summary="Delete name@V, or every version of name; returns the version numbers removed."),
    Operation(name="datasets.verify", method="GET", path="/v1/datasets/{ref}/verify", role="viewer", service=_DATASETS, call="verify", response=DatasetVersion, kind="dataset"),
    Operation(name="sql.history", method="GET", path="/v1/sql/history", role="viewer", service="kiln.lake.sql:SqlService", call="history", response=list[SqlHistoryEntry]),
)
DATASETS_LIST, DATASETS_GET, DATASETS_VERSIONS, DATASETS_DELETE, DATASETS_VERIFY, SQL_HISTORY = ALL
