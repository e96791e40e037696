"""Datasets: names with immutable, versioned Parquet versions."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, KilnError, NotFound, Unavailable
from kiln.core.names import Ref, check_name, parse_ref
from kiln.core.progress import Listener
from kiln.core.progress import Progress as Tracker
from kiln.core.storage import sha256_file
from kiln.core.workspace import Workspace
from kiln.lake import _tables as t
from kiln.lake._models import Column, Dataset, DatasetFile, DatasetVersion, IngestOptions
from kiln.lake._sources import duck_error, open_source, quote_ident, sql_str
from kiln.core._lazy import lazy

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
else:
    duckdb = lazy("duckdb")
    pa = lazy("pyarrow")
    pads = lazy("pyarrow.dataset")
    pq = lazy("pyarrow.parquet")

__all__ = ["DatasetService", "Progress"]

Progress = Listener  # the ingest callback: a fraction done, from 0 to 1
_EXPORT_FORMATS = ("csv", "parquet", "jsonl", "json")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


class DatasetService:
    """Everything the faces can do with datasets."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- writing -----------------------------------------------------------------

    def ingest(self, name: str, source: Any, *, options: IngestOptions | None = None, append: bool = False, lineage: dict[str, Any] | None = None, progress: Progress | None = None, source_meta: dict[str, Any] | None = None) -> DatasetVersion:
        """Read ``source`` into a new version of dataset ``name``.

        Args:
            name: dataset name (created on first ingest).
            source: path, folder, glob, ``s3://`` URL, database URL (with
                ``options.query``), or a pandas/polars/Arrow table.
            options: format and parsing options; see :class:`IngestOptions`.
            append: the new version holds the previous rows plus the new ones.
            lineage: parents and producer recorded with the version.
            progress: called with a fraction in [0, 1] while files are parsed (default:
                whoever listens through :func:`kiln.core.progress.reporting`).
            source_meta: what to record as the version's source instead of the
                reader's own description (a catalog entry, a stream...).

        Raises:
            InvalidArgument: malformed data (the message names the line), bad options.
            NotFound: the source does not exist.
        """
        return self._ingest(name, source, options=options, append=append, lineage=lineage, progress=progress, source_meta=source_meta)

    def _ingest(self, name: str, source: Any, *, options: IngestOptions | None = None, append: bool = False, lineage: dict[str, Any] | None = None, progress: Progress | None = None, source_meta: dict[str, Any] | None = None) -> DatasetVersion:
        check_name(name, kind="dataset")
        opts = options or IngestOptions()
        try:
            src, previous, written = self._stage(name, source, opts, append, progress)
        except KilnError as exc:
            # The commit audits itself; a failure before it (bad data, no permission) is audited here.
            self.ws.audit_failure(self.ctx, action="datasets.ingest", resource=f"datasets/{name}", error=exc)
            raise
        meta = src.meta | {"options": opts.model_dump(exclude_defaults=True)} if source_meta is None else source_meta
        try:
            return self._commit(name, written, source=meta, lineage=lineage or {}, previous=previous, append=append, description=opts.description)
        except BaseException:
            self.ws.store.delete(written[0].key.rsplit("/", 1)[0])  # this ingest's own prefix only
            raise

    def _stage(self, name: str, source: Any, opts: IngestOptions, append: bool, progress: Progress | None) -> tuple[Any, DatasetVersion | None, list[DatasetFile]]:
        """Parse ``source`` into Parquet files under a fresh prefix (not yet visible)."""
        self.ctx.require("editor")
        for col, typ in opts.types.items():
            _check_type(col, typ)
        con = self._duck()
        try:
            src = open_source(con, source, opts, s3_fs=self._s3_fs_for(source))
            previous = self._latest_or_none(name) if append else None
            select = src.select_sql
            if previous is not None:
                select = self._conform(con, select, previous)
            prefix = f"datasets/{name}/{uuid.uuid4().hex}"
            return src, previous, self._copy(con, select, prefix, progress)
        except duckdb.Error as exc:
            raise duck_error(exc, what="cannot ingest source") from None
        except Exception as exc:
            if isinstance(exc, KilnError) or not (isinstance(source, str) and source.lower().startswith("s3://")):
                raise
            raise _s3_error(source, exc) from None
        finally:
            con.close()

    def write_table(self, name: str, data: Any, *, append: bool = False, source: dict[str, Any] | None = None, lineage: dict[str, Any] | None = None, description: str | None = None) -> DatasetVersion:
        """Write an in-memory table (pandas, polars, Arrow) as a new version; for other stages."""
        # The source is recorded by the one audited commit (a second, unaudited update
        # could be lost to a crash and left the version naming an in-memory table).
        return self._ingest(name, data, options=IngestOptions(description=description), append=append, lineage=lineage, source_meta=source or None)

    def commit_parquet(self, name: str, path: str | os.PathLike[str], *, source: dict[str, Any], lineage: dict[str, Any] | None = None) -> DatasetVersion:
        """Commit a Parquet file another stage wrote (a training set) as a new version, without
        copying its rows again; the file is moved (or uploaded) into the store. For other stages."""
        self.ctx.require("editor")
        check_name(name, kind="dataset")
        store = self.ws.store
        prefix = f"datasets/{name}/{uuid.uuid4().hex}"
        key = f"{prefix}/part-00000.parquet"
        rows = pq.ParquetFile(path).metadata.num_rows
        try:
            if store.capabilities.local_paths:
                final = Path(store.path(key))
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), final)
                size, digest = sha256_file(final)
            else:
                info = store.put_file(key, path)
                size, digest = info.size, info.sha256
            return self._commit(name, [DatasetFile(key=key, rows=rows, bytes=size, sha256=digest)], source=source, lineage=lineage or {}, previous=None, append=False, description=None)
        except BaseException:
            store.delete(prefix)
            raise

    def _duck(self) -> duckdb.DuckDBPyConnection:
        tmp = self.ws.settings.home / "tmp" / "duckdb"
        tmp.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(config={
            "memory_limit": f"{self.ws.settings.ingest_memory_mb}MB",
            "temp_directory": str(tmp),
            "threads": max(1, os.cpu_count() or 1),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        })
        # Track progress for our own bar, but never let DuckDB print one.
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
        # Otherwise COPY marks columns NOT NULL when the source's statistics saw no nulls
        # (a Parquet source, an export): the schema then depended on the face, and an
        # append with nulls produced tables whose schema said "not null" over nulls.
        con.execute("SET disabled_optimizers = 'statistics_propagation'")
        return con

    def _s3_fs_for(self, source: Any) -> Any:
        if isinstance(source, str) and source.lower().startswith("s3://"):
            try:
                import s3fs
            except ImportError:
                return None
            endpoint = self.ws.settings.s3_endpoint_url
            kwargs = {"client_kwargs": {"endpoint_url": endpoint}, "endpoint_url": endpoint} if endpoint else {}
            return s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)
        return None

    def _conform(self, con: duckdb.DuckDBPyConnection, select: str, previous: DatasetVersion) -> str:
        """Cast new rows to the previous version's schema for --append."""
        new_cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE {select}").fetchall()}
        old = con.execute(f"DESCRIBE SELECT * FROM read_parquet([{', '.join(sql_str(self.ws.store.path(f.key)) for f in previous.files[:1])}])").fetchall() if self.ws.store.capabilities.local_paths else [(c.name, _duck_type(c.type)) for c in previous.columns]
        old_cols = {r[0]: r[1] for r in old}
        extra = sorted(set(new_cols) - set(old_cols))
        if extra:
            raise InvalidArgument(f"cannot append: columns {extra} are not in dataset {previous.name!r} (it has {', '.join(old_cols)}); ingest without --append to start a new schema")
        parts = [f"CAST({quote_ident(c) if c in new_cols else 'NULL'} AS {typ}) AS {quote_ident(c)}" for c, typ in old_cols.items()]
        return f"SELECT {', '.join(parts)} FROM ({select})"

    def _copy(self, con: duckdb.DuckDBPyConnection, select: str, prefix: str, progress: Progress | None) -> list[DatasetFile]:
        store = self.ws.store
        local = store.capabilities.local_paths
        staging = Path(store.path(prefix)) if local else Path(tempfile.mkdtemp(prefix="kiln-ingest-", dir=self.ws.settings.home / "tmp"))
        staging.mkdir(parents=True, exist_ok=True)
        tracker = Tracker(listener=progress)  # progress=None: whoever listens (kiln.core.progress)
        try:
            # One file per version: DuckDB 2.0 splits by FILE_SIZE_BYTES out of
            # insertion order when it runs on several threads, and row order is
            # part of a dataset. Readers still parallelise over row groups.
            first = staging / "part-0.parquet.tmp"
            with _duck_progress(con, tracker):
                con.execute(f"COPY ({select}) TO {sql_str(str(first))} (FORMAT parquet)")
            produced = [first]
            out = []
            for i, path in enumerate(produced):
                rows = pq.ParquetFile(path).metadata.num_rows
                key = f"{prefix}/part-{i:05d}.parquet"
                if local:
                    final = Path(store.path(key))
                    os.replace(path, final)
                    size, digest = sha256_file(final)
                    out.append(DatasetFile(key=key, rows=rows, bytes=size, sha256=digest))
                else:
                    info = store.put_file(key, path)
                    out.append(DatasetFile(key=key, rows=rows, bytes=info.size, sha256=info.sha256))
            tracker.finish()
            return out
        except BaseException:
            # Nothing references these files yet: remove them now rather than at gc.
            store.delete(prefix)
            raise
        finally:
            if not local:
                shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, name: str, written: list[DatasetFile], *, source: dict[str, Any], lineage: dict[str, Any], previous: DatasetVersion | None, append: bool, description: str | None) -> DatasetVersion:
        files = (previous.files if previous else []) + written
        if append and previous is not None:
            lineage = {**lineage, "parents": sorted({*lineage.get("parents", []), previous.ref}), "appended_to": previous.ref}
        with self.ws.store.open(written[0].key) as fh:
            schema = pq.read_schema(fh)
        columns = [Column(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema]
        now = time.time()
        rows = sum(f.rows for f in files)
        size = sum(f.bytes for f in files)
        with self.ws.mutation(self.ctx, action="datasets.ingest", resource=f"datasets/{name}", details={"rows": rows, "append": append}) as (conn, details):
            ds = conn.execute(sa.select(t.datasets).where(t.datasets.c.name == name).with_for_update()).first()
            if append and previous is not None and (ds is None or not self._is_latest(conn, ds.id, previous)):
                # Deleted (its files may be gone at the next gc), or replaced, while staging.
                raise Conflict(f"dataset {name!r} changed while appending (latest is no longer {previous.ref}); run the append again")
            if ds is None:
                # Two first ingests at once: on PostgreSQL the second INSERT waits for the
                # first to commit, then does nothing, and numbers its version after it.
                conn.execute(_insert_if_absent(conn, t.datasets).values(id=uuid.uuid4().hex, name=name, description=description or "", created_at=now, created_by=self.ctx.actor, latest_version=0))
                ds = conn.execute(sa.select(t.datasets).where(t.datasets.c.name == name).with_for_update()).one()
            ds_id = ds.id
            number = ds.latest_version + 1
            conn.execute(t.datasets.update().where(t.datasets.c.id == ds_id).values(latest_version=number, **({"description": description} if description else {})))
            vid = uuid.uuid4().hex
            conn.execute(t.versions.insert().values(id=vid, dataset_id=ds_id, version=number, created_at=now, created_by=self.ctx.actor, schema=_dumps([c.model_dump() for c in columns]), row_count=rows, byte_size=size, source=_dumps(source), lineage=_dumps(lineage)))
            conn.execute(t.files.insert(), [{"version_id": vid, "idx": i, **f.model_dump()} for i, f in enumerate(files)])
            details["version"] = number
        return DatasetVersion(name=name, version=number, created_at=now, created_by=self.ctx.actor, row_count=rows, byte_size=size, columns=columns, files=files, source=source, lineage=lineage)

    # -- reading -----------------------------------------------------------------

    def list(self) -> list[Dataset]:
        self.ctx.require("viewer")
        latest = (
            sa.select(t.versions.c.dataset_id, sa.func.max(t.versions.c.version).label("v"), sa.func.count().label("n"))
            .group_by(t.versions.c.dataset_id).subquery()
        )
        q = (
            sa.select(t.datasets, latest.c.v, latest.c.n, t.versions.c.row_count, t.versions.c.byte_size)
            .join(latest, latest.c.dataset_id == t.datasets.c.id)
            .join(t.versions, sa.and_(t.versions.c.dataset_id == t.datasets.c.id, t.versions.c.version == latest.c.v))
            .order_by(t.datasets.c.name)
        )
        with self.ws.db.read() as conn:
            rows = conn.execute(q).all()
        return [Dataset(name=r.name, description=r.description, created_at=r.created_at, created_by=r.created_by, latest_version=r.v, versions=r.n, row_count=r.row_count, byte_size=r.byte_size) for r in rows]

    def get(self, ref: str | Ref) -> DatasetVersion:
        """The version ``ref`` names (``sales``, ``sales@3``)."""
        self.ctx.require("viewer")
        r = parse_ref(ref, kind="dataset") if isinstance(ref, str) else ref
        if r.alias is not None:
            raise InvalidArgument(f"datasets have no aliases; use {r.name} or {r.name}@VERSION")
        with self.ws.db.read() as conn:
            return self._load(conn, r)

    def live_files(self) -> dict[str, dict[int, list[str]]]:
        """Every live version's file keys, by dataset and version number, in one query (for SQL)."""
        self.ctx.require("viewer")
        q = (
            sa.select(t.datasets.c.name, t.versions.c.version, t.files.c.key)
            .join(t.versions, t.versions.c.dataset_id == t.datasets.c.id)
            .join(t.files, t.files.c.version_id == t.versions.c.id)
            .order_by(t.datasets.c.name, t.versions.c.version, t.files.c.idx)
        )
        out: dict[str, dict[int, list[str]]] = {}
        with self.ws.db.read() as conn:
            for name, version, key in conn.execute(q):
                out.setdefault(name, {}).setdefault(version, []).append(key)
        return out

    def versions(self, name: str) -> list[DatasetVersion]:
        self.ctx.require("viewer")
        check_name(name, kind="dataset")
        with self.ws.db.read() as conn:
            ds = self._dataset_row(conn, name)
            numbers = conn.execute(sa.select(t.versions.c.version).where(t.versions.c.dataset_id == ds.id).order_by(t.versions.c.version)).scalars().all()
            return [self._load(conn, Ref(name, version=n)) for n in numbers]

    def verify(self, ref: str | Ref) -> DatasetVersion:
        """Check that a version's files still hold the bytes they were committed with.

        Returns:
            The version, when every file has its recorded size and sha256.

        Raises:
            NotFound: no such version.
            KilnError: a file is missing from the object store or was changed there.
        """
        version = self.get(ref)
        bad: list[str] = []
        for f in version.files:
            try:
                info = self.ws.store.info(f.key)
            except NotFound:
                bad.append(f"{f.key} is missing")
                continue
            if (info.size, info.sha256) != (f.bytes, f.sha256):
                bad.append(f"{f.key} has {info.size} bytes and sha256 {info.sha256[:12]}..., committed with {f.bytes} bytes and {f.sha256[:12]}...")
        if bad:
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise KilnError(f"dataset {version.ref} is not what was committed: {'; '.join(bad[:5])}{more}. Its files were changed outside Kiln; restore them from a backup or re-import a bundle")
        return version

    def arrow_dataset(self, ref: str | Ref) -> pads.Dataset:
        """A pyarrow dataset over a version's files, for streaming reads by other stages."""
        version = self.get(ref)
        store = self.ws.store
        return pads.dataset([store.path(f.key) for f in version.files], format="parquet", filesystem=store.fs)

    def read_table(self, ref: str | Ref, *, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        """Read a version (or its first ``limit`` rows) into memory."""
        ds = self.arrow_dataset(ref)
        if columns:
            missing = sorted(set(columns) - set(ds.schema.names))
            if missing:
                raise InvalidArgument(f"unknown columns {missing}; the dataset has {', '.join(ds.schema.names)}")
        if limit is not None:
            return ds.head(limit, columns=columns) if limit > 0 else ds.schema.empty_table()
        return ds.to_table(columns=columns)

    def iter_batches(self, ref: str | Ref, *, batch_size: int = 65536, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        yield from self.arrow_dataset(ref).to_batches(batch_size=batch_size, columns=columns)

    def head(self, ref: str | Ref, *, n: int = 10) -> pa.Table:
        if n < 0 or n > 100_000:
            raise InvalidArgument("n must be between 0 and 100000")
        return self.read_table(ref, limit=n)

    def export(self, ref: str | Ref, dest: str | os.PathLike[str], *, format: str | None = None) -> Path:
        """Write a version to a local file as CSV, Parquet or JSON Lines."""
        fmt = export_format(dest, format)
        version = self.get(ref)
        target = export_target(dest)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tracker = Tracker()
        con = self._duck()
        try:
            self._register(con, version)
            options = {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet", "jsonl": "FORMAT json", "json": "FORMAT json, ARRAY true"}[fmt]
            with _duck_progress(con, tracker):
                con.execute(f"COPY (SELECT * FROM __kiln_ds) TO {sql_str(str(tmp))} ({options})")
            os.replace(tmp, target)
            tracker.finish()
        finally:
            con.close()
            tmp.unlink(missing_ok=True)
        return target

    def _register(self, con: duckdb.DuckDBPyConnection, version: DatasetVersion) -> None:
        store = self.ws.store
        if store.capabilities.local_paths:
            files = ", ".join(sql_str(store.path(f.key)) for f in version.files)
            con.execute(f"CREATE OR REPLACE TEMP VIEW __kiln_ds AS SELECT * FROM read_parquet([{files}])")
        else:
            con.register("__kiln_ds", pads.dataset([store.path(f.key) for f in version.files], format="parquet", filesystem=store.fs))

    # -- removal -----------------------------------------------------------------

    def delete(self, ref: str) -> list[int]:
        """Delete one version (``name@3``) or every version (``name``); files go at the next gc."""
        r = parse_ref(ref, kind="dataset")
        if r.alias is not None:
            raise InvalidArgument("datasets have no aliases; use NAME or NAME@VERSION")
        with self.ws.mutation(self.ctx, action="datasets.delete", resource=f"datasets/{r.name}", details={"version": r.version}) as (conn, _):
            ds = self._dataset_row(conn, r.name, lock=True)
            q = sa.select(t.versions.c.id, t.versions.c.version).where(t.versions.c.dataset_id == ds.id)
            if r.version is not None:
                q = q.where(t.versions.c.version == r.version)
            doomed = conn.execute(q).all()
            if not doomed:
                raise NotFound(self._missing_version(conn, ds, r.version or 0))
            ids = [d.id for d in doomed]
            conn.execute(t.files.delete().where(t.files.c.version_id.in_(ids)))
            conn.execute(t.versions.delete().where(t.versions.c.id.in_(ids)))
            left = conn.execute(sa.select(sa.func.count()).select_from(t.versions).where(t.versions.c.dataset_id == ds.id)).scalar_one()
            if not left:
                conn.execute(t.datasets.delete().where(t.datasets.c.id == ds.id))
        return sorted(d.version for d in doomed)

    # -- helpers -----------------------------------------------------------------

    def _dataset_row(self, conn: Connection, name: str, *, lock: bool = False) -> Any:
        q = sa.select(t.datasets).where(t.datasets.c.name == name)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(f"dataset {name!r} does not exist; `kiln datasets ls` lists datasets")
        return row

    def _latest_number(self, conn: Connection, ds_id: str) -> int | None:
        return conn.execute(sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.dataset_id == ds_id)).scalar()

    def _is_latest(self, conn: Connection, ds_id: str, version: DatasetVersion) -> bool:
        """Whether ``version`` is still the dataset's latest (same number, same files)."""
        number = self._latest_number(conn, ds_id)
        if number != version.version:
            return False
        keys = conn.execute(
            sa.select(t.files.c.key).join(t.versions, t.versions.c.id == t.files.c.version_id)
            .where(t.versions.c.dataset_id == ds_id, t.versions.c.version == number).order_by(t.files.c.idx)
        ).scalars().all()
        return list(keys) == [f.key for f in version.files]

    def _latest_or_none(self, name: str) -> DatasetVersion | None:
        try:
            return self.get(name)
        except NotFound:
            return None

    def _version_id(self, conn: Connection, name: str, number: int) -> str:
        ds = self._dataset_row(conn, name)
        return conn.execute(sa.select(t.versions.c.id).where(t.versions.c.dataset_id == ds.id, t.versions.c.version == number)).scalar_one()

    def _missing_version(self, conn: Connection, ds: Any, version: int) -> str:
        latest = self._latest_number(conn, ds.id)
        return f"dataset {ds.name!r} has no version {version} (latest is {latest}); `kiln datasets versions {ds.name}` lists them"

    def _load(self, conn: Connection, r: Ref) -> DatasetVersion:
        ds = self._dataset_row(conn, r.name)
        number = r.version if r.version is not None else self._latest_number(conn, ds.id)
        row = conn.execute(sa.select(t.versions).where(t.versions.c.dataset_id == ds.id, t.versions.c.version == number)).first()
        if row is None:
            raise NotFound(self._missing_version(conn, ds, number or 0))
        file_rows = conn.execute(sa.select(t.files).where(t.files.c.version_id == row.id).order_by(t.files.c.idx)).all()
        return DatasetVersion(
            name=r.name, version=row.version, created_at=row.created_at, created_by=row.created_by,
            row_count=row.row_count, byte_size=row.byte_size,
            columns=[Column(**c) for c in orjson.loads(row.schema)],
            files=[DatasetFile(key=f.key, rows=f.rows, bytes=f.bytes, sha256=f.sha256) for f in file_rows],
            source=orjson.loads(row.source), lineage=orjson.loads(row.lineage),
        )


def export_format(dest: str | os.PathLike[str], format: str | None) -> str:
    """The format an export writes: ``format``, else ``dest``'s extension (the SDK shares this)."""
    fmt = (format or Path(dest).suffix.lstrip(".") or "parquet").lower()
    fmt = {"ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
    if fmt not in _EXPORT_FORMATS:
        raise InvalidArgument(f"unsupported export format {fmt!r}: use csv, parquet, jsonl or json")
    return fmt


def export_target(dest: str | os.PathLike[str]) -> Path:
    """The local file an export writes (``~`` expanded), its folder made."""
    target = Path(dest).expanduser().absolute()
    if target.is_dir():
        raise InvalidArgument(f"{target} is a folder; give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _insert_if_absent(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that skips a row whose unique name already exists."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - Kiln runs on SQLite and PostgreSQL
        return table.insert()
    return insert(table).on_conflict_do_nothing(index_elements=["name"])


def _check_type(column: str, type_name: str) -> None:
    # Check the characters first and parse without running SQL: the name used to be
    # executed inside "SELECT CAST(NULL AS ...)" on an unsandboxed connection, so
    # "INT); COPY ... TO '/any/path'; SELECT (1" wrote files wherever the server could.
    try:
        if not isinstance(type_name, str) or not type_name.replace(" ", "").replace("(", "").replace(")", "").replace(",", "").replace("_", "").isalnum():
            raise duckdb.Error("bad characters")
        duckdb.sqltype(type_name)
    except duckdb.Error:
        raise InvalidArgument(f"unknown type {type_name!r} for column {column!r}: use varchar, bigint, double, boolean, date, timestamp...") from None


def _s3_error(source: str, exc: Exception) -> KilnError:
    """botocore/s3fs failures reading a source (no credentials, access denied...) as Kiln errors."""
    text = f"cannot read {source!r}: {type(exc).__name__}: {str(exc)[:300]}"
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"{text}; check the bucket and key")
    if isinstance(exc, ConnectionError | TimeoutError) or "Connect" in type(exc).__name__:
        return Unavailable(f"{text}; check KILN_S3_ENDPOINT_URL and that the store answers")
    return InvalidArgument(f"{text}; check the URL and the server's S3 credentials")


@contextmanager
def _duck_progress(con: duckdb.DuckDBPyConnection, tracker: Tracker, every_s: float = 0.2) -> Iterator[None]:
    """Report DuckDB's progress on the statement ``con`` runs in this block to ``tracker``."""
    if not tracker.active:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every_s):
            try:
                pct = con.query_progress()
            except duckdb.Error:
                return
            if pct >= 0:
                tracker.update(pct / 100.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _duck_type(arrow_type: str) -> str:
    mapping = {"int64": "BIGINT", "int32": "INTEGER", "int16": "SMALLINT", "int8": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "string": "VARCHAR", "large_string": "VARCHAR", "bool": "BOOLEAN", "date32[day]": "DATE"}
    if arrow_type.startswith("timestamp"):
        return "TIMESTAMP"
    return mapping.get(arrow_type, "VARCHAR")


def _referenced_keys(conn: Connection) -> set[str]:
    return set(conn.execute(sa.select(t.files.c.key).distinct()).scalars())


def register() -> None:
    from kiln.core.gc_roots import register_gc_root

    register_gc_root("datasets/", _referenced_keys)


