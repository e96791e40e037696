"""Replayed attacks on the audit trail: each must be caught by verify, naming the first bad event.

The attacker can rewrite the metadata database at will, but has neither the audit key
(KILN_HOME/audit.key or KILN_AUDIT_KEY) nor write access to the anchor's MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from kiln.core._audit_anchor import ANCHOR_KEY, KEY_FILE
from kiln.core._tables import audit_events, audit_head
from kiln.core.config import Settings, load_settings
from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied
from kiln.core.workspace import Workspace

CTX = Context(actor="local:alice", request_id="req")


@pytest.fixture(params=["sqlite+folder", "postgres+s3"])
def settings_any(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of a workspace on the embedded defaults, or on PostgreSQL + S3."""
    if request.param == "sqlite+folder":
        return load_settings(home=str(tmp_path / "kiln"))
    return load_settings(
        home=str(tmp_path / "kiln"),
        database_url=request.getfixturevalue("pg_schema_url"),
        storage_url=request.getfixturevalue("s3_bucket"),
        s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
    )


@pytest.fixture
def ws(settings_any: Settings) -> Iterator[Workspace]:
    """Five events written by another process that has closed (so the anchor is at 5)."""
    _write(settings_any, 5)
    workspace = Workspace(settings_any)
    yield workspace
    workspace.close()


def _write(settings: Settings, n: int) -> None:
    writer = Workspace(settings)
    try:
        for i in range(n):
            with writer.mutation(CTX, action="t.write", resource=f"t/{i}", details={"i": i}):
                pass
    finally:
        writer.close()


def _rows(ws: Workspace) -> list[dict[str, Any]]:
    with ws.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq))]


def _replace_trail(ws: Workspace, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as the whole trail and point the head at the last one, as an attacker would."""
    with ws.db.engine.begin() as conn:
        conn.execute(audit_events.delete())
        if rows:
            conn.execute(audit_events.insert(), rows)
        last = rows[-1] if rows else {"seq": 0, "hash": "0" * 64}
        conn.execute(audit_head.update().values(seq=last["seq"], hash=last["hash"]))


def _sha256(prev: str, row: dict[str, Any]) -> str:
    # The chain before the keyed MAC, recomputed by an attacker who knows the code.
    body = orjson.dumps([row["seq"], row["event_id"], repr(float(row["time"])), row["actor"], row["action"], row["resource"], row["request_id"], row["source"], row["outcome"], row["details"]])
    return hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()


def _guessed_key(prev: str, row: dict[str, Any]) -> str:
    body = orjson.dumps(["kiln.audit.event/v2", row["seq"], row["event_id"], repr(float(row["time"])), row["actor"], row["action"], row["resource"], row["request_id"], row["source"], row["outcome"], row["details"], prev])
    return hmac.new(b"0" * 32, body, hashlib.sha256).hexdigest()


def _rechain(rows: list[dict[str, Any]], start: int, digest: Any) -> list[dict[str, Any]]:
    """Renumber from 1 and recompute every link from ``start`` on with ``digest``."""
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        row = {**row, "seq": i}
        if i >= start:
            row["prev_hash"] = out[-1]["hash"] if out else "0" * 64
            row["hash"] = digest(row["prev_hash"], row)
        out.append(row)
    return out


def _bad(ws: Workspace, seq: int | None) -> str:
    result = ws.verify_audit()
    assert not result.ok and result.first_bad_seq == seq, result
    assert result.problem
    return result.problem


def test_a_new_workspace_verifies_without_an_anchor(tmp_path: Path) -> None:
    ws = Workspace(load_settings(home=str(tmp_path)))
    try:
        assert ws.verify_audit().ok and not ws.store.exists(ANCHOR_KEY)
    finally:
        ws.close()
    assert not ws.store.exists(ANCHOR_KEY), "closing without writing anchors nothing"


def test_an_intact_trail_verifies_and_is_anchored(ws: Workspace) -> None:
    result = ws.verify_audit()
    assert result.ok and result.checked == 5
    assert orjson.loads(ws.store.read_bytes(ANCHOR_KEY))["seq"] == 5
    _write(ws.settings, 2)  # events after the anchor are fine while they chain from it
    assert ws.verify_audit().ok


EDITS = {
    "time": 1.0, "actor": "local:mallory", "action": "tokens.revoke", "resource": "t/forged",
    "request_id": "forged", "source": "10.6.6.6", "outcome": "failure", "details": '{"i":99}',
    "seq": 99, "event_id": "f" * 32, "prev_hash": "1" * 64, "hash": "1" * 64,
}


@pytest.mark.parametrize("field", list(EDITS))
def test_editing_any_field_is_caught(ws: Workspace, field: str) -> None:
    with ws.db.engine.begin() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == 3).values({field: EDITS[field]}))
    _bad(ws, 3)


def test_deleting_the_last_event_and_updating_the_head_is_caught(ws: Workspace) -> None:
    _replace_trail(ws, _rows(ws)[:4])
    assert "anchor" in _bad(ws, 5)


def test_deleting_every_event_and_resetting_the_head_is_caught(ws: Workspace) -> None:
    _replace_trail(ws, [])
    assert "events 1 to 5" in _bad(ws, 1)


@pytest.mark.parametrize("digest", [_sha256, _guessed_key], ids=["plain-sha256", "guessed-key"])
@pytest.mark.parametrize("start", [2, 1], ids=["from-the-edit", "from-scratch"])
def test_editing_deleting_and_rechaining_is_caught(ws: Workspace, digest: Any, start: int) -> None:
    rows = _rows(ws)
    rows[1]["resource"] = "t/forged"
    del rows[3]
    _replace_trail(ws, _rechain(rows, start, digest))
    _bad(ws, start)


def test_a_rollback_to_an_earlier_copy_is_caught(ws: Workspace) -> None:
    earlier = _rows(ws)[:3]  # as if copied from a backup taken at event 3
    _replace_trail(ws, earlier)
    assert "rolled back" in _bad(ws, 4)
    _write(ws.settings, 3)  # genuine events after the rollback pass the anchor's seq...
    _bad(ws, 5)  # ...but event 5 is not the anchored one
    assert orjson.loads(ws.store.read_bytes(ANCHOR_KEY))["seq"] == 5, "the anchor never moves past a mismatch"


def test_the_anchor_never_moves_backwards(ws: Workspace) -> None:
    first = ws.store.read_bytes(ANCHOR_KEY)
    with ws.db.engine.begin() as conn:  # a writer whose view of the head is behind the anchor
        conn.execute(audit_head.update().values(seq=4, hash=_rows(ws)[3]["hash"]))
    ws.audit._dirty = True
    ws.audit.flush()
    assert ws.store.read_bytes(ANCHOR_KEY) == first


def test_a_missing_anchor_is_tampering(ws: Workspace) -> None:
    ws.store.delete(ANCHOR_KEY)
    assert "anchor" in _bad(ws, None) and "missing" in _bad(ws, None)


@pytest.mark.parametrize("damage", ["garbage", "seq-changed", "mac-changed", "empty"])
def test_a_damaged_anchor_is_tampering(ws: Workspace, damage: str) -> None:
    data = orjson.loads(ws.store.read_bytes(ANCHOR_KEY))
    raw = {
        "garbage": b"\x00not json",
        "seq-changed": orjson.dumps({**data, "seq": 3}),
        "mac-changed": orjson.dumps({**data, "anchor_mac": "0" * 64}),
        "empty": b"",
    }[damage]
    ws.store.put_bytes(ANCHOR_KEY, raw)
    assert "anchor" in _bad(ws, None)
    _write(ws.settings, 1)
    assert ws.store.read_bytes(ANCHOR_KEY) == raw, "a writer leaves a damaged anchor as evidence"


# -- the key ------------------------------------------------------------------------------


def test_the_key_file_is_made_owner_only_at_init(tmp_path: Path) -> None:
    Workspace(load_settings(home=str(tmp_path))).close()
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    Workspace(load_settings(home=str(tmp_path))).close()
    os.chmod(tmp_path / KEY_FILE, mode)
    with pytest.raises(PermissionDenied, match="chmod 600"):
        Workspace(load_settings(home=str(tmp_path)))


def test_a_missing_key_says_what_to_do(ws: Workspace) -> None:
    (ws.settings.home / KEY_FILE).unlink()
    with pytest.raises(NotFound, match="restore the file from a backup.*KILN_AUDIT_KEY"):
        Workspace(ws.settings)


def test_the_key_setting_replaces_the_file(tmp_path: Path) -> None:
    settings = load_settings(home=str(tmp_path), audit_key="k" * 40)
    _write(settings, 3)
    assert not (tmp_path / KEY_FILE).exists()
    ws = Workspace(settings)
    try:
        assert ws.verify_audit().ok
    finally:
        ws.close()
    other = Workspace(load_settings(home=str(tmp_path), audit_key="x" * 40))
    try:
        assert "audit key" in _bad(other, 1)
    finally:
        other.close()
    with pytest.raises(InvalidArgument, match="shorter than"):
        Workspace(load_settings(home=str(tmp_path), audit_key="short"))


def test_the_server_lifespan_anchors_what_was_written_when_it_ends(tmp_path: Path) -> None:
    import asyncio
    from types import SimpleNamespace

    from kiln.server._audit_anchor import lifespan

    ws = Workspace(load_settings(home=str(tmp_path)))
    app = SimpleNamespace(state=SimpleNamespace(workspace=ws))

    async def serve() -> None:
        async with lifespan(app):
            for i in range(3):
                with ws.mutation(CTX, action="t.write", resource=f"t/{i}"):
                    pass
            assert orjson.loads(ws.store.read_bytes(ANCHOR_KEY))["seq"] == 1, "the first commit anchors at once"

    try:
        asyncio.run(serve())
        assert orjson.loads(ws.store.read_bytes(ANCHOR_KEY))["seq"] == 3
    finally:
        ws.close()


# -- what the mutation run found untested -------------------------------------------------


def test_the_mac_formats_are_those_stored_trails_were_made_with() -> None:
    """Every stored event and anchor holds a MAC of exactly these bytes: a change would make
    every existing trail fail verification."""
    from kiln.core import _audit_anchor, audit

    row = {"seq": 1, "event_id": "e" * 32, "time": 1.5, "actor": "local:a", "action": "t.write", "resource": "t/1",
           "request_id": "q", "source": "local", "outcome": "success", "details": '{"i":1}'}
    assert audit._mac(b"0" * 32, "0" * 64, row) == _guessed_key("0" * 64, row)
    assert audit._legacy_digest("0" * 64, row) == _sha256("0" * 64, row)
    anchor = orjson.dumps(["kiln.audit.anchor/v1", 7, "f" * 64, repr(2.5)])
    assert _audit_anchor._anchor_mac(b"k" * 32, 7, "f" * 64, 2.5) == hmac.new(b"k" * 32, anchor, hashlib.sha256).hexdigest()
    # Details are MACed as sorted JSON, whatever order a database gives them back in.
    assert audit._canonical({"b": 1, "a": Path("/x")}) == '{"a":"/x","b":1}'


@pytest.mark.parametrize(("head", "first_bad"), [({"seq": 4}, 5), ({"hash": "2" * 64}, 5)], ids=["number-only", "mac-only"])
def test_a_head_with_one_field_changed_is_caught(ws: Workspace, head: dict[str, Any], first_bad: int) -> None:
    with ws.db.engine.begin() as conn:
        conn.execute(audit_head.update().values(**head))
    number = head.get("seq", 5)
    assert _bad(ws, first_bad) == f"the head (event {number}) does not match the chain's last event 5: the head was changed"


def test_listing_filters_by_resource_prefix_action_and_time_inclusively(tmp_path: Path) -> None:
    from kiln.core import audit

    ws = Workspace(load_settings(home=str(tmp_path)))
    try:
        for resource, action in [("runs/a_b", "runs.create"), ("runs/axb/1", "runs.create"), ("runs/a_b/2", "runs.delete")] + [("t/x", "t.write")] * 100:
            with ws.mutation(CTX, action=action, resource=resource):
                pass
        with ws.db.read() as conn:
            listed = audit.list_events(conn, limit=1000)
            second = next(e for e in listed if e.resource == "runs/axb/1")
            assert {e.resource for e in audit.list_events(conn, resource="runs/a_b")} == {"runs/a_b", "runs/a_b/2"}, "_ is no wildcard"
            assert len(audit.list_events(conn, resource="runs/")) == 3
            assert [e.resource for e in audit.list_events(conn, action="runs.delete")] == ["runs/a_b/2"]
            assert [e.seq for e in audit.list_events(conn, since=second.time, until=second.time)] == [second.seq]
            assert len(audit.list_events(conn)) == 100 and len(listed) == 103
    finally:
        ws.close()


def test_long_fields_are_cut_to_their_columns_and_still_verify(tmp_path: Path) -> None:
    from kiln.core import audit

    ws = Workspace(load_settings(home=str(tmp_path)))
    try:
        ctx = Context(actor="a" * 200, source="s" * 100, request_id="r" * 100)
        with ws.mutation(ctx, action="x" * 100, resource="t/" + "y" * 400):
            pass
        with ws.db.read() as conn:
            (event,) = audit.list_events(conn, limit=1)
        assert [len(v) for v in (event.actor, event.action, event.resource, event.request_id, event.source)] == [128, 64, 300, 64, 64]
        assert ws.verify_audit().ok
    finally:
        ws.close()


def _key_file(home: Path, content: bytes) -> None:
    home.mkdir(parents=True)
    fd = os.open(home / KEY_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)


def test_keys_of_the_least_length_are_taken_and_a_file_without_a_key_is_named(tmp_path: Path) -> None:
    Workspace(load_settings(home=str(tmp_path / "env"), audit_key="k" * 16)).close()
    _key_file(tmp_path / "file", b"ab" * 16 + b"\n")  # 16 bytes
    Workspace(load_settings(home=str(tmp_path / "file"))).close()
    for i, junk in enumerate([b"\xff\xfe not ascii", b"not hex at all", b"ab" * 15]):
        home = tmp_path / f"junk{i}"
        _key_file(home, junk)
        with pytest.raises(InvalidArgument, match="does not hold a key"):
            Workspace(load_settings(home=str(home)))


# -- trails from before the keyed MAC (plain sha256), carried over once ------------------


def _old_workspace(tmp_path: Path, n: int, *, edit: dict[str, Any] | None = None, head: dict[str, Any] | None = None) -> Settings:
    """Settings of a database at core_0001 holding ``n`` events chained with plain sha256;
    ``edit`` changes event 2 after it was hashed, ``head`` overrides the old head."""
    from kiln.core.db import Database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    db.migrate("core@core_0001")
    rows: list[dict[str, Any]] = []
    for seq in range(1, n + 1):
        row = {"seq": seq, "event_id": f"{seq:032x}", "time": 1000.0 + seq, "actor": "local:old", "action": "t.write", "resource": f"t/{seq}",
               "request_id": "r", "source": "local", "outcome": "success", "details": "{}", "prev_hash": rows[-1]["hash"] if rows else "0" * 64}
        rows.append({**row, "hash": _sha256(row["prev_hash"], row)})
    if edit:
        rows[1].update(edit)
    with db.write() as conn:
        if rows:
            conn.execute(audit_events.insert(), rows)
        conn.execute(sa.text("UPDATE kiln_audit_head SET seq = :seq, hash = :hash"), {"seq": n, "hash": rows[-1]["hash"] if rows else "0" * 64, **(head or {})})
    db.dispose()
    return load_settings(home=str(tmp_path / "kiln"), database_url=url)


def _upgrade_event(ws: Workspace) -> dict[str, Any]:
    (event,) = [e for e in _rows(ws) if e["action"] == "audit.upgrade"]
    return {**event, "details": orjson.loads(event["details"])}


def test_an_old_trail_is_carried_over_once_and_its_upgrade_vouches_for_it(tmp_path: Path) -> None:
    settings = _old_workspace(tmp_path, 3)
    old_head = _rows_at(settings)[-1]["hash"]
    ws = Workspace(settings)
    try:
        upgrade = _upgrade_event(ws)
        assert (upgrade["seq"], upgrade["actor"], upgrade["source"], upgrade["resource"], upgrade["prev_hash"]) == (4, "kiln", "upgrade", "audit", old_head)
        assert upgrade["details"] == {"from": "sha256", "legacy_events": 3, "legacy_head": old_head, "legacy_ok": True}
        ws.audit._carry_over()  # as a second process would, after this one did it
        assert len(_rows(ws)) == 4
        with ws.db.read() as conn:
            assert conn.execute(sa.select(audit_head.c.seq, audit_head.c.scheme)).one() == (4, "hmac-sha256")
        result = ws.verify_audit()
        assert result.ok and result.checked == 4, result
    finally:
        ws.close()


def _rows_at(settings: Settings) -> list[dict[str, Any]]:
    engine = sa.create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq))]
    finally:
        engine.dispose()


def test_an_empty_old_trail_is_carried_over_without_an_upgrade_event(tmp_path: Path) -> None:
    ws = Workspace(_old_workspace(tmp_path, 0))
    try:
        assert _rows(ws) == [] and (ws.settings.home / KEY_FILE).exists()
        with ws.db.read() as conn:
            assert conn.execute(sa.select(audit_head.c.seq, audit_head.c.scheme)).one() == (0, "hmac-sha256")
        assert ws.verify_audit().ok
    finally:
        ws.close()


@pytest.mark.parametrize(("damage", "old", "now"), [
    ({"head": {"hash": "1" * 64}}, (4, "the old chain ends at event 3 but its head says 3"),
     (4, "the trail was already broken when event 4 upgraded it to keyed MACs: the old chain ends at event 3 but its head says 3")),
    ({"head": {"seq": 4}}, (4, "the old chain ends at event 3 but its head says 4"), (4, "event 4 is missing (deleted)")),
    ({"edit": {"resource": "t/forged"}}, (2, "event 2 is missing, reordered or edited (old sha256 chain)"), (2, "event 2 was edited")),
    ({"edit": {"prev_hash": "1" * 64}}, (2, "event 2 is missing, reordered or edited (old sha256 chain)"), (1, "events 1 to 1 carry plain sha256")),
    ({"edit": {"seq": 9}}, (2, "event 2 is missing, reordered or edited (old sha256 chain)"), (2, "event 2 is missing (deleted)")),
], ids=["head-hash", "head-number", "edited", "relinked", "renumbered"])
def test_an_old_trail_broken_before_its_upgrade_stays_broken(tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: dict[str, Any], old: tuple[int, str], now: tuple[int, str]) -> None:
    with caplog.at_level("ERROR", logger="kiln.audit"):
        ws = Workspace(_old_workspace(tmp_path, 3, **damage))
    assert [r.getMessage() for r in caplog.records] == [f"the audit trail was broken before its upgrade to keyed MACs: {old[1]}"]
    try:
        details = _upgrade_event(ws)["details"]
        assert details == {"from": "sha256", "legacy_events": damage.get("head", {}).get("seq", 3), "legacy_head": details["legacy_head"],
                           "legacy_ok": False, "legacy_first_bad_seq": old[0], "legacy_problem": old[1]}
        result = ws.verify_audit()
        assert not result.ok and result.first_bad_seq == now[0] and result.problem.startswith(now[1]), result
    finally:
        ws.close()


@pytest.mark.parametrize(("action", "legacy_events"), [("t.write", 3), ("audit.upgrade", 2), ("audit.upgrade", 4)])
def test_only_an_upgrade_event_naming_every_old_event_vouches_for_them(tmp_path: Path, action: str, legacy_events: int) -> None:
    """A keyed event after old ones that is not their upgrade (made here with the key) leaves them unvouched."""
    from kiln.core import audit

    ws = Workspace(_old_workspace(tmp_path, 3))
    try:
        old_head = _rows(ws)[2]["hash"]
        with ws.db.engine.begin() as conn:
            conn.execute(audit_events.delete().where(audit_events.c.seq == 4))
            conn.execute(audit_head.update().values(seq=3, hash=old_head))
            audit.record(conn, CTX, key=ws.audit.key, action=action, resource="audit", details={"from": "sha256", "legacy_events": legacy_events, "legacy_ok": True})
        assert "events 1 to 3 carry plain sha256 hashes" in _bad(ws, 1)
    finally:
        ws.close()


def test_an_upgrade_event_saying_the_old_trail_was_broken_reports_it_even_without_where(tmp_path: Path) -> None:
    """Kiln's upgrade events name the first bad old event and the problem; one without them
    (made here with the key) still fails, at event 1, with a general problem."""
    from kiln.core import audit

    ws = Workspace(_old_workspace(tmp_path, 3))
    try:
        old_head = _rows(ws)[2]["hash"]
        with ws.db.engine.begin() as conn:
            conn.execute(audit_events.delete().where(audit_events.c.seq == 4))
            conn.execute(audit_head.update().values(seq=3, hash=old_head))
            audit.record(conn, CTX, key=ws.audit.key, action="audit.upgrade", resource="audit", details={"legacy_events": 3, "legacy_ok": False})
        assert _bad(ws, 1) == "the trail was already broken when event 4 upgraded it to keyed MACs: the old sha256 chain did not verify"
    finally:
        ws.close()
