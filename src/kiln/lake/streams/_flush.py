"""Flushing a stream into dataset versions, exactly once.

Each flush appends the records of a sequence range to the stream's dataset,
and the ones that do not fit the schema to ``<dataset>-dlq``; each version's
lineage names the range (``{"stream": {"name", "created_at", "first_sequence_number",
"last_sequence_number"}}``). The stream's own "flushed up to N" marker moves
afterwards. A crash between the two is repaired by the next flush, which reads
the ranges back from the datasets' lineage before choosing what to write, so
the datasets and the marker can never disagree into a lost or doubled record.
One flusher at a time holds a stream's flush lease (renewed per chunk; taken over at
once from a process on this machine that died, else after it expires).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.errors import Conflict, NotFound
from kiln.lake import _tables as lake
from kiln.lake.streams import _tables as t
from kiln.lake.streams._models import FlushResult
from kiln.lake.streams._schema import Fitter, Misfit, declared_schema, infer_schema

if TYPE_CHECKING:
    from kiln.lake.streams._service import StreamService

__all__ = ["MAX_FLUSH_ROWS", "flush", "flushed_upto"]

MAX_FLUSH_ROWS = 100_000
_LEASE_S = 60.0

DLQ_SCHEMA = pa.schema([
    ("sequence_number", pa.int64()),
    ("time", pa.timestamp("us", tz="UTC")),
    ("stream", pa.string()),
    ("reason", pa.string()),
    ("record", pa.string()),
])


def flushed_upto(conn: Connection, dataset: str, stream: str, created_at: float) -> int:
    """The highest sequence number of ``stream`` that ``dataset``'s lineage says it holds.

    A stream is known by its name and creation time, so a stream deleted and made
    again under the same name (or one from another workspace, in an imported
    bundle) is not mistaken for this one.
    """
    q = (
        sa.select(lake.versions.c.lineage)
        .join(lake.datasets, lake.datasets.c.id == lake.versions.c.dataset_id)
        .where(lake.datasets.c.name == dataset, lake.versions.c.lineage.contains('"stream"', autoescape=True))
        .order_by(lake.versions.c.version.desc())
    )
    for (text,) in conn.execute(q):
        info = orjson.loads(text).get("stream")
        if isinstance(info, dict) and info.get("name") == stream and info.get("created_at") == created_at:
            return int(info.get("last_sequence_number", 0))
    return 0


def _new_owner() -> str:
    return f"{socket.gethostname()[:64]}/{os.getpid()}/{uuid.uuid4().hex[:16]}"


def _dead(owner: str) -> bool:
    """True when ``owner`` is a process on this machine that no longer runs (killed mid-flush)."""
    host, _, rest = owner.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname()[:64] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _acquire(svc: StreamService, name: str, owner: str, wait_s: float) -> None:
    """Take the stream's flush lease: free, expired, ours, or held by a dead process here."""
    deadline = time.monotonic() + wait_s
    while True:
        now = time.time()
        with svc.ws.db.write() as conn:
            row = svc._row(conn, name, lock=True)
            if row.flush_until < now or row.flush_owner == owner or _dead(row.flush_owner):
                conn.execute(t.streams.update().where(t.streams.c.id == row.id).values(flush_owner=owner, flush_until=now + _LEASE_S))
                return
        if time.monotonic() >= deadline:
            raise Conflict(f"stream {name!r} is being flushed by another process; try again shortly")
        time.sleep(0.05)


def _release(svc: StreamService, name: str, owner: str) -> None:
    try:
        with svc.ws.db.write() as conn:
            conn.execute(t.streams.update().where(t.streams.c.name == name, t.streams.c.flush_owner == owner).values(flush_owner="", flush_until=0.0))
    except Exception:  # noqa: BLE001 - the lease expires on its own; the flush result stands
        pass


def flush(svc: StreamService, name: str, *, wait_s: float = 30.0) -> FlushResult:
    """Flush everything pending, in versions of at most MAX_FLUSH_ROWS records."""
    svc.ctx.require("editor")
    with svc.ws.db.read() as conn:
        svc._row(conn, name)
    owner = _new_owner()
    _acquire(svc, name, owner, wait_s)
    try:
        total: FlushResult | None = None
        while True:
            _acquire(svc, name, owner, 0)  # renews the lease before each chunk
            part = _flush_once(svc, name)
            if total is None:
                total = part
            else:
                total = part.model_copy(update={
                    "rows": total.rows + part.rows,
                    "dead_letter_rows": total.dead_letter_rows + part.dead_letter_rows,
                    "version": part.version or total.version,
                    "dead_letter_version": part.dead_letter_version or total.dead_letter_version,
                    "first_sequence_number": total.first_sequence_number or part.first_sequence_number,
                })
            if part.pending == 0 or part.last_sequence_number is None:
                return total
    finally:
        _release(svc, name, owner)


def _flush_once(svc: StreamService, name: str) -> FlushResult:
    from kiln.lake.datasets import DatasetService

    ws = svc.ws
    with ws.db.read() as conn:
        row = svc._row(conn, name)
        dlq = f"{row.dataset}-dlq"
        done_main = max(row.flushed_seq, flushed_upto(conn, row.dataset, name, row.created_at))
        done_dlq = max(row.flushed_seq, flushed_upto(conn, dlq, name, row.created_at))
        lo = min(done_main, done_dlq)
        hi = min(row.last_seq, lo + MAX_FLUSH_ROWS)
        raw = conn.execute(
            sa.select(t.records.c.seq, t.records.c.time, t.records.c.data)
            .where(t.records.c.stream_id == row.id, t.records.c.seq > lo, t.records.c.seq <= hi)
            .order_by(t.records.c.seq)
        ).all()
    result = FlushResult(stream=name, dataset=row.dataset, rows=0, dead_letter_dataset=dlq, dead_letter_rows=0, flushed_sequence_number=max(lo, row.flushed_seq), pending=max(0, row.last_seq - lo))
    if hi <= lo:
        if lo > row.flushed_seq:
            _mark(svc, name, lo, 0, 0)
        return result.model_copy(update={"pending": max(0, row.last_seq - lo)})
    records = [(seq, when, _loads(text)) for seq, when, text in raw]
    datasets = DatasetService(ws, svc.ctx)
    fitter = Fitter(_schema(svc, row, records))
    good: list[tuple[Any, ...]] = []
    bad: list[tuple[int, float, str, str]] = []
    for (seq, when, data), (_, _, text) in zip(records, raw, strict=True):
        try:
            values = fitter.fit(data) if isinstance(data, dict) else _not_object()
        except Misfit as exc:
            if seq > done_dlq:
                bad.append((seq, when, str(exc), text))
            continue
        if seq > done_main:
            good.append(values)
    version = dead_version = None
    if good:
        lineage = {"stream": {"name": name, "created_at": row.created_at, "first_sequence_number": done_main + 1, "last_sequence_number": hi}, "producer": "kiln.streams"}
        version = datasets.write_table(row.dataset, fitter.table(good), append=True, source={"kind": "stream", "stream": name}, lineage=lineage).version
    if bad:
        table = pa.Table.from_pydict({
            "sequence_number": [b[0] for b in bad],
            "time": [dt.datetime.fromtimestamp(b[1], tz=dt.UTC) for b in bad],
            "stream": [name] * len(bad),
            "reason": [b[2] for b in bad],
            "record": [b[3] for b in bad],
        }, schema=DLQ_SCHEMA)
        lineage = {"stream": {"name": name, "created_at": row.created_at, "first_sequence_number": done_dlq + 1, "last_sequence_number": hi}, "producer": "kiln.streams"}
        dead_version = datasets.write_table(dlq, table, append=True, source={"kind": "stream-dead-letter", "stream": name}, lineage=lineage, description=f"records of stream {name} that did not fit dataset {row.dataset}").version
    _mark(svc, name, hi, len(good), len(bad))
    return result.model_copy(update={
        "version": version, "rows": len(good), "dead_letter_version": dead_version, "dead_letter_rows": len(bad),
        "first_sequence_number": lo + 1, "last_sequence_number": hi, "flushed_sequence_number": hi,
        "pending": max(0, row.last_seq - hi),
    })


def _not_object() -> Any:
    raise Misfit("the record is not a JSON object")


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _mark(svc: StreamService, name: str, upto: int, rows: int, dead: int) -> None:
    with svc.ws.mutation(svc.ctx, action="streams.flush", resource=f"streams/{name}", details={"upto": upto, "rows": rows, "dead_letter_rows": dead}) as (conn, _):
        conn.execute(
            t.streams.update().where(t.streams.c.name == name, t.streams.c.flushed_seq < upto)
            .values(flushed_seq=upto, last_flush_at=time.time())
        )


def _schema(svc: StreamService, row: Any, records: list[tuple[int, float, Any]]) -> pa.Schema:
    """Declared columns, else the dataset's latest schema, else inferred from these records."""
    if row.schema:
        return declared_schema(orjson.loads(row.schema))
    from kiln.lake.datasets import DatasetService

    try:
        latest = DatasetService(svc.ws, svc.ctx).get(row.dataset)
    except NotFound:
        return infer_schema([d for _, _, d in records if isinstance(d, dict)])
    store = svc.ws.store
    with store.open(latest.files[0].key) as fh:
        return pq.read_schema(fh).remove_metadata()
