"""SDK: ``client.catalog`` - the offline catalog of public datasets."""

from __future__ import annotations

from kiln.lake._models import DatasetVersion
from kiln.lake.catalog import CatalogEntry, CatalogService
from kiln.sdk._base import Namespace, seg

__all__ = ["Catalog"]


class Catalog(Namespace):
    """Real public datasets that ship inside installed packages; nothing is downloaded."""

    def list(self, *, available: bool | None = None) -> list[CatalogEntry]:
        """Every entry (``available=True``: only those whose package is installed)."""
        if self._local:
            return self._svc(CatalogService).list(available=available)
        params = {} if available is None else {"available": str(available).lower()}
        return [CatalogEntry.model_validate(e) for e in self._http("GET", "/v1/catalog", params=params)]

    def get(self, entry_id: str) -> CatalogEntry:
        if self._local:
            return self._svc(CatalogService).get(entry_id)
        return CatalogEntry.model_validate(self._http("GET", f"/v1/catalog/{seg(entry_id)}"))

    def import_(self, entry_id: str, *, name: str | None = None) -> DatasetVersion:
        """Make a catalog entry a Kiln dataset (default name: the entry's ``name``)."""
        if self._local:
            return self._svc(CatalogService).import_(entry_id, name=name)
        return DatasetVersion.model_validate(self._http("POST", f"/v1/catalog/{seg(entry_id)}/import", json={"name": name}))

    # ``import`` is a keyword; this alias reads better in scripts.
    load = import_

