from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kiln.core.config import load_settings
from kiln.core.db import Database
from kiln.core.workspace import Workspace
from kiln.testing import MetadataStoreContract


class TestSqlite(MetadataStoreContract):
    @pytest.fixture
    def workspace(self, tmp_path: Path) -> Iterator[Workspace]:
        ws = Workspace(load_settings(home=str(tmp_path)))
        yield ws
        ws.close()

    def test_wal_and_busy_timeout(self, workspace: Workspace) -> None:
        with workspace.db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000


class TestPostgres(MetadataStoreContract):
    @pytest.fixture
    def workspace(self, tmp_path: Path, pg_schema_url: str) -> Iterator[Workspace]:
        ws = Workspace(load_settings(home=str(tmp_path), database_url=pg_schema_url))
        yield ws
        ws.close()

    def test_is_really_postgres(self, workspace: Workspace) -> None:
        assert workspace.db.dialect == "postgresql"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_from_the_first_migration_keeps_data(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    db = Database(url)
    db.migrate("core@core_0001")
    assert db.current() == {"core_0001"} and "lake_0001" in db.pending()
    with db.write() as conn:
        conn.execute(sa.text("INSERT INTO kiln_tokens (id, name, role, token_hash, created_at, created_by) VALUES ('t1', 'old', 'viewer', 'h', 1.0, 'me')"))
    db.dispose()
    ws = Workspace(load_settings(home=str(tmp_path), database_url=url))
    assert ws.db.pending() == set() and len(ws.db.heads()) > 1
    with ws.db.read() as conn:
        assert conn.execute(sa.text("SELECT name FROM kiln_tokens")).scalar_one() == "old"
        assert conn.execute(sa.text("SELECT count(*) FROM lake_datasets")).scalar_one() == 0
    ws.close()


def _legacy_rows(n: int, forged: int = 0) -> list[dict[str, object]]:
    """``n`` events chained the old way (plain sha256); event ``forged`` gets another resource."""
    import hashlib

    import orjson

    prev, rows = "0" * 64, []
    for seq in range(1, n + 1):
        row = {"seq": seq, "event_id": f"{seq:032x}", "time": 1000.0 + seq, "actor": "local:old", "action": "t.write", "resource": "t/forged" if seq == forged else f"t/{seq}", "request_id": "r", "source": "local", "outcome": "success", "details": "{}"}
        body = orjson.dumps([row["seq"], row["event_id"], repr(row["time"]), row["actor"], row["action"], row["resource"], row["request_id"], row["source"], row["outcome"], row["details"]])
        prev = hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()
        rows.append({**row, "prev_hash": rows[-1]["hash"] if rows else "0" * 64, "hash": prev})
    return rows


_INSERT_OLD = sa.text("INSERT INTO kiln_audit_events VALUES (:seq, :event_id, :time, :actor, :action, :resource, :request_id, :source, :outcome, :details, :prev_hash, :hash)")


def _old_trail(url: str, n: int) -> None:
    """A database at core_0001 holding an old unkeyed trail of ``n`` events."""
    db = Database(url)
    db.migrate("core@core_0001")
    rows = _legacy_rows(n)
    with db.write() as conn:
        conn.execute(_INSERT_OLD, rows)
        conn.execute(sa.text("UPDATE kiln_audit_head SET seq = :seq, hash = :hash"), {"seq": n, "hash": rows[-1]["hash"]})
    db.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_old_sha256_trail_is_carried_over_to_keyed_macs(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from kiln.core import audit
    from kiln.core.context import local_context

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    _old_trail(url, 3)
    settings = load_settings(home=str(tmp_path), database_url=url)
    ws = Workspace(settings)
    with ws.db.read() as conn:
        upgrade = audit.list_events(conn, limit=1)[0]
    assert (upgrade.seq, upgrade.action, upgrade.details["legacy_events"], upgrade.details["legacy_ok"]) == (4, "audit.upgrade", 3, True)
    with ws.mutation(local_context(), action="t.new", resource="t/new"):
        pass
    ws.close()
    ws = Workspace(settings)  # reopening does not upgrade twice
    result = ws.verify_audit()
    assert result.ok and result.checked == 5, result
    with ws.db.engine.begin() as conn:  # an old event changed
        conn.execute(sa.text("UPDATE kiln_audit_events SET resource = 't/forged' WHERE seq = 2"))
    result = ws.verify_audit()
    assert not result.ok and result.first_bad_seq == 2, result
    ws.close()
    ws = Workspace(settings)
    with ws.db.engine.begin() as conn:  # ...and the old chain recomputed: the keyed upgrade event no longer follows it
        conn.execute(sa.text("DELETE FROM kiln_audit_events WHERE seq <= 3"))
        conn.execute(_INSERT_OLD, _legacy_rows(3, forged=2))
    result = ws.verify_audit()
    assert not result.ok and result.first_bad_seq == 1 and "sha256" in result.problem, result
    ws.close()


def test_heads_constant_is_alembics(tmp_path: Path) -> None:
    """A workspace at head opens without Alembic only if kiln.migrations.HEADS is right."""
    from kiln.migrations import HEADS

    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    assert not db._at_heads()
    db.migrate()
    assert db.current() == set(HEADS) and db.pending() == set() and db._at_heads()
    db.dispose()
