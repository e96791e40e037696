"""The offline store: append-only Parquet files per feature group, one folder per event date
(``features/<group id>/event_date=YYYY-MM-DD/part-*.parquet``), committed by metadata rows.

Every row carries the group's record identifier, its event time (``timestamp[us, UTC]``),
its features, and SageMaker's ``write_time``, ``api_invocation_time`` and ``is_deleted``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core._lazy import lazy
from kiln.core.storage import ObjectStore

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
else:
    duckdb = lazy("duckdb")
    pa = lazy("pyarrow")
    pc = lazy("pyarrow.compute")
    pq = lazy("pyarrow.parquet")

__all__ = ["OfflineFile", "duck_paths", "group_prefix", "write_partitions"]

TS = "timestamp[us, tz=UTC]"


class OfflineFile(dict):  # type: ignore[type-arg]
    """A written file, as its metadata row (key, event_date, rows, bytes, min/max times)."""


def group_prefix(group_id: str) -> str:
    return f"features/{group_id}"


def _date_key(group_id: str, date: str) -> str:
    return f"{group_prefix(group_id)}/event_date={date}/part-{uuid.uuid4().hex}.parquet"


def write_partitions(store: ObjectStore, group_id: str, table: pa.Table, event_col: str, version: int) -> list[OfflineFile]:
    """Write ``table`` as one Parquet file per event date; the files are not yet committed."""
    seconds = pc.divide(pc.cast(pc.cast(table[event_col], pa.timestamp("us", tz="UTC")), pa.int64()), 1_000_000)
    days = pc.floor(pc.divide(pc.cast(seconds, pa.float64()), 86400.0))
    out: list[OfflineFile] = []
    try:
        unique = pc.unique(days).to_pylist()
        for day in unique:
            part = table if len(unique) == 1 else table.filter(pc.equal(days, day))
            date = (dt.datetime(1970, 1, 1) + dt.timedelta(days=int(day))).strftime("%Y-%m-%d")
            key = _date_key(group_id, date)
            with store.open_write(key) as fh:
                pq.write_table(part, fh)
            out.append(_describe(store, key, part, event_col, date, version))
    except BaseException:
        for f in out:
            store.delete(f["key"])
        raise
    return out


def _describe(store: ObjectStore, key: str, part: pa.Table, event_col: str, date: str, version: int) -> OfflineFile:
    ev = pc.min_max(part[event_col])
    wt = pc.max(part["write_time"])
    size = store.fs.size(store.path(key))
    return OfflineFile(
        key=key, event_date=date, rows=part.num_rows, bytes=int(size), version=version,
        min_event=ev["min"].value / 1e6, max_event=ev["max"].value / 1e6, max_write=wt.value / 1e6,
    )


def copy_partitioned(con: duckdb.DuckDBPyConnection, store: ObjectStore, group_id: str, select: str, event_col: str, version: int, tmp_root: Path) -> list[OfflineFile]:
    """``COPY (select) ... PARTITION_BY (event_date)`` into staging, then into the store
    (moved on a local store, uploaded to S3): the bulk path, in DuckDB's bounded memory."""
    staging = Path(tempfile.mkdtemp(prefix="kiln-features-", dir=tmp_root))
    out: list[OfflineFile] = []
    try:
        con.execute(
            f"COPY (SELECT *, strftime({_q(event_col)}, '%Y-%m-%d') AS event_date FROM ({select})) TO '{staging}' "
            "(FORMAT parquet, PARTITION_BY (event_date), WRITE_PARTITION_COLUMNS false)"
        )
        for folder in sorted(staging.iterdir()):
            date = folder.name.removeprefix("event_date=")
            for i, path in enumerate(sorted(folder.glob("*.parquet"))):
                key = _date_key(group_id, date)
                meta = con.execute(
                    f"SELECT count(*), min(epoch_us({_q(event_col)})), max(epoch_us({_q(event_col)})), max(epoch_us(write_time)) FROM read_parquet('{path}')"
                ).fetchall()[0]
                assert meta is not None
                if store.capabilities.local_paths:
                    final = Path(store.path(key))
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, final)
                else:
                    store.put_file(key, path)
                out.append(OfflineFile(key=key, event_date=date, rows=int(meta[0]), bytes=int(store.fs.size(store.path(key))), version=version,
                                       min_event=meta[1] / 1e6, max_event=meta[2] / 1e6, max_write=meta[3] / 1e6))
    except BaseException:
        for f in out:
            store.delete(f["key"])
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def duck_paths(con: duckdb.DuckDBPyConnection, store: ObjectStore, keys: list[str]) -> str:
    """A DuckDB list literal of the files' paths (an S3 store is handed to DuckDB as an
    fsspec filesystem: httpfs cannot be loaded offline)."""
    if not keys:
        return "[]"
    if store.capabilities.local_paths:
        paths = [store.path(k) for k in keys]
    else:
        try:
            con.register_filesystem(store.fs)
        except duckdb.Error:
            pass  # registered already on this connection
        paths = ["s3://" + store.path(k) for k in keys]
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def new_tmp(home: Path) -> Path:
    tmp = home / "tmp" / "features"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp
