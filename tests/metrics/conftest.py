"""Metrics tests run on both metadata backends: SQLite and the machine's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.context import Context
from kiln.core.workspace import Workspace
from tests.faces.conftest import cli  # noqa: F401 - the CLI runner shared with the faces tests


@pytest.fixture(params=["sqlite", "postgres"])
def mws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on SQLite, and one on PostgreSQL (a schema of its own)."""
    extra: dict[str, Any] = {}
    if request.param == "postgres":
        extra["database_url"] = request.getfixturevalue("pg_schema_url")
    workspace = Workspace(load_settings(home=str(tmp_path / "kiln"), **extra))
    yield workspace
    workspace.close()


@pytest.fixture
def client(mws: Workspace) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=mws.settings)
    yield c
    c.close()


def as_role(role: str) -> Context:
    return Context(actor=f"test:{role}", role=role, source="test")
