"""The online store kit on each backend, against the real servers on this machine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.features._base import OnlineStore, open_online_store
from kiln.testing.online_store_kit import OnlineStoreContract

REDIS_URL = os.environ.get("KILN_TEST_REDIS", "redis://127.0.0.1:6379/0")


class TestSqlite(OnlineStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[OnlineStore]:
        s = open_online_store(f"sqlite:///{tmp_path / 'online.db'}")
        yield s
        s.close()


@pytest.mark.redis
class TestRedis(OnlineStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[OnlineStore]:
        s = open_online_store(f"{REDIS_URL}?prefix=kiln-test-{uuid.uuid4().hex[:8]}")
        yield s
        s.close()


class TestPostgres(OnlineStoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[OnlineStore]:
        sep = "&" if "?" in pg_url else "?"
        s = open_online_store(f"{pg_url}{sep}table=online_{uuid.uuid4().hex[:8]}")
        yield s
        s.close()


def test_unknown_scheme_is_refused() -> None:
    from kiln.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="unsupported online store URL"):
        open_online_store("mongodb://x")


def test_a_new_sqlite_store_has_16k_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    import sqlite3

    from kiln.features._base import OnlineRow

    new = open_online_store(f"sqlite:///{tmp_path / 'new.db'}")
    old_path = tmp_path / "old.db"
    con = sqlite3.connect(old_path)  # a store made by an earlier Kiln: 4 KB pages, WAL
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE online_records (grp TEXT NOT NULL, rid TEXT NOT NULL, event_time REAL NOT NULL, expires_at REAL, data BLOB, PRIMARY KEY (grp, rid)) WITHOUT ROWID")
    con.execute("INSERT INTO online_records VALUES ('g', 'a', 1.0, NULL, x'7b7d')")
    con.commit()
    con.close()
    old = open_online_store(f"sqlite:///{old_path}")
    try:
        for store, size in ((new, 16384), (old, 4096)):
            assert store._con().execute("PRAGMA page_size").fetchone()[0] == size  # type: ignore[attr-defined]
        assert old.read("g", ["a"], now=2.0)[0] == OnlineRow("a", 1.0, None, b"{}")
        assert old.write_bulk("g", [(["a", "b"], [2.0, 2.0], [None, None], [b"1", b"2"])]) == 2
        assert [r.data for r in old.read("g", ["a", "b"], now=3.0)] == [b"1", b"2"]  # type: ignore[union-attr]
    finally:
        new.close()
        old.close()
