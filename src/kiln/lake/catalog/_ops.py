"""The offline catalog's operations, declared once (see :mod:`kiln.core.ops`)."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.lake._models import DatasetVersion
from kiln.lake.catalog._service import CatalogEntry

_SVC = "kiln.lake.catalog._service:CatalogService"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"catalog.{name}", method=method, path=path, role=role, service=_SVC, call=call, response=response, kind="catalog entry", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("list", "GET", "/v1/catalog", "viewer", "list", list[CatalogEntry]),
    _op("get", "GET", "/v1/catalog/{entry_id}", "viewer", "get", CatalogEntry),
    _op("import", "POST", "/v1/catalog/{entry_id}/import", "editor", "import_", DatasetVersion, body=("name",), status=201),
)
LIST, GET, IMPORT = ALL
