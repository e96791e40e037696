"""`kiln server` authenticates local use like Jupyter: a token file in KILN_HOME that the
CLI and SDK on this machine pick up; --no-auth is an explicit, loud opt-out."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

import kiln
from kiln.core.auth import LOCAL_TOKEN_FILE
from kiln.core.config import Settings
from kiln.core.errors import Unauthenticated

from .conftest import real_kiln_server


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`kiln server` up to the point where uvicorn would start serving."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return calls


def test_server_makes_and_prints_its_token_file(cli: Any, settings: Settings, no_serving: list[dict[str, Any]]) -> None:
    result = cli("server", "--port", "8399")
    path = settings.home / LOCAL_TOKEN_FILE
    assert result.code == 0 and no_serving == [{"host": "127.0.0.1", "port": 8399, "log_level": "warning", "access_log": False}]
    assert "(auth on)" in result.out and f"local admin token: {path}" in result.out
    assert "KILN_URL=http://127.0.0.1:8399 kiln" in result.out and "kiln tokens create" in result.out
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text().strip() not in result.out


def test_no_auth_is_loud_and_writes_no_token(cli: Any, settings: Settings, no_serving: list[dict[str, Any]]) -> None:
    result = cli("server", "--no-auth")
    assert result.code == 0 and no_serving and "(auth OFF)" in result.out
    assert "WARNING: --no-auth" in result.err and "any user of this machine" in result.err
    assert not (settings.home / LOCAL_TOKEN_FILE).exists()


def test_server_refuses_a_token_file_others_can_read(cli: Any, settings: Settings, no_serving: list[dict[str, Any]]) -> None:
    assert cli("server").code == 0
    os.chmod(settings.home / LOCAL_TOKEN_FILE, 0o644)
    result = cli("server")
    assert result.code == 2 and "other users" in result.err and not no_serving[1:]


def test_cli_and_sdk_use_the_token_of_a_real_server(cli: Any, tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with real_kiln_server(tmp_path, migrated_db, wait_s=30) as (url, home, log):
        assert str(home / LOCAL_TOKEN_FILE) in log.read_text()
        # No token: refused, even from this machine with the client header.
        assert httpx.get(f"{url}/v1/datasets", headers={"x-kiln-client": "1"}).status_code == 401
        with kiln.Client(url, home=str(home)) as client:  # no token given: the file is used
            [token] = client.tokens.list()
            assert token.name.startswith("local-server-") and token.role == "admin"
        with kiln.Client(url, home=str(tmp_path / "other-home")) as stranger, pytest.raises(Unauthenticated):
            stranger.tokens.list()
        monkeypatch.setenv("KILN_HOME", str(home))
        monkeypatch.setenv("KILN_URL", url)  # and no KILN_TOKEN: the CLI finds the file
        created = cli("tokens", "create", "ci", "--role", "viewer")
        assert created.code == 0, created.err
        with kiln.Client(url, home=str(home)) as client:
            assert sorted(t.role for t in client.tokens.list()) == ["admin", "viewer"]


def test_doctor_shows_the_auth_mode(cli: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch, no_serving: list[dict[str, Any]]) -> None:
    def auth_check() -> dict[str, Any]:
        result = cli("doctor", "--json")
        return next(c for c in json.loads(result.out)["checks"] if c["part"] == "auth")

    assert "no local token yet" in auth_check()["detail"]
    cli("server")
    assert auth_check()["ok"] and str(settings.home / LOCAL_TOKEN_FILE) in auth_check()["detail"]
    os.chmod(settings.home / LOCAL_TOKEN_FILE, 0o644)
    assert not auth_check()["ok"]
    monkeypatch.setenv("KILN_AUTH", "false")
    assert auth_check()["detail"].startswith("off (--no-auth)")
