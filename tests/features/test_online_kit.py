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
