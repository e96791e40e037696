"""The audit trail: append-only, hash-chained, written in the caller's transaction."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from kiln.core._tables import audit_events, audit_head
from kiln.core.context import Context

__all__ = ["AuditEvent", "GENESIS", "VerifyResult", "list_events", "record", "verify"]

GENESIS = "0" * 64


class AuditEvent(BaseModel):
    """One audited action, as stored and as every face shows it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    event_id: str
    time: float
    actor: str
    action: str
    resource: str
    request_id: str
    source: str
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def _canonical(details: dict[str, Any]) -> str:
    return orjson.dumps(details, option=orjson.OPT_SORT_KEYS, default=str).decode()


def _digest(prev_hash: str, row: dict[str, Any]) -> str:
    body = orjson.dumps(
        [
            row["seq"], row["event_id"], repr(float(row["time"])), row["actor"], row["action"],
            row["resource"], row["request_id"], row["source"], row["outcome"], row["details"],
        ]
    )
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


# Built once: every audited write runs these, and compiling them each time
# was about half the cost of a small transaction.
_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
_INSERT = audit_events.insert()
_ADVANCE = (
    audit_head.update()
    .where(audit_head.c.id == 1)
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)


def record(
    conn: Connection,
    ctx: Context,
    *,
    action: str,
    resource: str,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> int:
    """Append one event inside ``conn``'s transaction; returns its sequence number."""
    head = conn.execute(_HEAD).one()
    row = {
        "seq": head.seq + 1,
        "event_id": uuid.uuid4().hex,
        "time": time.time(),
        "actor": ctx.actor[:128],
        "action": action[:64],
        "resource": resource[:300],
        "request_id": ctx.request_id[:64],
        "source": ctx.source[:64],
        "outcome": outcome,
        "details": _canonical(details or {}),
        "prev_hash": head.hash,
    }
    row["hash"] = _digest(head.hash, row)
    conn.execute(_INSERT, row)
    conn.execute(_ADVANCE, {"new_seq": row["seq"], "new_hash": row["hash"]})
    return int(row["seq"])


def _to_event(r: Any) -> AuditEvent:
    m = dict(r._mapping)
    m["details"] = orjson.loads(m["details"]) if m["details"] else {}
    return AuditEvent(**m)


def list_events(
    conn: Connection,
    *,
    actor: str | None = None,
    resource: str | None = None,
    action: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Newest first. ``resource`` matches exactly or as a prefix ending in '/'."""
    q = sa.select(audit_events)
    if actor:
        q = q.where(audit_events.c.actor == actor)
    if resource:
        q = q.where(
            sa.or_(audit_events.c.resource == resource, audit_events.c.resource.startswith(resource.rstrip("/") + "/", autoescape=True))
        )
    if action:
        q = q.where(audit_events.c.action == action)
    if since is not None:
        q = q.where(audit_events.c.time >= since)
    if until is not None:
        q = q.where(audit_events.c.time <= until)
    q = q.order_by(audit_events.c.seq.desc()).limit(limit)
    return [_to_event(r) for r in conn.execute(q)]


def verify(conn: Connection) -> VerifyResult:
    """Walk the chain; name the first event that was edited, deleted or reordered."""
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    rows = conn.execution_options(stream_results=True, yield_per=5000).execute(
        sa.select(audit_events).order_by(audit_events.c.seq)
    )
    for r in rows:
        m = dict(r._mapping)
        if m["seq"] != expected_seq:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=expected_seq, problem=f"event {expected_seq} is missing (deleted)")
        if m["prev_hash"] != expected_prev:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=m["seq"], problem=f"event {m['seq']} does not follow event {m['seq'] - 1} (reordered or a neighbour was deleted)")
        if _digest(m["prev_hash"], m) != m["hash"]:
            return VerifyResult(ok=False, checked=checked, first_bad_seq=m["seq"], problem=f"event {m['seq']} was edited: its hash does not match its content")
        expected_prev = m["hash"]
        expected_seq += 1
        checked += 1
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != checked or head.hash != expected_prev:
        return VerifyResult(ok=False, checked=checked, first_bad_seq=checked + 1 if head.seq > checked else head.seq, problem=f"the chain ends at event {checked} but the head says {head.seq}: events at the end were deleted")
    return VerifyResult(ok=True, checked=checked)
