"""A NATS JetStream subject as a stream's source.

Messages are fetched through a durable pull consumer (``kiln-<stream>``),
appended to the stream in one transaction that also records the last
JetStream sequence taken, and acknowledged only after that commit. A message
redelivered because the process died between commit and ack is found among
the upstream sequences stored with the records and skipped (and acked), so
each message lands exactly once, even with several pullers at once. Stored
upstream sequences at or below the consumer's ack floor are pruned. Each pull
leaves its time and outcome on the stream (``last_pull_at``, ``last_pull_error``,
``pull_failures``), which the server's worker backs off by.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson


from kiln.core.errors import InvalidArgument, KilnError, NotFound, PayloadTooLarge, Unavailable
from kiln.lake.streams import _tables as t
from kiln.lake.streams._models import PullResult
from kiln.lake.streams._schema import invalid_record

if TYPE_CHECKING:
    from kiln.lake.streams._service import StreamService

__all__ = ["pull"]

MAX_MESSAGES = 1000


def _import_nats() -> Any:
    try:
        import nats
    except ImportError:  # pragma: no cover - depends on extras
        raise InvalidArgument("NATS sources need the nats extra: pip install 'kiln[nats]'") from None
    return nats


def pull(svc: StreamService, name: str, *, max_messages: int = MAX_MESSAGES, timeout_s: float = 1.0) -> PullResult:
    """Fetch up to ``max_messages`` from the stream's NATS source into the stream."""
    svc.ctx.require("editor")
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or not 1 <= max_messages <= MAX_MESSAGES:
        raise InvalidArgument(f"max_messages must be between 1 and {MAX_MESSAGES}")
    if not isinstance(timeout_s, int | float) or not 0.05 <= timeout_s <= 60:
        raise InvalidArgument("timeout_s must be between 0.05 and 60 seconds")
    with svc.ws.db.read() as conn:
        row = svc._row(conn, name)
    if not row.source:
        raise InvalidArgument(f"stream {name!r} has no source to pull from; create it with --source nats://host:port/subject")
    try:
        nats = _import_nats()
        result = asyncio.run(_pull(svc, nats, row, max_messages, float(timeout_s)))
    except KilnError as exc:
        _record(svc, row.id, exc.message)
        raise
    except Exception as exc:  # noqa: BLE001 - the NATS client's own errors (a connection lost mid-pull...)
        error = Unavailable(f"pulling from NATS at {urlsplit(row.source).netloc.rpartition('@')[2]} failed: {type(exc).__name__}: {exc}")
        _record(svc, row.id, error.message)
        raise error from None
    _record(svc, row.id, "")
    return result


def _record(svc: StreamService, stream_id: int, error: str) -> None:
    """The stream's last pull: when, and why it failed ('' when it worked)."""
    s = t.streams
    failures = s.c.pull_failures + 1 if error else 0
    with svc.ws.db.write() as conn:
        conn.execute(s.update().where(s.c.id == stream_id).values(last_pull_at=time.time(), last_pull_error=error[:2000], pull_failures=failures))


async def _pull(svc: StreamService, nats: Any, row: Any, max_messages: int, timeout_s: float) -> PullResult:
    from nats.errors import NoServersError, TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    parts = urlsplit(row.source)
    server = f"nats://{parts.netloc}"
    subject = parts.path.lstrip("/")
    durable = f"kiln-{row.name}"
    try:
        # max_reconnect_attempts=0 would mean "forever" to nats-py; one quick try is the point.
        nc = await nats.connect(server, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.1, error_cb=_quiet)
    except (NoServersError, OSError, asyncio.TimeoutError) as exc:
        raise Unavailable(f"cannot reach NATS at {parts.hostname}:{parts.port or 4222}: {exc or type(exc).__name__}; is nats-server running with -js?") from None
    try:
        js = nc.jetstream()
        try:
            stream_name = await js.find_stream_name_by_subject(subject)
        except NotFoundError:
            raise NotFound(f"no JetStream stream captures subject {subject!r} on {server}; create one first (e.g. `nats stream add --subjects '{subject}'`)") from None
        try:
            info = await js.consumer_info(stream_name, durable)
        except NotFoundError:
            info = await js.add_consumer(stream_name, ConsumerConfig(
                durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                filter_subject=subject, ack_wait=30,
            ))
        # Everything at or below the ack floor was acknowledged, so is never redelivered.
        ack_floor = int(getattr(getattr(info, "ack_floor", None), "stream_seq", 0) or 0)
        sub = await js.pull_subscribe_bind(durable, stream=stream_name)
        try:
            msgs = await sub.fetch(max_messages, timeout=timeout_s)
        except (NatsTimeout, asyncio.TimeoutError):
            msgs = []
        result = PullResult(stream=row.name, source=row.source, fetched=len(msgs), added=0, duplicates=0, invalid=0)
        if not msgs:
            return result
        payloads: list[str] = []
        invalid = 0
        for msg in msgs:
            text, ok = _payload(msg.data)
            payloads.append(text)
            invalid += not ok
        seqs = [m.metadata.sequence.stream for m in msgs]
        put = await asyncio.to_thread(svc._append, row.name, payloads, source_seqs=seqs, ack_floor=ack_floor, audit=True)
        # Acknowledged only now that the records are committed.
        for msg in msgs:
            await msg.ack()
        await nc.flush(timeout=5)
        return result.model_copy(update={
            "added": put.count, "duplicates": len(msgs) - put.count, "invalid": invalid,
            "first_sequence_number": put.first_sequence_number if put.count else None,
            "last_sequence_number": put.last_sequence_number if put.count else None,
        })
    finally:
        await nc.close()


async def _quiet(exc: Exception) -> None:
    """nats-py logs every connection error with a traceback; Kiln raises one clear error instead."""


def _payload(data: bytes) -> tuple[str, bool]:
    """A message as record text; one that is not a JSON object is kept as an invalid record."""
    from kiln.lake.streams._service import MAX_RECORD_BYTES

    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return orjson.dumps(invalid_record(f"the message is not JSON: {exc}", data)).decode(), False
    if not isinstance(value, dict):
        return orjson.dumps(invalid_record(f"the message is JSON {type(value).__name__}, not an object", data)).decode(), False
    text = orjson.dumps(value).decode()
    if len(text) > MAX_RECORD_BYTES:
        return orjson.dumps(invalid_record(str(PayloadTooLarge(f"the message is {len(text):,} bytes, over {MAX_RECORD_BYTES:,}")), data[:1000])).decode(), False
    return text, True
