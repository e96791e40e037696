"""Fixtures for tracking and registry tests: workspaces on SQLite and PostgreSQL, local and remote clients.

tests/registry/conftest.py re-exports these.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.core.config import load_settings
from kiln.core.workspace import Workspace
from kiln.sdk.client import Client
from kiln.server.app import create_app

with warnings.catch_warnings():
    # Starlette's TestClient warns once at import about httpx; nothing to act on in tests.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from tests.conftest import TRAVERSAL, pg_schema  # noqa: E402,F401 - TRAVERSAL: shared list, re-exported for this package's tests


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (migrating takes a second or more)."""
    home = tmp_path_factory.mktemp("template")
    Workspace(load_settings(home=home)).close()
    return home / "kiln.db"


@pytest.fixture(scope="session")
def _pg_ws(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace on a PostgreSQL schema of its own for the session (fails when the server is down)."""
    with pg_schema(pg_url) as url:
        ws = Workspace(load_settings(home=tmp_path_factory.mktemp("pg"), database_url=url))
        yield ws
        ws.close()


def _sqlite_ws(template: Path, home: Path) -> Workspace:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, home / "kiln.db")
    return Workspace(load_settings(home=home))


@pytest.fixture
def sqlite_ws(_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    ws = _sqlite_ws(_template, tmp_path / "home")
    yield ws
    ws.close()


@pytest.fixture(params=["sqlite", "postgres"])
def ws(request: pytest.FixtureRequest, _template: Path, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on each metadata backend (the PostgreSQL one is shared: use unique names)."""
    if request.param == "sqlite":
        w = _sqlite_ws(_template, tmp_path / "home")
        yield w
        w.close()
    else:
        yield request.getfixturevalue("_pg_ws")


def local_client(ws: Workspace) -> Client:
    return Client(settings=ws.settings)


def remote_client(ws: Workspace) -> Client:
    tc = TestClient(create_app(ws, auth=False, allowed_hosts=["testserver"]), client=("127.0.0.1", 50000))
    return Client("http://testserver", http_transport=tc._transport)


@pytest.fixture(params=["local", "remote"])
def client(request: pytest.FixtureRequest, sqlite_ws: Workspace) -> Iterator[Client]:
    """The SDK in-process and through the REST API, over the same SQLite workspace."""
    c = local_client(sqlite_ws) if request.param == "local" else remote_client(sqlite_ws)
    yield c
    c.close()


@pytest.fixture
def rest(sqlite_ws: Workspace) -> Iterator[Any]:
    """A raw HTTP client on the REST API."""
    with TestClient(create_app(sqlite_ws, auth=False, allowed_hosts=["testserver"]), raise_server_exceptions=False, client=("127.0.0.1", 50000), headers={"x-kiln-client": "1"}) as tc:
        yield tc


@pytest.fixture
def uniq() -> str:
    """A suffix for names in the shared PostgreSQL workspace."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def cli(sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``kiln ...`` in-process on the test workspace: returns (exit code, stdout, stderr)."""
    import kiln.cli._common as common
    from kiln.cli.main import run

    monkeypatch.setattr(common, "_client", local_client(sqlite_ws))

    def invoke(*args: str) -> tuple[int, str, str]:
        import io
        import sys

        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "argv", ["kiln", *args])
        monkeypatch.setattr(common.console, "_file", out)
        monkeypatch.setattr(common.err_console, "_file", err)
        monkeypatch.setattr(sys, "stdout", out)
        code = 0
        try:
            run()
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()

    return invoke


@pytest.fixture
def raw(sqlite_ws: Workspace) -> Any:
    """Send a request with an exact path straight to the ASGI app (HTTP clients resolve '.' and '..')."""
    import asyncio
    from urllib.parse import quote, unquote

    app = create_app(sqlite_ws, auth=False, allowed_hosts=["testserver"])

    def send(method: str, path_template: str, value: str, body: bytes = b"{}") -> int:
        status, location = _once(method, path_template.format(quote(value, safe="")), body)
        if status in (307, 308) and location:  # Starlette's trailing-slash redirect: follow it once
            status, _ = _once(method, location.split("testserver", 1)[-1], body)
        return status

    def _once(method: str, raw_path: str, body: bytes) -> tuple[int, str]:
        scope = {
            "type": "http", "http_version": "1.1", "method": method, "scheme": "http", "path": unquote(raw_path),
            "raw_path": raw_path.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("testserver", 80), "headers": [
                (b"host", b"testserver"), (b"x-kiln-client", b"1"),
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            ],
        }
        status: list[int] = []
        location: list[str] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                location.extend(v.decode("latin-1") for k, v in message.get("headers", []) if k == b"location")

        asyncio.run(app(scope, receive, send_))
        return status[0], location[0] if location else ""

    return send
