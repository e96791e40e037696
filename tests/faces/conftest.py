"""Fixtures for the faces: an in-process app, a sync HTTP client over it, a CLI runner."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main

from kiln.core.config import Settings
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

CSV = b"id,city,amount\n1,paris,10.5\n2,lyon,3.25\n3,nice,7.0\n"


class SyncASGI(httpx.BaseTransport):
    """httpx's ASGITransport is async only; this runs one request to completion per call.

    Starlette's TestClient would do, but it warns about httpx (and warnings are errors).
    """

    def __init__(self, app: Any, *, client: tuple[str, int] = ("127.0.0.1", 50000), raise_app_exceptions: bool = True) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=client, raise_app_exceptions=raise_app_exceptions)
        self._runner: asyncio.Runner | None = None  # one event loop for all requests, like a server's

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        req = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        if "content-length" not in request.headers:
            req.headers.pop("content-length", None)  # keep a chunked request chunked

        async def go() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            resp = await self._asgi.handle_async_request(req)
            data = b"".join([chunk async for chunk in resp.stream])  # type: ignore[union-attr]
            return resp.status_code, resp.headers.raw, data

        if self._runner is None:
            self._runner = asyncio.Runner()
        status, headers, data = self._runner.run(go())
        # A stream, not content=: httpx then closes it on read and sets .elapsed as a server would.
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(data), request=request)

    def close(self) -> None:
        # Clients sharing this transport may each close it; the next request opens a new loop.
        if self._runner is not None:
            self._runner.close()
            self._runner = None


# What the SDK sends on every request; the server refuses state-changing requests without it
# (or a token) since a web page cannot send it cross-site.
CLIENT_HEADERS = {"x-kiln-client": "1"}


def http_client(app: Any, **kwargs: Any) -> httpx.Client:
    """A raw HTTP client on ``app`` that sends what the SDK sends (create the app with
    ``allowed_hosts=["testserver"]``: httpx's test Host)."""
    return httpx.Client(transport=SyncASGI(app, **kwargs), base_url="http://testserver", headers=CLIENT_HEADERS)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A metadata database migrated once; each test's workspace starts from a copy."""
    home = tmp_path_factory.mktemp("template")
    Workspace(Settings(home=home).resolved()).close()
    assert not (home / "kiln.db-wal").exists() or (home / "kiln.db-wal").stat().st_size == 0
    return home / "kiln.db"


@pytest.fixture
def ws(settings: Settings, migrated_db: Path) -> Iterator[Workspace]:
    settings.home.mkdir(parents=True, exist_ok=True)
    if not (settings.home / "kiln.db").exists():
        shutil.copyfile(migrated_db, settings.home / "kiln.db")
    workspace = Workspace(settings)
    yield workspace
    workspace.close()


@pytest.fixture
def app(ws: Workspace) -> Any:
    return create_app(ws, auth=False, allowed_hosts=["testserver"])


@pytest.fixture
def http(app: Any) -> Iterator[httpx.Client]:
    with http_client(app) as client:
        yield client


def upload(http: httpx.Client, name: str, data: bytes = CSV, fmt: str = "csv", **params: Any) -> httpx.Response:
    return http.post(f"/v1/datasets/{name}/versions", params={"format": fmt, **params}, content=data, headers={"content-type": "application/octet-stream"})


@dataclass
class CliResult:
    code: int
    out: str
    err: str


_COMMANDS: dict[Any, Any] = {}


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., CliResult]]:
    """Run ``kiln ARGS`` in-process on the test workspace; returns exit code, stdout, stderr.

    One SDK client serves every call of a test (made at the first call, after the test has
    set its KILN_* variables); subprocess tests cover a fresh process.
    """
    from kiln.cli import _common
    from kiln.cli.main import run
    from kiln.sdk.client import Client

    monkeypatch.setenv("KILN_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    # Typer rebuilds the click tree of every command on each call (~90% of an in-process
    # call); the tree is static, so build it once per session.
    build = _COMMANDS.setdefault("build", typer.main.get_command)
    monkeypatch.setattr(typer.main, "get_command", lambda app: _COMMANDS.get(id(app)) or _COMMANDS.setdefault(id(app), build(app)))
    shared: list[Any] = []

    def invoke(*args: str) -> CliResult:
        if not shared:
            shared.append(Client())
        monkeypatch.setattr(sys, "argv", ["kiln", *map(str, args)])
        monkeypatch.setattr(_common, "_client", shared[0])
        # Print to whatever sys.stdout/stderr are now (capsys), even if another
        # fixture pinned the consoles to a stream of its own.
        monkeypatch.setattr(_common.console, "_file", None)
        monkeypatch.setattr(_common.err_console, "_file", None)
        capsys.readouterr()
        code = 0
        try:
            run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    yield invoke
    for client in shared:
        client.close()


@contextlib.contextmanager
def real_kiln_server(tmp_path: Path, migrated_db: Path, *, wait_s: float = 60) -> Iterator[tuple[str, Path, Path]]:
    """A real ``kiln server`` subprocess on a free loopback port, auth on, over a copy of a
    migrated database (so it starts without migrating); yields (url, KILN_HOME, its log)."""
    import os
    import socket
    import subprocess
    import time

    home = tmp_path / "kiln"
    home.mkdir()
    shutil.copyfile(migrated_db, home / "kiln.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_HOME=str(home), KILN_CONFIG=str(tmp_path / "none.toml"))
    url, log = f"http://127.0.0.1:{port}", tmp_path / "server.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kiln", "server", "--port", str(port)], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, home, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)
