"""The audit trail: append-only, chained with a keyed MAC, written in the caller's transaction.

Each event's MAC is HMAC-SHA256, under a key kept outside the metadata database
(see :mod:`kiln.core._audit_anchor`), over an unambiguous encoding (a JSON array)
of every field: seq, event id, time, actor, action, resource, request id, source,
outcome, details and the previous event's MAC. The ``hash`` and ``prev_hash``
columns and fields keep their names but hold these MACs. ``kiln_audit_head`` keeps
the newest seq and MAC (and serialises writers); the head is also anchored outside
the database, in the object store, by :class:`AuditTrail`.

Trails made before the keyed chain (plain sha256, ``kiln_audit_head.scheme`` =
'sha256' after migration core_0002) are carried over once, when a workspace with
the key first opens them: the old chain is verified with the old digest, then an
``audit.upgrade`` event, MACed with the key, records how many old events there
were, the old head hash and whether the old chain verified, and chains from that
head. From then on the old events are checked with the old digest and pinned by
the MACed upgrade event: changing one and re-chaining them breaks the upgrade
event's link, and a trail of plain-sha256 events with no keyed upgrade event
after them is reported as rebuilt.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from kiln.core._audit_anchor import ANCHOR_KEY, Anchor, AnchorRead, load_key, read_anchor, write_anchor
from kiln.core._tables import audit_events, audit_head
from kiln.core.config import Settings
from kiln.core.context import Context
from kiln.core.db import Database
from kiln.core.storage import ObjectStore

__all__ = ["ANCHOR_EVERY_S", "AuditEvent", "AuditTrail", "GENESIS", "KEYED", "VerifyResult", "list_events", "record", "verify"]

GENESIS = "0" * 64
KEYED = "hmac-sha256"
LEGACY = "sha256"
ANCHOR_EVERY_S = 60.0
UPGRADE_ACTION = "audit.upgrade"

log = logging.getLogger("kiln.audit")


class AuditEvent(BaseModel):
    """One audited action, as stored and as every face shows it.

    ``hash`` is the event's HMAC-SHA256 and ``prev_hash`` the previous event's
    (events from before the keyed chain keep their plain sha256 hashes).
    """

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


def _fields(row: Any) -> list[Any]:
    return [
        int(row["seq"]), row["event_id"], repr(float(row["time"])), row["actor"], row["action"],
        row["resource"], row["request_id"], row["source"], row["outcome"], row["details"],
    ]


def _mac(key: bytes, prev_mac: str, row: Any) -> str:
    body = orjson.dumps(["kiln.audit.event/v2", *_fields(row), prev_mac])
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _legacy_digest(prev_hash: str, row: Any) -> str:
    """The unkeyed digest of trails made before core_0002; only ever checked, never written."""
    body = orjson.dumps(_fields(row))
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
    key: bytes,
    action: str,
    resource: str,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> int:
    """Append one event inside ``conn``'s transaction, MACed with ``key``; returns its seq."""
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
        "outcome": outcome[:16],
        "details": _canonical(details or {}),
        "prev_hash": head.hash,
    }
    row["hash"] = _mac(key, head.hash, row)
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


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


class _Walk:
    """Checks events in seq order: keyed MACs, or an old sha256 prefix pinned by an upgrade event."""

    def __init__(self, key: bytes, anchor_seq: int | None) -> None:
        self.key = key
        self.anchor_seq = anchor_seq
        self.prev = GENESIS
        self.checked = 0
        self.legacy = 0  # events 1..legacy passed only the old unkeyed digest
        self.keyed = False
        self.mac_at_anchor: str | None = None

    def step(self, m: Any) -> None:
        seq = self.checked + 1
        if m["seq"] != seq:
            raise _Broken(seq, f"event {seq} is missing (deleted)")
        mac_ok = hmac.compare_digest(_mac(self.key, m["prev_hash"], m), m["hash"])
        in_legacy = self.legacy and not self.keyed
        if mac_ok and in_legacy:
            self._check_upgrade(m)
        if m["prev_hash"] != self.prev:
            if in_legacy:
                raise self._rebuilt()
            raise _Broken(seq, f"event {seq} does not follow event {seq - 1} (reordered, or a neighbour was deleted or changed)")
        if mac_ok:
            self.keyed = True
        elif not self.keyed and _legacy_digest(self.prev, m) == m["hash"]:
            self.legacy = seq
        else:
            hint = " (or this workspace's audit key is not the one the trail was made with)" if seq == 1 else ""
            raise _Broken(seq, f"event {seq} was edited: its MAC does not match its content{hint}")
        if seq == self.anchor_seq:
            self.mac_at_anchor = m["hash"]
        self.prev = m["hash"]
        self.checked = seq

    def _check_upgrade(self, m: Any) -> None:
        details = orjson.loads(m["details"])  # MACed, so written by Kiln
        if m["action"] != UPGRADE_ACTION or details.get("legacy_events") != self.legacy:
            raise self._rebuilt()
        if not details.get("legacy_ok"):
            raise _Broken(
                details.get("legacy_first_bad_seq") or 1,
                f"the trail was already broken when event {m['seq']} upgraded it to keyed MACs: "
                f"{details.get('legacy_problem', 'the old sha256 chain did not verify')}",
            )

    def _rebuilt(self) -> _Broken:
        return _Broken(
            1,
            f"events 1 to {self.legacy} carry plain sha256 hashes, not MACs under this workspace's "
            "audit key, and no keyed upgrade event vouches for them: the chain was rebuilt, or "
            "events from before the upgrade were changed",
        )

    def finish(self) -> None:
        if self.legacy and not self.keyed:
            raise self._rebuilt()


def _check_head(conn: Connection, walk: _Walk) -> None:
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq > walk.checked:
        raise _Broken(walk.checked + 1, f"the chain ends at event {walk.checked} but the head says {head.seq}: events at the end were deleted")
    if head.seq != walk.checked or head.hash != walk.prev:
        raise _Broken(head.seq + 1 if head.seq < walk.checked else head.seq, f"the head (event {head.seq}) does not match the chain's last event {walk.checked}: the head was changed")


def _check_anchor(walk: _Walk, read: AnchorRead) -> None:
    if read.damage:
        raise _Broken(None, read.damage)
    anchor = read.anchor
    if anchor is None:
        if walk.checked:
            raise _Broken(None, f"the audit anchor (object {ANCHOR_KEY}) is missing from the object store, but the trail has {walk.checked} events: it was deleted, or the store is not this workspace's")
        return
    if anchor.seq > walk.checked:
        raise _Broken(walk.checked + 1, f"the trail ends at event {walk.checked} but the anchor kept outside the database records event {anchor.seq}: events {walk.checked + 1} to {anchor.seq} were deleted, or the audit tables were rolled back")
    if walk.mac_at_anchor is None or not hmac.compare_digest(walk.mac_at_anchor, anchor.mac):
        raise _Broken(anchor.seq, f"event {anchor.seq} is not the event anchored outside the database: the audit tables were rolled back or rebuilt")


def verify(conn: Connection, *, key: bytes, anchor: AnchorRead) -> VerifyResult:
    """Walk the chain and compare it with the anchor; only reads.

    Args:
        conn: a read transaction on the metadata database.
        key: the audit key the trail was MACed with.
        anchor: what :func:`~kiln.core._audit_anchor.read_anchor` found, read *before* ``conn``'s
            snapshot began (so a concurrent writer cannot make the database look behind it).

    Returns:
        ``ok``, how many events were checked, and for tampering the first missing or bad
        event (``None`` when the anchor itself is the problem) and what is wrong.
    """
    walk = _Walk(key, anchor.anchor.seq if anchor.anchor else None)
    rows = conn.execution_options(stream_results=True, yield_per=5000).execute(
        sa.select(audit_events).order_by(audit_events.c.seq)
    )
    try:
        for r in rows:
            walk.step(r._mapping)
        walk.finish()
        _check_head(conn, walk)
        _check_anchor(walk, anchor)
    except _Broken as broken:
        rows.close()
        return VerifyResult(ok=False, checked=walk.checked, first_bad_seq=broken.seq, problem=broken.problem)
    return VerifyResult(ok=True, checked=walk.checked)


def _verify_legacy(conn: Connection) -> VerifyResult:
    """Check an old unkeyed trail with its own digest (once, when carrying it over)."""
    prev, n = GENESIS, 0
    for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)):
        m = r._mapping
        if m["seq"] != n + 1 or m["prev_hash"] != prev or _legacy_digest(prev, m) != m["hash"]:
            return VerifyResult(ok=False, checked=n, first_bad_seq=n + 1, problem=f"event {n + 1} is missing, reordered or edited (old sha256 chain)")
        prev, n = m["hash"], m["seq"]
    head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != n or head.hash != prev:
        return VerifyResult(ok=False, checked=n, first_bad_seq=n + 1, problem=f"the old chain ends at event {n} but its head says {head.seq}")
    return VerifyResult(ok=True, checked=n)


class AuditTrail:
    """A workspace's audit trail: the key, the anchor outside the database, and when to write it.

    Args:
        db: the metadata database.
        key: the MAC key (see :func:`~kiln.core._audit_anchor.load_key`).
        store: returns the workspace's object store (opened on first use).
    """

    def __init__(self, db: Database, key: bytes, store: Callable[[], ObjectStore]) -> None:
        self.db = db
        self.key = key
        self._store = store
        self._lock = threading.Lock()
        self._last_anchor = float("-inf")
        self._dirty = False

    @classmethod
    def open(cls, settings: Settings, db: Database, store: Callable[[], ObjectStore]) -> AuditTrail:
        """Load the key (made here for a trail no key has MACed yet); carry an old trail over.

        Raises:
            KilnError: the key is missing, unreadable, too loosely protected or malformed.
        """
        with db.read() as conn:
            head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.scheme).where(audit_head.c.id == 1)).one()
        trail = cls(db, load_key(settings, create=head.seq == 0 or head.scheme != KEYED), store)
        if head.scheme != KEYED:
            trail._carry_over()
        return trail

    def _carry_over(self) -> None:
        with self.db.write() as conn:
            head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash, audit_head.c.scheme).where(audit_head.c.id == 1).with_for_update()).one()
            if head.scheme == KEYED:
                return  # another process did it
            if head.seq:
                old = _verify_legacy(conn)
                details: dict[str, Any] = {"from": LEGACY, "legacy_events": head.seq, "legacy_head": head.hash, "legacy_ok": old.ok}
                if not old.ok:
                    details |= {"legacy_first_bad_seq": old.first_bad_seq, "legacy_problem": old.problem}
                    log.error("the audit trail was broken before its upgrade to keyed MACs: %s", old.problem)
                ctx = Context(actor="kiln", role="admin", source="upgrade")
                record(conn, ctx, key=self.key, action=UPGRADE_ACTION, resource="audit", details=details)
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(scheme=KEYED))
        self.committed()

    def record(self, conn: Connection, ctx: Context, **kwargs: Any) -> int:
        """:func:`record` with this trail's key; call :meth:`committed` after the commit."""
        return record(conn, ctx, key=self.key, **kwargs)

    def committed(self) -> None:
        """An event committed: anchor now if the last anchor is older than a minute."""
        self._dirty = True
        if time.monotonic() - self._last_anchor >= ANCHOR_EVERY_S and self._lock.acquire(blocking=False):
            try:
                self._anchor()
            finally:
                self._lock.release()

    def flush(self) -> None:
        """Anchor the newest event now if this process wrote any since the last anchor."""
        if self._dirty:
            with self._lock:
                self._anchor()

    def _anchor(self) -> None:
        # Never raises: the change is committed already, and the next commit retries.
        self._last_anchor = time.monotonic()
        try:
            if self._advance_anchor():
                self._dirty = False
        except Exception as exc:  # noqa: BLE001 - a store or database failure is logged, not fatal
            log.warning("could not anchor the audit trail: %s", exc)

    def _advance_anchor(self) -> bool:
        store = self._store()
        with self.db.read() as conn:
            seq, mac = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
        if seq == 0:
            return True
        current = read_anchor(store, self.key)
        if current.damage:
            log.error("not anchoring the audit trail: %s; run `kiln audit verify`", current.damage)
            return False
        if current.anchor is not None:
            if current.anchor.seq >= seq:
                return True  # never backwards: another process anchored as far or further
            with self.db.read() as conn:
                at = conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq == current.anchor.seq)).scalar()
            if at != current.anchor.mac:
                log.error("not moving the audit anchor: event %d in the database is not the anchored one; run `kiln audit verify`", current.anchor.seq)
                return False
        write_anchor(store, self.key, Anchor(seq=int(seq), mac=str(mac), time=time.time()))
        return True

    def verify(self) -> VerifyResult:
        """Verify the trail against the anchor (reads the anchor first, then the database)."""
        anchor = read_anchor(self._store(), self.key)
        with self.db.read() as conn:
            return verify(conn, key=self.key, anchor=anchor)

    def close(self) -> None:
        """Anchor what this process wrote (a workspace closing)."""
        self.flush()
