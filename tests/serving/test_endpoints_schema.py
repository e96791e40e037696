"""The serving branch's migration upgrades a database made before it, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from kiln.core.db import Database
from kiln.migrations import HEADS


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_from_before_endpoints_is_upgraded(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}" if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    db = Database(url)
    for head in sorted(HEADS - {"serving_0001"}):
        db.migrate(head)
    assert "kiln_endpoints" not in sa.inspect(db.engine).get_table_names()
    db.migrate()
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"kiln_endpoints", "kiln_endpoint_metrics"} <= tables
    assert db.current() == set(HEADS)
    db.dispose()
