"""Stream fixtures: the service on fresh workspaces, and the faces' in-process app, HTTP client and CLI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.core.config import Settings, load_settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
from kiln.lake.streams import StreamService
from tests.faces.conftest import app, cli, http  # noqa: F401 - fixtures shared with the faces tests


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (migrating from nothing takes a while)."""
    home = tmp_path_factory.mktemp("streams-template")
    Workspace(load_settings(home=str(home))).close()
    return home / "kiln.db"


@pytest.fixture
def settings(tmp_path: Path, _migrated: Path) -> Settings:
    home = tmp_path / "kiln"
    home.mkdir()
    shutil.copy(_migrated, home / "kiln.db")
    return load_settings(home=str(home))


@pytest.fixture
def streams(ws: Workspace) -> StreamService:
    return StreamService(ws, local_context())


@pytest.fixture
def any_streams(any_ws: Workspace) -> StreamService:
    return StreamService(any_ws, local_context())


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, _migrated: Path) -> Iterator[StreamService]:
    """One workspace for a module's bad-input tests, with a stream ``clicks``."""
    home = tmp_path_factory.mktemp("streams-shared")
    shutil.copy(_migrated, home / "kiln.db")
    ws = Workspace(load_settings(home=str(home)))
    svc = StreamService(ws, local_context())
    svc.create("clicks")
    yield svc
    ws.close()


def datasets(svc: StreamService) -> DatasetService:
    return DatasetService(svc.ws, svc.ctx)
