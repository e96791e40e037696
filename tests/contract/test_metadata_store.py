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
