"""StreamService: the durable record log, positions, named consumers with leases.

Every record gets the next sequence number of its stream inside the
transaction that stores it; the stream's row is locked for that transaction,
so sequence numbers are contiguous and commit in order, and a reader that has
seen ``N`` never later finds a smaller committed number.

Consumers: each named consumer sees every record. A read claims the next
range for the caller with a lease; a second worker of the same consumer gets
the range after it, never the same one. Committing a lease moves the
consumer's checkpoint past every range below it that is committed. A lease
not committed in time is handed to the next reader (at-least-once).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from itertools import repeat
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PayloadTooLarge
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.lake.streams import _tables as t
from kiln.lake.streams._models import Consumer, FlushResult, Position, PullResult, PutResult, ReadResult, Stream, StreamRecord, TrimResult
from kiln.lake.streams._schema import check_columns

__all__ = ["DEFAULT_RETENTION_S", "MAX_BATCH_RECORDS", "MAX_READ", "MAX_RECORD_BYTES", "StreamService"]

MAX_BATCH_RECORDS = 10_000
MAX_RECORD_BYTES = 1 << 20
MAX_READ = 10_000
DEFAULT_RETENTION_S = 7 * 86_400.0
MAX_RETENTION_S = 10 * 365 * 86_400.0
_LEASE_RE = re.compile(r"[0-9a-f]{32}")
_SUBJECT_RE = re.compile(r"[A-Za-z0-9_\-*>]+(\.[A-Za-z0-9_\-*>]+)*")
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _position(position: Position | str) -> Position:
    try:
        return Position(position.upper() if isinstance(position, str) else position)
    except ValueError:
        raise InvalidArgument(f"unknown position {position!r}: use {', '.join(p.value for p in Position)}") from None


def _start_after(position: Position | str, sequence_number: int | None, last_seq: int, trimmed_seq: int = 0) -> int:
    """The sequence number a read starts after; a trimmed position starts at the oldest kept record."""
    pos = _position(position)
    if pos in (Position.AT_SEQUENCE_NUMBER, Position.AFTER_SEQUENCE_NUMBER):
        if sequence_number is None or isinstance(sequence_number, bool) or not isinstance(sequence_number, int) or not 0 <= sequence_number < 2**63:
            raise InvalidArgument(f"{pos.value} needs a sequence number from 0 to 2**63-1 (sequence_number=N, or --from N)")
        return max(trimmed_seq, sequence_number - 1 if pos is Position.AT_SEQUENCE_NUMBER else sequence_number)
    if sequence_number is not None:
        raise InvalidArgument(f"a sequence number goes with AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER, not {pos.value}")
    return last_seq if pos is Position.LATEST else trimmed_seq


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ:
        raise InvalidArgument(f"limit must be between 1 and {MAX_READ}")
    return limit


def encode_records(records: Any) -> list[str]:
    """Each record as compact JSON text; refuses what is not a batch of JSON objects."""
    if not isinstance(records, list | tuple):
        raise InvalidArgument('records must be a list of JSON objects: {"records": [{...}, ...]}')
    if not records:
        raise InvalidArgument("the batch is empty: send at least one record")
    if len(records) > MAX_BATCH_RECORDS:
        raise PayloadTooLarge(f"a batch holds at most {MAX_BATCH_RECORDS} records (got {len(records)}); split it, or use the SDK producer, which batches for you")
    dumps = orjson.dumps
    if set(map(type, records)) == {dict}:
        # One pass for the usual batch; a UTF-8 character is at most 4 bytes, so text of at
        # most a quarter of the limit in characters is within it (longer text is measured below).
        try:
            encoded = [dumps(rec, option=_DUMPS_OPTS).decode() for rec in records]
        except TypeError:
            pass  # the loop below names the record
        else:
            if max(map(len, encoded)) <= MAX_RECORD_BYTES // 4:
                return encoded
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidArgument(f"record {i} is {type(rec).__name__ if rec is not None else 'null'}, not a JSON object: send objects like {{\"user\": 1}}")
        try:
            data = dumps(rec, option=_DUMPS_OPTS)
        except TypeError as exc:
            raise InvalidArgument(f"record {i} cannot be written as JSON: {exc}") from None
        if len(data) > MAX_RECORD_BYTES:
            raise PayloadTooLarge(f"record {i} is {len(data):,} bytes; a record may be at most {MAX_RECORD_BYTES:,} bytes")
        out.append(data.decode())
    return out


def check_source(source: str) -> str:
    """Validate ``nats://host:port/subject`` (the only upstream kind today)."""
    if not isinstance(source, str) or len(source) > 1000:
        raise InvalidArgument("invalid stream source: use nats://host:port/subject")
    parts = urlsplit(source)
    if parts.scheme != "nats" or not parts.hostname:
        raise InvalidArgument(f"unsupported stream source {source!r}: use nats://host:port/subject (a NATS JetStream subject)")
    try:
        _ = parts.port
    except ValueError:
        raise InvalidArgument(f"invalid port in {source!r}") from None
    subject = parts.path.lstrip("/")
    if not _SUBJECT_RE.fullmatch(subject) or parts.query or parts.fragment:
        raise InvalidArgument(f"invalid NATS subject {subject!r} in {source!r}: use tokens of letters, digits, '-', '_' separated by '.' (wildcards * and > allowed)")
    return source


def _check_flush(flush_rows: int, flush_interval_s: float) -> None:
    if isinstance(flush_rows, bool) or not isinstance(flush_rows, int) or not 1 <= flush_rows <= 10_000_000:
        raise InvalidArgument("flush_rows must be between 1 and 10000000")
    if isinstance(flush_interval_s, bool) or not isinstance(flush_interval_s, int | float) or not 0.1 <= float(flush_interval_s) <= 86_400:
        raise InvalidArgument("flush_interval_s must be between 0.1 and 86400 seconds")


def _check_retention(retention_s: float, retention_bytes: int) -> None:
    if isinstance(retention_s, bool) or not isinstance(retention_s, int | float) or not 0 <= float(retention_s) <= MAX_RETENTION_S:
        raise InvalidArgument(f"retention_s must be between 0 and {MAX_RETENTION_S:.0f} seconds (10 years); the default keeps 7 days")
    if isinstance(retention_bytes, bool) or not isinstance(retention_bytes, int) or not 0 <= retention_bytes < 2**63:
        raise InvalidArgument("retention_bytes must be a whole number of bytes, 0 for no size bound")


def _check_description(description: str) -> None:
    if not isinstance(description, str) or len(description) > 10_000:
        raise InvalidArgument("description must be text of at most 10000 characters")


def _mask(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class StreamService:
    """Everything the faces can do with streams."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- streams -----------------------------------------------------------------

    def create(self, name: str, *, dataset: str | None = None, columns: dict[str, str] | None = None, source: str | None = None, follow: bool = False, flush_rows: int = 10_000, flush_interval_s: float = 60.0, retention_s: float = DEFAULT_RETENTION_S, retention_bytes: int = 0, description: str = "") -> Stream:
        """Create a stream that flushes into ``dataset`` (default: the stream's name).

        Args:
            name: stream name.
            dataset: dataset the stream flushes into; ``<dataset>-dlq`` takes misfits.
            columns: declared schema ``{column: type}``; default: the dataset's, or
                inferred from the first flush.
            source: ``nats://host:port/subject`` to pull from a NATS JetStream subject.
            follow: the server's worker pulls the source continuously (needs ``source``).
            flush_rows: flush once this many records are pending.
            flush_interval_s: flush once the oldest pending record is this old.
            retention_s: trim records older than this once they are flushed and every
                named consumer committed them (default 7 days).
            retention_bytes: trim the oldest records (flushed and committed) while the
                log is bigger than this; 0 for no size bound.
            description: free text.

        Raises:
            AlreadyExists: a stream of that name exists.
            InvalidArgument: a bad name, schema, source or threshold.
        """
        check_name(name, kind="stream")
        target = check_name(dataset or name, kind="dataset")
        if len(target) > 59:
            raise InvalidArgument(f"dataset name {target!r} is too long to add '-dlq' for its dead-letter dataset: use at most 59 characters")
        cols = check_columns(columns) if columns is not None else None
        src = check_source(source) if source else ""
        if not isinstance(follow, bool):
            raise InvalidArgument("follow must be true or false")
        if follow and not src:
            raise InvalidArgument("follow needs a source to pull from: add --source nats://host:port/subject")
        _check_flush(flush_rows, flush_interval_s)
        _check_retention(retention_s, retention_bytes)
        _check_description(description)
        now = time.time()
        values = dict(
            name=name, description=description, dataset=target, schema=orjson.dumps(cols).decode() if cols else "",
            source=src, flush_rows=flush_rows, flush_interval_s=float(flush_interval_s), created_at=now,
            created_by=self.ctx.actor, last_seq=0, flushed_seq=0, last_flush_at=0.0,
            flush_owner="", flush_until=0.0, follow=follow, last_pull_at=0.0, last_pull_error="", pull_failures=0,
            retention_s=float(retention_s), retention_bytes=retention_bytes, trimmed_seq=0, log_bytes=0, last_trim_at=0.0,
        )
        try:
            with self.ws.mutation(self.ctx, action="streams.create", resource=f"streams/{name}", details={"dataset": target, "source": _mask(src)}) as (conn, _):
                if conn.execute(sa.select(t.streams.c.id).where(t.streams.c.name == name)).first() is not None:
                    raise AlreadyExists(f"stream {name!r} exists; `kiln streams show {name}` describes it")
                conn.execute(t.streams.insert().values(**values))
        except IntegrityError:
            raise AlreadyExists(f"stream {name!r} exists; `kiln streams show {name}` describes it") from None
        return self.get(name)

    def list(self) -> list[Stream]:
        self.ctx.require("viewer")
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(t.streams).order_by(t.streams.c.name)).all()
        return [_stream(r) for r in rows]

    def get(self, name: str) -> Stream:
        self.ctx.require("viewer")
        with self.ws.db.read() as conn:
            return _stream(self._row(conn, name))

    def update(self, name: str, *, follow: bool | None = None, flush_rows: int | None = None, flush_interval_s: float | None = None, retention_s: float | None = None, retention_bytes: int | None = None, description: str | None = None) -> Stream:
        """Change a stream's settings; an argument left None stays as it is.

        Raises:
            InvalidArgument: a bad value, or ``follow`` on a stream without a source.
            NotFound: no such stream.
        """
        check_name(name, kind="stream")
        with self.ws.mutation(self.ctx, action="streams.update", resource=f"streams/{name}") as (conn, details):
            row = self._row(conn, name, lock=True)
            values: dict[str, Any] = {}
            if follow is not None:
                if not isinstance(follow, bool):
                    raise InvalidArgument("follow must be true or false")
                if follow and not row.source:
                    raise InvalidArgument(f"stream {name!r} has no source to follow; make a stream with --source nats://host:port/subject")
                if follow != bool(row.follow):
                    values.update(follow=follow, pull_failures=0, last_pull_error="")
            if flush_rows is not None or flush_interval_s is not None:
                rows = row.flush_rows if flush_rows is None else flush_rows
                every = row.flush_interval_s if flush_interval_s is None else flush_interval_s
                _check_flush(rows, every)
                values.update(flush_rows=rows, flush_interval_s=float(every))
            if retention_s is not None or retention_bytes is not None:
                keep_s = row.retention_s if retention_s is None else retention_s
                keep_bytes = row.retention_bytes if retention_bytes is None else retention_bytes
                _check_retention(keep_s, keep_bytes)
                values.update(retention_s=float(keep_s), retention_bytes=keep_bytes)
            if description is not None:
                _check_description(description)
                values.update(description=description)
            if values:
                conn.execute(t.streams.update().where(t.streams.c.id == row.id).values(**values))
            details.update({k: v for k, v in values.items() if k not in ("pull_failures", "last_pull_error", "description")})
        return self.get(name)

    def set_follow(self, name: str, *, follow: bool) -> Stream:
        """Start (``follow=True``) or stop the server's continuous pull of the stream's source."""
        return self.update(name, follow=follow)

    def trim(self, name: str) -> TrimResult:
        """Trim now: drop records past retention that are flushed and committed by every consumer.

        Raises:
            NotFound: no such stream.
        """
        from kiln.lake.streams._retention import trim

        return trim(self, name)

    def delete(self, name: str) -> Stream:
        """Delete a stream, its records, consumers and leases (its datasets stay)."""
        with self.ws.mutation(self.ctx, action="streams.delete", resource=f"streams/{name}") as (conn, details):
            row = self._row(conn, name, lock=True)
            conn.execute(t.leases.delete().where(t.leases.c.stream_id == row.id))
            conn.execute(t.consumers.delete().where(t.consumers.c.stream_id == row.id))
            conn.execute(t.records.delete().where(t.records.c.stream_id == row.id))
            conn.execute(t.streams.delete().where(t.streams.c.id == row.id))
            details["records"] = row.last_seq
        return _stream(row)

    # -- writing -----------------------------------------------------------------

    def put_records(self, name: str, records: list[dict[str, Any]]) -> PutResult:
        """Append a batch; it is acknowledged (returned) only once it is committed.

        Raises:
            InvalidArgument: a record is not a JSON object, or the batch is empty.
            PayloadTooLarge: more than 10,000 records, or a record over 1 MiB.
            NotFound: no such stream.
        """
        check_name(name, kind="stream")
        self.ctx.require("editor")
        return self._append(name, encode_records(records))

    def _append(self, name: str, payloads: list[str], *, source_seqs: list[int] | None = None, ack_floor: int = 0, audit: bool = False) -> PutResult:
        """Store a batch under the stream's row lock; upstream sequences already stored are skipped.

        Appends by producers are data-plane writes, like Kinesis' PutRecords: the
        log itself records each one (sequence number, time), and an audit event
        per batch would cost more than the batch. Pulls from a source are audited.
        """
        now = time.time()
        if source_seqs is None and not audit:
            return self._append_fast(name, payloads, now)
        with self._write(audit, action="streams.pull", resource=f"streams/{name}", details={"count": len(payloads)}) as (conn, details):
            if source_seqs is not None:
                sid = conn.execute(sa.select(t.streams.c.id).where(t.streams.c.name == name).with_for_update()).scalar()
                if sid is None:
                    raise NotFound(_no_stream(name))
                payloads, fresh = _skip_seen(conn, sid, payloads, source_seqs, ack_floor)
                details["duplicates"] = len(source_seqs) - len(fresh)
            n = len(payloads)
            # One statement locks the stream's row, takes n sequence numbers and says which.
            got = conn.exec_driver_sql(_sql(conn, _RESERVE), (n, sum(map(len, payloads)), name)).first()
            if got is None:
                raise NotFound(_no_stream(name))
            sid, last = got
            first = last - n + 1
            if n:
                conn.exec_driver_sql(_sql(conn, _INSERT), [(sid, first + i, now, p) for i, p in enumerate(payloads)])
            details["first"] = first
            details["last"] = last
        return PutResult(stream=name, count=n, first_sequence_number=first, last_sequence_number=first + n - 1)

    def _append_fast(self, name: str, payloads: list[str], now: float) -> PutResult:
        """A producer's batch: the same transaction as :meth:`_append`'s (the stream's row
        locked, sequence numbers taken, the records inserted, one commit), on the DBAPI
        cursor, since this runs once per batch at the producer's full rate."""
        self.ctx.require("editor")
        n = len(payloads)
        db = self.ws.db
        qmark = db.dialect == "sqlite"
        with db.raw_write() as cur:
            cur.execute(_RESERVE if qmark else _RESERVE_PG, (n, sum(map(len, payloads)), name))
            got = cur.fetchone()
            if got is None:
                raise NotFound(_no_stream(name))
            sid, last = got
            first = last - n + 1
            cur.executemany(_INSERT if qmark else _INSERT_PG, list(zip(repeat(sid, n), range(first, last + 1), repeat(now, n), payloads)))
        return PutResult(stream=name, count=n, first_sequence_number=first, last_sequence_number=last)

    @contextmanager
    def _write(self, audit: bool, **kwargs: Any) -> Iterator[tuple[Connection, dict[str, Any]]]:
        if audit:
            with self.ws.mutation(self.ctx, **kwargs) as (conn, details):
                yield conn, details
        else:
            self.ctx.require("editor")
            with self.ws.db.write() as conn:
                yield conn, {}

    # -- reading -----------------------------------------------------------------

    def read(self, name: str, *, position: Position | str = Position.TRIM_HORIZON, sequence_number: int | None = None, limit: int = 1000) -> ReadResult:
        """Records from a position, without a consumer (nothing is claimed or committed)."""
        self.ctx.require("viewer")
        check_name(name, kind="stream")
        _check_limit(limit)
        with self.ws.db.read() as conn:
            row = self._row(conn, name)
            after = _start_after(position, sequence_number, row.last_seq, row.trimmed_seq)
            records = _fetch(conn, row.id, after, limit=limit)
        last = records[-1].sequence_number if records else after
        return ReadResult(stream=name, records=records, next_sequence_number=last + 1, behind=max(0, row.last_seq - last))

    def read_consumer(self, name: str, consumer: str, *, limit: int = 1000, position: Position | str = Position.TRIM_HORIZON, sequence_number: int | None = None, lease_s: float = 60.0) -> ReadResult:
        """Claim the next records for a named consumer; commit the lease when done.

        A consumer that does not exist yet starts at ``position``. A lease not
        committed within ``lease_s`` is handed to the next reader.
        """
        check_name(name, kind="stream")
        check_name(consumer, kind="consumer")
        self.ctx.require("editor")
        _check_limit(limit)
        if not isinstance(lease_s, int | float) or not 1 <= lease_s <= 3600:
            raise InvalidArgument("lease_s must be between 1 and 3600 seconds")
        _position(position)
        with self.ws.db.write() as conn:
            row = self._row(conn, name)
            cons = self._consumer(conn, row, consumer, position=position, sequence_number=sequence_number, lock=True)
            now = time.time()
            expired = conn.execute(
                sa.select(t.leases).where(t.leases.c.stream_id == row.id, t.leases.c.consumer == consumer, t.leases.c.expires_at < now)
                .order_by(t.leases.c.first_seq).limit(1)
            ).first()
            if expired is not None:
                conn.execute(t.leases.delete().where(t.leases.c.id == expired.id))
                first, last = expired.first_seq, expired.last_seq
                records = _fetch(conn, row.id, first - 1, upto=last)
            else:
                records = _fetch(conn, row.id, cons.claimed, limit=limit)
                if not records:
                    return ReadResult(stream=name, consumer=consumer, records=[], next_sequence_number=cons.claimed + 1, behind=0)
                first, last = cons.claimed + 1, records[-1].sequence_number
                conn.execute(t.consumers.update().where(t.consumers.c.stream_id == row.id, t.consumers.c.name == consumer).values(claimed=last, updated_at=now))
            lease = uuid.uuid4().hex
            expires = now + float(lease_s)
            conn.execute(t.leases.insert().values(id=lease, stream_id=row.id, consumer=consumer, first_seq=first, last_seq=last, owner=self.ctx.actor[:128], expires_at=expires))
            behind = max(0, row.last_seq - max(last, cons.claimed))
        return ReadResult(stream=name, consumer=consumer, records=records, lease=lease, lease_expires_at=expires, next_sequence_number=last + 1, behind=behind)

    def commit(self, name: str, consumer: str, lease: str) -> Consumer:
        """Mark a lease's records processed; the checkpoint moves past every committed range.

        Raises:
            Conflict: the lease was committed already, or expired and went to another reader.
        """
        check_name(name, kind="stream")
        check_name(consumer, kind="consumer")
        if not isinstance(lease, str) or not _LEASE_RE.fullmatch(lease):
            raise InvalidArgument(f"invalid lease {str(lease)[:80]!r}: pass the lease a consumer read returned")
        with self.ws.mutation(self.ctx, action="streams.commit", resource=f"streams/{name}/consumers/{consumer}", details={"lease": lease}) as (conn, details):
            row = self._row(conn, name)
            cons = self._consumer_row(conn, row, consumer, lock=True)
            held = conn.execute(sa.select(t.leases).where(t.leases.c.id == lease, t.leases.c.stream_id == row.id, t.leases.c.consumer == consumer)).first()
            if held is None:
                raise Conflict(f"lease {lease} of consumer {consumer!r} is not held: it was committed already, or it expired and its records went to another reader; read again")
            conn.execute(t.leases.delete().where(t.leases.c.id == lease))
            lowest = conn.execute(sa.select(sa.func.min(t.leases.c.first_seq)).where(t.leases.c.stream_id == row.id, t.leases.c.consumer == consumer)).scalar()
            checkpoint = max(cons.checkpoint, (lowest - 1) if lowest is not None else cons.claimed)
            conn.execute(t.consumers.update().where(t.consumers.c.stream_id == row.id, t.consumers.c.name == consumer).values(checkpoint=checkpoint, updated_at=time.time()))
            details.update(first=held.first_seq, last=held.last_seq, checkpoint=checkpoint)
        return self._consumer_model(name, consumer)

    # -- consumers ---------------------------------------------------------------

    def create_consumer(self, name: str, consumer: str, *, position: Position | str = Position.TRIM_HORIZON, sequence_number: int | None = None) -> Consumer:
        check_name(name, kind="stream")
        check_name(consumer, kind="consumer")
        with self.ws.mutation(self.ctx, action="streams.consumer.create", resource=f"streams/{name}/consumers/{consumer}") as (conn, _):
            row = self._row(conn, name)
            exists = conn.execute(sa.select(t.consumers.c.name).where(t.consumers.c.stream_id == row.id, t.consumers.c.name == consumer)).first()
            if exists is not None:
                raise AlreadyExists(f"consumer {consumer!r} of stream {name!r} exists; delete it to start it again elsewhere")
            self._consumer(conn, row, consumer, position=position, sequence_number=sequence_number)
        return self._consumer_model(name, consumer)

    def consumers(self, name: str) -> list[Consumer]:
        self.ctx.require("viewer")
        check_name(name, kind="stream")
        with self.ws.db.read() as conn:
            row = self._row(conn, name)
            names = conn.execute(sa.select(t.consumers.c.name).where(t.consumers.c.stream_id == row.id).order_by(t.consumers.c.name)).scalars().all()
            return [self._load_consumer(conn, row, n) for n in names]

    def get_consumer(self, name: str, consumer: str) -> Consumer:
        self.ctx.require("viewer")
        check_name(name, kind="stream")
        check_name(consumer, kind="consumer")
        return self._consumer_model(name, consumer)

    def delete_consumer(self, name: str, consumer: str) -> Consumer:
        check_name(name, kind="stream")
        check_name(consumer, kind="consumer")
        with self.ws.mutation(self.ctx, action="streams.consumer.delete", resource=f"streams/{name}/consumers/{consumer}") as (conn, _):
            row = self._row(conn, name)
            gone = self._load_consumer(conn, row, consumer)
            conn.execute(t.leases.delete().where(t.leases.c.stream_id == row.id, t.leases.c.consumer == consumer))
            conn.execute(t.consumers.delete().where(t.consumers.c.stream_id == row.id, t.consumers.c.name == consumer))
        return gone

    # -- flushing and sources (implemented beside this module) ---------------------

    def flush(self, name: str, *, wait_s: float = 30.0) -> FlushResult:
        """Write pending records into dataset versions (misfits into ``<dataset>-dlq``)."""
        from kiln.lake.streams._flush import flush

        return flush(self, name, wait_s=wait_s)

    def pull(self, name: str, *, max_messages: int = 1000, timeout_s: float = 1.0) -> PullResult:
        """Pull messages from the stream's NATS JetStream source; ack only after commit."""
        from kiln.lake.streams._nats import pull

        return pull(self, name, max_messages=max_messages, timeout_s=timeout_s)

    # -- helpers -----------------------------------------------------------------

    def _row(self, conn: Connection, name: str, *, lock: bool = False) -> Any:
        check_name(name, kind="stream")
        q = sa.select(t.streams).where(t.streams.c.name == name)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(_no_stream(name))
        return row

    def _consumer_row(self, conn: Connection, stream: Any, consumer: str, *, lock: bool = False) -> Any:
        q = sa.select(t.consumers).where(t.consumers.c.stream_id == stream.id, t.consumers.c.name == consumer)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(f"stream {stream.name!r} has no consumer {consumer!r}; a first read with consumer={consumer!r} creates it")
        return row

    def _consumer(self, conn: Connection, stream: Any, consumer: str, *, position: Position | str, sequence_number: int | None, lock: bool = False) -> Any:
        """The consumer's row, created at ``position`` when missing (safe under races)."""
        q = sa.select(t.consumers).where(t.consumers.c.stream_id == stream.id, t.consumers.c.name == consumer)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is not None:
            return row
        start = _start_after(position, sequence_number, stream.last_seq, stream.trimmed_seq)
        now = time.time()
        values = dict(stream_id=stream.id, name=consumer, checkpoint=start, claimed=start, created_at=now, updated_at=now)
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(t.consumers).values(**values).on_conflict_do_nothing())
        return conn.execute(q.with_for_update() if lock else q).one()

    def _load_consumer(self, conn: Connection, stream: Any, consumer: str) -> Consumer:
        cons = self._consumer_row(conn, stream, consumer)
        in_flight = conn.execute(sa.select(sa.func.count()).select_from(t.leases).where(t.leases.c.stream_id == stream.id, t.leases.c.consumer == consumer)).scalar_one()
        return Consumer(stream=stream.name, name=consumer, checkpoint=cons.checkpoint, claimed=cons.claimed, in_flight=in_flight, lag=max(0, stream.last_seq - cons.checkpoint), created_at=cons.created_at, updated_at=cons.updated_at)

    def _consumer_model(self, name: str, consumer: str) -> Consumer:
        with self.ws.db.read() as conn:
            return self._load_consumer(conn, self._row(conn, name), consumer)


def _no_stream(name: str) -> str:
    return f"stream {name!r} does not exist; `kiln streams ls` lists streams, `kiln streams create {name}` makes it"


def _skip_seen(conn: Connection, sid: int, payloads: list[str], seqs: list[int], ack_floor: int) -> tuple[list[str], list[int]]:
    ss = t.source_seqs
    if ack_floor > 0:
        conn.execute(ss.delete().where(ss.c.stream_id == sid, ss.c.source_seq <= ack_floor))
    seen = set(conn.execute(sa.select(ss.c.source_seq).where(ss.c.stream_id == sid, ss.c.source_seq.in_(seqs))).scalars())
    keep = [(p, q) for p, q in zip(payloads, seqs, strict=True) if q not in seen and q > ack_floor]
    fresh = [q for _, q in keep]
    if fresh:
        conn.execute(ss.insert(), [{"stream_id": sid, "source_seq": q} for q in fresh])
    return [p for p, _ in keep], fresh


# A record's size is its JSON text's length, as SQL's LENGTH(data) counts it when trimming.
_RESERVE = "UPDATE lake_streams SET last_seq = last_seq + ?, log_bytes = log_bytes + ? WHERE name = ? RETURNING id, last_seq"
_INSERT = "INSERT INTO lake_stream_records (stream_id, seq, time, data) VALUES (?, ?, ?, ?)"
_RESERVE_PG = _RESERVE.replace("?", "%s")
_INSERT_PG = _INSERT.replace("?", "%s")


def _sql(conn: Connection, text: str) -> str:
    """Driver SQL in the driver's parameter style (the hot path skips SQLAlchemy's compiler)."""
    return text if conn.dialect.paramstyle == "qmark" else text.replace("?", "%s")


def _fetch(conn: Connection, stream_id: int, after: int, *, limit: int | None = None, upto: int | None = None) -> list[StreamRecord]:
    q = sa.select(t.records.c.seq, t.records.c.time, t.records.c.data).where(t.records.c.stream_id == stream_id, t.records.c.seq > after)
    if upto is not None:
        q = q.where(t.records.c.seq <= upto)
    q = q.order_by(t.records.c.seq)
    if limit is not None:
        q = q.limit(limit)
    loads = orjson.loads
    return [StreamRecord(sequence_number=r.seq, time=r.time, data=loads(r.data)) for r in conn.execute(q)]


def _stream(row: Any) -> Stream:
    return Stream(
        name=row.name, description=row.description, dataset=row.dataset, dead_letter_dataset=f"{row.dataset}-dlq",
        columns=orjson.loads(row.schema) if row.schema else None, source=_mask(row.source) or None,
        flush_rows=row.flush_rows, flush_interval_s=row.flush_interval_s, created_at=row.created_at,
        created_by=row.created_by, last_sequence_number=row.last_seq, flushed_sequence_number=row.flushed_seq,
        pending=max(0, row.last_seq - row.flushed_seq), last_flush_at=row.last_flush_at or None,
        follow=bool(row.follow), last_pull_at=row.last_pull_at or None, last_pull_error=row.last_pull_error or None,
        pull_failures=row.pull_failures, retention_s=row.retention_s, retention_bytes=row.retention_bytes,
        trimmed_sequence_number=row.trimmed_seq, records=max(0, row.last_seq - row.trimmed_seq), bytes=row.log_bytes,
        last_trim_at=row.last_trim_at or None,
    )
