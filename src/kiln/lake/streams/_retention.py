"""Retention: trimming the oldest records of a stream's log.

A record is trimmed when it is past retention — older than ``retention_s``, or
among the oldest while the log is bigger than ``retention_bytes`` — and only
once it is safe to lose: flushed into the dataset (so it lives on there) and
committed by every named consumer. A consumer that lags holds its records
back however old they are (Kinesis would trim them anyway): a named consumer
is a promise that it will see every record, and Kiln keeps it; the trim says
what holds records back (``held_by``), and deleting an abandoned consumer
releases them. Each chunk is one transaction that deletes the records and
moves ``trimmed_seq`` and ``log_bytes`` together, so a kill mid-trim leaves
the log whole up to the last committed chunk.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.names import check_name
from kiln.lake.streams import _tables as t
from kiln.lake.streams._models import TrimResult

if TYPE_CHECKING:
    from kiln.lake.streams._service import StreamService

__all__ = ["TRIM_CHUNK", "trim", "trimmable"]

TRIM_CHUNK = 10_000


def _safe_upto(conn: Connection, row: Any) -> int:
    """The highest sequence number that may be trimmed: flushed and committed by every consumer."""
    lowest = conn.execute(sa.select(sa.func.min(t.consumers.c.checkpoint)).where(t.consumers.c.stream_id == row.id)).scalar()
    return min(row.flushed_seq, lowest) if lowest is not None else int(row.flushed_seq)


def _past_retention(row: Any, when: float, freed: int, now: float) -> bool:
    """Whether the next oldest record is past retention, ``freed`` bytes having gone before it."""
    over = row.retention_bytes > 0 and row.log_bytes - freed > row.retention_bytes
    return when < now - row.retention_s or over


def trimmable(conn: Connection, row: Any, *, now: float | None = None) -> bool:
    """True when the stream's oldest record is past retention and safe to trim (a cheap check)."""
    now = time.time() if now is None else now
    oldest = conn.execute(
        sa.select(t.records.c.seq, t.records.c.time).where(t.records.c.stream_id == row.id, t.records.c.seq > row.trimmed_seq)
        .order_by(t.records.c.seq).limit(1)
    ).first()
    return oldest is not None and oldest.seq <= _safe_upto(conn, row) and _past_retention(row, oldest.time, 0, now)


def trim(svc: StreamService, name: str, *, chunk: int = 0) -> TrimResult:
    """Trim the stream's records past retention that are safe to lose, a chunk per transaction."""
    check_name(name, kind="stream")
    chunk = chunk or TRIM_CHUNK
    removed = removed_bytes = 0
    while True:
        now = time.time()
        with svc.ws.mutation(svc.ctx, action="streams.trim", resource=f"streams/{name}") as (conn, details):
            row = svc._row(conn, name, lock=True)
            safe = _safe_upto(conn, row)
            rows = conn.execute(
                sa.select(t.records.c.seq, t.records.c.time, sa.func.length(t.records.c.data).label("size"))
                .where(t.records.c.stream_id == row.id, t.records.c.seq > row.trimmed_seq, t.records.c.seq <= safe)
                .order_by(t.records.c.seq).limit(chunk)
            ).all()
            cut, freed = row.trimmed_seq, 0
            for rec in rows:
                if not _past_retention(row, rec.time, freed, now):
                    break
                cut, freed = rec.seq, freed + int(rec.size or 0)
            if cut > row.trimmed_seq:
                conn.execute(t.records.delete().where(t.records.c.stream_id == row.id, t.records.c.seq > row.trimmed_seq, t.records.c.seq <= cut))
            conn.execute(t.streams.update().where(t.streams.c.id == row.id).values(trimmed_seq=cut, log_bytes=t.streams.c.log_bytes - freed, last_trim_at=now))
            details.update(first=row.trimmed_seq + 1, last=cut, records=cut - row.trimmed_seq, bytes=freed)
            removed += cut - row.trimmed_seq
            removed_bytes += freed
            done = cut == row.trimmed_seq or len(rows) < chunk or cut < rows[-1].seq
            if done:
                held = _held_by(conn, row, cut, row.log_bytes - freed, now)
                return TrimResult(
                    stream=name, trimmed=removed, trimmed_bytes=removed_bytes, trimmed_sequence_number=cut,
                    records=max(0, row.last_seq - cut), bytes=max(0, row.log_bytes - freed), held_by=held,
                )


def _held_by(conn: Connection, row: Any, cut: int, size: int, now: float) -> list[str]:
    """What keeps the record after ``cut`` although it is past retention."""
    nxt = conn.execute(
        sa.select(t.records.c.seq, t.records.c.time).where(t.records.c.stream_id == row.id, t.records.c.seq > cut)
        .order_by(t.records.c.seq).limit(1)
    ).first()
    if nxt is None or not _past_retention(row, nxt.time, row.log_bytes - size, now):
        return []
    held = ["flush"] if row.flushed_seq < nxt.seq else []
    lagging = conn.execute(
        sa.select(t.consumers.c.name).where(t.consumers.c.stream_id == row.id, t.consumers.c.checkpoint < nxt.seq).order_by(t.consumers.c.name)
    ).scalars().all()
    return held + [f"consumer {c}" for c in lagging]
