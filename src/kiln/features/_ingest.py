"""Bulk ingestion of a dataset version into a feature group: DuckDB writes the offline
store (partitioned by event date, in bounded memory), then the latest record per id goes
online in batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kiln.core.errors import InvalidArgument
from kiln.core.progress import Progress
from kiln.features import _offline as off
from kiln.features._base import duck_type
from kiln.features._models import IngestResult

if TYPE_CHECKING:
    import duckdb

    from kiln.features._models import RebuildResult, StreamIngestResult
    from kiln.features._service import FeatureService, Group

__all__ = ["bulk_ingest", "event_expr", "online_json", "parquet_columns", "rebuild_online", "stream_ingest", "watch_query"]

_q = off._q


def event_expr(col: str, arrow_type: Any) -> str:
    """SQL turning a column into TIMESTAMPTZ: timestamps as they are (naive ones are UTC),
    numbers as Unix seconds, text as ISO-8601."""
    import pyarrow.types as pt

    c = _q(col)
    if pt.is_timestamp(arrow_type) or pt.is_date(arrow_type):
        return f"CAST({c} AS TIMESTAMPTZ)"
    if pt.is_integer(arrow_type) or pt.is_floating(arrow_type) or pt.is_decimal(arrow_type):
        return f"make_timestamptz(CAST(round(CAST({c} AS DOUBLE) * 1000000) AS BIGINT))"
    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type):
        return f"CAST({c} AS TIMESTAMPTZ)"
    raise InvalidArgument(f"column {col!r} has type {arrow_type}: an event time is a timestamp, Unix seconds or ISO-8601 text", details={"field": col})


def parquet_columns(store: Any, key: str) -> dict[str, Any]:
    """A Parquet file's columns and their Arrow types, from its footer alone."""
    import pyarrow.parquet as pq

    with store.open(key) as fh:
        return {f.name: f.type for f in pq.read_schema(fh)}


def online_json(g: Group, alias: str = "") -> str:
    """SQL for a record's online JSON (timestamps as Unix seconds, as PutRecord stores them)."""
    parts = []
    for name, d in g.stored.items():
        c = f"{alias}{_q(name)}"
        value = f"epoch_us({c}) / 1e6" if d.type == "timestamp" else c
        parts.append(f"{_q(name)} := {value}")
    return f"CAST(to_json(struct_pack({', '.join(parts)})) AS VARCHAR)"


def bulk_ingest(svc: FeatureService, g: Group, dataset: str) -> IngestResult:
    from kiln.features._service import online_store

    ds = svc._datasets()
    version = ds.get(dataset)
    have = parquet_columns(svc.ws.store, version.files[0].key)
    for needed in (g.record_id, g.event_time):
        if needed not in have:
            raise InvalidArgument(f"dataset {version.ref} has no column {needed!r} (the group's {'record identifier' if needed == g.record_id else 'event time'}); it has {', '.join(list(have)[:20])}", details={"field": needed})
    store = svc.ws.store
    progress = Progress(1.0)
    now = time.time()
    base_us = int(now * 1e6)
    con = svc.duck()
    try:
        # Each source row's place: later rows of the dataset win ties of event time.
        offset = 0
        parts = []
        for f in version.files:
            path = off.duck_paths(con, store, [f.key])[1:-1]
            parts.append(f"SELECT *, file_row_number + {offset} AS __kiln_n FROM read_parquet({path}, file_row_number = true)")
            offset += f.rows
        source = " UNION ALL ".join(parts)
        cols = []
        for name, d in g.stored.items():
            if name == g.event_time:
                cols.append(f"{event_expr(name, have[name])} AS {_q(name)}")
            elif name in have:
                cols.append(f"CAST({_q(name)} AS {duck_type(d.type)}) AS {_q(name)}")
            else:
                cols.append(f"CAST(NULL AS {duck_type(d.type)}) AS {_q(name)}")
        select = (
            f"SELECT {', '.join(cols)}, make_timestamptz({base_us} + __kiln_n) AS write_time, "
            f"make_timestamptz({base_us}) AS api_invocation_time, false AS is_deleted FROM ({source})"
        )
        try:
            con.execute(f"CREATE TEMP VIEW __kiln_rows AS {select}")
            nulls = con.execute(f"SELECT count(*) FILTER (WHERE {_q(g.record_id)} IS NULL), count(*) FILTER (WHERE {_q(g.event_time)} IS NULL) FROM __kiln_rows").fetchall()[0]
            assert nulls is not None
            for col, count in zip((g.record_id, g.event_time), nulls, strict=True):
                if count:
                    raise InvalidArgument(f"column {col!r} of {version.ref} has {count:,} null values; every record needs its {'identifier' if col == g.record_id else 'event time'}", details={"field": col})
            progress.update(0.05)
            # The online half runs beside the offline write, in one transaction that commits
            # only after the offline files do (where the store has atomic bulk loads; elsewhere
            # it follows the offline commit, batch by batch).
            load = _OnlineLoad(svc, g, con, version, f"({select})", now, progress) if g.online and online_store(svc.ws).capabilities.atomic_bulk else None
            try:
                with watch_query(con, progress, 0.05, 0.6):
                    written = off.copy_partitioned(con, store, g.id, "SELECT * FROM __kiln_rows", g.event_time, g.version, off.new_tmp(svc.ws.settings.home))
            except BaseException:
                if load is not None:
                    load.abort()
                raise
        except __import__("duckdb").Error as exc:
            raise InvalidArgument(f"cannot ingest {version.ref} into feature group {g.name!r}: {str(exc).splitlines()[0][:300]}") from None
        try:
            svc._commit_files(g, written, action="features.ingest", details={"dataset": version.ref, "rows": version.row_count})
        except BaseException:
            if load is not None:
                load.abort()
            for f in written:
                store.delete(f["key"])
            raise
        progress.update(0.6)
        if load is not None:
            changed = load.commit()
        else:
            changed = _online(svc, g, con, written, progress, now) if g.online else 0
    finally:
        con.close()
    progress.finish()
    return IngestResult(group=g.name, version=g.version, rows=sum(f["rows"] for f in written), files=len(written), online=changed, source=version.ref)


class _OnlineLoad:
    """The online half of a bulk ingest, in a thread beside the offline write: DuckDB (on a
    cursor of the ingest's connection) picks the latest record per id of the same rows, the
    store loads them in one transaction, then waits: :meth:`commit` (after the offline files
    are committed) lets it commit, :meth:`abort` rolls it back. Readers never see the load
    before the offline rows it comes from."""

    def __init__(self, svc: FeatureService, g: Group, con: duckdb.DuckDBPyConnection, version: Any, source: str, now: float, progress: Progress) -> None:
        from kiln.features._service import online_store

        self._store = online_store(svc.ws)
        self._cur = con.cursor()
        off.duck_paths(self._cur, svc.ws.store, [f.key for f in version.files])  # an S3 store's filesystem, on this cursor too
        self._go = threading.Event()
        self._ok = False
        self._changed = 0
        self._error: BaseException | None = None
        part = progress.part(0.05, 0.95, version.row_count or 1)  # ids <= rows: the bar may end early
        self._thread = threading.Thread(target=self._run, args=(g, source, now, part.advance), name="kiln-online-load", daemon=True)
        self._thread.start()

    def _run(self, g: Group, source: str, now: float, advance: Any) -> None:
        try:
            batches = _latest_batches(self._cur, g, source, now=now, advance=advance)
            try:
                self._changed = self._store.write_bulk(g.name, batches, before_commit=self._wait)
            finally:
                batches.close()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by commit()
            self._error = exc
        finally:
            self._cur.close()

    def _wait(self) -> None:
        self._go.wait()
        if not self._ok:
            raise _Aborted

    def commit(self) -> int:
        self._ok = True
        self._go.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._changed

    def abort(self) -> None:
        self._go.set()
        self._thread.join()


class _Aborted(Exception):
    """The offline half failed: the online load rolls back."""


def _online(svc: FeatureService, g: Group, con: duckdb.DuckDBPyConnection, written: list[Any], progress: Progress, now: float) -> int:
    """The latest record per id of what was just written, into the online store: one bulk
    load (atomic where the store says so), fed by DuckDB from a thread of its own."""
    from kiln.features._service import online_store

    store = online_store(svc.ws)
    paths = off.duck_paths(con, svc.ws.store, [f["key"] for f in written])
    part = progress.part(0.6, 1.0, sum(f["rows"] for f in written) or 1)  # ids <= rows: the bar may end early
    batches = _latest_batches(con, g, f"read_parquet({paths})", now=now, advance=part.advance)
    try:
        return store.write_bulk(g.name, batches)
    finally:
        batches.close()  # the query's thread stops before the connection closes


def _latest_batches(con: duckdb.DuckDBPyConnection, g: Group, source: str, *, now: float, deletes: bool = False,
                    advance: Any = None, batch_rows: int = 100_000) -> Generator[Any, None, None]:
    """The latest record per id of ``source`` as the online store's columns (record id, event
    time, expiry, JSON), in record id order, batch by batch.

    The window and the sort run on the narrow columns and the JSON is built after them (sorting
    the JSON text spilled past DuckDB's memory limit at a million rows), and the query runs in a
    thread ahead of the consumer: DuckDB builds the next batches while the store writes these.
    ``deletes``: the latest record may be a delete marker, which becomes a soft delete (no data).
    """
    import queue

    et = _q(g.event_time)
    expires = "NULL" if g.ttl_s is None else f"epoch_us({et}) / 1e6 + {g.ttl_s}"
    live = "" if g.ttl_s is None or deletes else f"WHERE epoch_us({et}) / 1e6 + {g.ttl_s} > {now}"
    data = f"CASE WHEN is_deleted THEN NULL ELSE encode({online_json(g)}) END" if deletes else f"encode({online_json(g)})"
    latest = (f"SELECT *, CAST({_q(g.record_id)} AS VARCHAR) AS __kiln_rid FROM {source} {live} "
              f"QUALIFY row_number() OVER (PARTITION BY {_q(g.record_id)} ORDER BY {et} DESC, write_time DESC) = 1 "
              "ORDER BY __kiln_rid")  # in key order, a B-tree store appends instead of splitting pages at random (4x on SQLite)
    q = f"SELECT __kiln_rid, epoch_us({et}) / 1e6, {expires}, {data} FROM ({latest})"
    try:
        reader = con.sql(q).to_arrow_reader(batch_rows)
    except __import__("duckdb").Error as exc:
        raise InvalidArgument(f"cannot read the offline store of {g.name!r}: {str(exc).splitlines()[0][:300]}") from None
    done = object()
    ready: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in reader:
                cols = tuple(batch.column(i).to_pylist() for i in range(4))
                while not stop.is_set():
                    try:
                        ready.put(cols, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            ready.put(exc)

    th = threading.Thread(target=produce, name="kiln-online-load", daemon=True)
    th.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                if type(item).__module__.startswith(("duckdb", "_duckdb")):
                    raise InvalidArgument(f"cannot read the offline store of {g.name!r}: {str(item).splitlines()[0][:300]}") from None
                raise item
            yield item
            if advance is not None:
                advance(len(item[0]))
    finally:
        stop.set()
        th.join()


@contextmanager
def watch_query(con: duckdb.DuckDBPyConnection, progress: Progress, start: float, end: float, every_s: float = 0.2) -> Iterator[None]:
    """DuckDB's progress on the statement running in this block, as [start, end] of ``progress``."""
    if not progress.active:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every_s):
            try:
                pct = con.query_progress()
            except Exception:  # noqa: BLE001 - the statement ended
                return
            if pct >= 0:
                progress.update(start + (end - start) * pct / 100.0)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()


def stream_ingest(svc: FeatureService, g: Group, *, stream: str, consumer: str, max_records: int, lease_s: float) -> StreamIngestResult:
    """A stream's records for a consumer into the group, batch by batch: each batch's offline rows
    commit with the stream position they reach (exactly once across crashes); records that fail
    the group's checks are counted and skipped."""
    import sqlalchemy as sa

    from kiln.features import _tables as t
    from kiln.features._models import StreamIngestResult
    from kiln.lake.streams._service import StreamService

    streams = StreamService(svc.ws, svc.ctx)
    result = StreamIngestResult(group=g.name, stream=stream, consumer=consumer)
    while result.records < max_records:
        batch = streams.read_consumer(stream, consumer, limit=min(1000, max_records - result.records), lease_s=lease_s)
        if not batch.records:
            break
        with svc.ws.db.read() as conn:
            done = conn.execute(sa.select(t.stream_positions.c.last_seq).where(t.stream_positions.c.group_id == g.id, t.stream_positions.c.stream == stream, t.stream_positions.c.consumer == consumer)).scalar() or 0
        rows = []
        for rec in batch.records:
            if rec.sequence_number <= done:
                result.duplicates += 1  # written before a crash kept the stream from hearing of it
                continue
            try:
                rows.append(svc._check_record(g, rec.sequence_number, rec.data))
            except InvalidArgument as exc:
                result.rejected += 1
                if len(result.errors) < 5:
                    result.errors.append(f"sequence {rec.sequence_number}: {exc.message.split(': ', 1)[-1]}")
        last = batch.records[-1].sequence_number
        if rows:
            written = svc._write(g, rows, deleted=False, ttl_s=g.ttl_s, action="features.ingest_stream", position=(stream, consumer, last))
            result.written += written.offline
            result.online += written.online
        elif last > done:
            svc._commit_files(g, [], action="features.ingest_stream", details={"records": 0}, position=(stream, consumer, last))
        assert batch.lease is not None
        streams.commit(stream, consumer, batch.lease)
        result.records += len(batch.records)
        result.last_sequence_number = last
    return result


def rebuild_online(svc: FeatureService, g: Group) -> RebuildResult:
    """The latest offline record of every id written to the online store, by its conditional
    write: a missing or older online row is replaced, a newer one (a put racing this) stays,
    and an id whose latest record is a delete is soft-deleted online. On a store with
    ``atomic_bulk`` (SQLite, PostgreSQL) the rebuild is one transaction, so one cut short
    changes nothing; elsewhere each batch is, and every row it wrote is correct: run it again."""
    from kiln.features._models import RebuildResult
    from kiln.features._service import online_store

    if not g.online:
        raise InvalidArgument(f"feature group {g.name!r} has no online store; `kiln features update {g.name} --online` turns it on")
    store = online_store(svc.ws)
    files = svc.offline_files(g)
    progress = Progress(sum(f.rows for f in files) or 1)
    now = time.time()
    result = RebuildResult(group=g.name, ids=0, online=0, deleted=0, purged=0)
    con = svc.duck()
    try:
        if files:
            paths = off.duck_paths(con, svc.ws.store, [f.key for f in files])
            # Every version's files at once (union_by_name): a feature added later is null in older rows.
            def counted(batches: Iterator[Any]) -> Iterator[Any]:
                for ids, times, expires, data in batches:
                    result.ids += len(ids)
                    result.deleted += sum(1 for d in data if d is None)
                    expires = [None if d is None else x for x, d in zip(expires, data, strict=True)]
                    yield ids, times, expires, data
                    progress.advance(len(ids))

            batches = _latest_batches(con, g, f"read_parquet({paths}, union_by_name = true)", now=now, deletes=True)
            try:
                result.online = store.write_bulk(g.name, counted(batches))
            finally:
                batches.close()  # the query's thread stops before the connection closes
        result.purged = store.purge_expired(now=now, limit=1_000_000)
    finally:
        con.close()
    progress.finish()
    with svc.ws.mutation(svc.ctx, action="features.rebuild_online", resource=f"feature-groups/{g.name}", details=result.model_dump()):
        pass  # the audit event of what changed (the online store is not in the metadata transaction)
    return result
