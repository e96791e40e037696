"""SDK: ``client.catalog`` - the offline catalog of public datasets."""

from __future__ import annotations

from kiln.lake._models import DatasetVersion
from kiln.lake.catalog import CatalogEntry
from kiln.lake.catalog import _ops as ops
from kiln.sdk._base import Namespace

__all__ = ["Catalog"]


class Catalog(Namespace):
    """Real public datasets that ship inside installed packages; nothing is downloaded."""

    def list(self, *, available: bool | None = None) -> list[CatalogEntry]:
        """Every entry (``available=True``: only those whose package is installed)."""
        return self._call(ops.LIST, available=available)  # type: ignore[no-any-return]

    def get(self, entry_id: str) -> CatalogEntry:
        """One entry: description, size, task, licence and source."""
        return self._call(ops.GET, entry_id=entry_id)  # type: ignore[no-any-return]

    def import_(self, entry_id: str, *, name: str | None = None) -> DatasetVersion:
        """Make a catalog entry a Kiln dataset (default name: the entry's ``name``)."""
        return self._call(ops.IMPORT, entry_id=entry_id, name=name)  # type: ignore[no-any-return]

    # ``import`` is a keyword; this alias reads better in scripts.
    load = import_
