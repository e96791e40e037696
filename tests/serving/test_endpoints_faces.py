"""Endpoints over REST (the SDK on HTTP, raw requests, roles) and from the CLI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import kiln
from kiln.core.auth import TokenService
from kiln.core.context import local_context
from kiln.core.errors import PayloadTooLarge, PermissionDenied, UnsupportedMediaType
from kiln.server.app import create_app
from tests.faces.conftest import SyncASGI

from .conftest import delete_all

pytestmark = pytest.mark.xdist_group("endpoints")


@pytest.fixture
def remote(client: kiln.Client, models: dict[str, str]) -> Iterator[dict[str, Any]]:
    ws = client.workspace
    tokens = {r: TokenService(ws, local_context()).create(name=f"as-{r}", role=r).token for r in ("viewer", "editor")}
    app = create_app(ws, auth=True)
    made = {r: kiln.Client("http://127.0.0.1:8300", token=tok, http_transport=SyncASGI(app)) for r, tok in tokens.items()}
    try:
        yield {"app": app, "tokens": tokens, **made}
    finally:
        for c in made.values():
            c.close()


def test_rest_create_invoke_and_roles(remote: dict[str, Any], client: kiln.Client) -> None:
    editor, viewer = remote["editor"], remote["viewer"]
    with pytest.raises(PermissionDenied):
        viewer.endpoints.create("web", model="times@1")
    ep = editor.endpoints.create("web", model="times@1", max_payload_mb=0.001)
    assert (ep.state, ep.variants[0].model) == ("InService", "times@1")
    got = viewer.endpoints.invoke("web", "[[1, 1]]", custom_attributes="trace=1")
    assert (orjson.loads(got.body), got.invoked_variant, got.content_type) == ([6.0], "AllTraffic", "application/json")
    assert got.custom_attributes == "trace=1"
    with pytest.raises(PayloadTooLarge, match="limit"):
        viewer.endpoints.invoke("web", "[" + "1," * 2000 + "1]")
    with pytest.raises(UnsupportedMediaType):
        viewer.endpoints.invoke("web", "1,2", content_type="text/x-unknown")
    assert [e.name for e in viewer.endpoints.list()] == ["web"]
    with pytest.raises(PermissionDenied):
        viewer.endpoints.delete("web")
    assert editor.endpoints.delete("web").state == "Deleting"
    assert client.endpoints.list() == []


def test_invoke_refuses_before_reading_the_body(remote: dict[str, Any]) -> None:
    """A caller without a token is refused before one byte of the body is read."""
    import asyncio

    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/v1/endpoints/web/invocations",
        "raw_path": b"/v1/endpoints/web/invocations", "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8300), "headers": [(b"host", b"127.0.0.1:8300"), (b"x-kiln-client", b"1"), (b"content-type", b"application/json"), (b"content-length", b"1048576")],
    }
    asyncio.run(remote["app"](scope, receive, send))
    assert status == [401] and not read


def _cli(client: kiln.Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from kiln.cli import _common
    from kiln.cli.main import run

    monkeypatch.setattr(_common, "_client", client)
    monkeypatch.setattr(sys, "argv", ["kiln", *args])
    monkeypatch.setattr(_common.console, "_file", None)
    monkeypatch.setattr(_common.err_console, "_file", None)
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_create_invoke_describe_ls_delete(client: kiln.Client, models: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        return _cli(client, monkeypatch, capsys, *args)

    code, out, err = cli("endpoints", "create", "cli-ep", "--variant", "a=times@1:3", "--variant", "b=times@2:1", "--workers", "1", "--json")
    assert code == 0, err
    made = orjson.loads(out)
    assert (made["state"], [v["name"] for v in made["variants"]]) == ("InService", ["a", "b"])
    body = tmp_path / "rows.json"
    body.write_text("[[2]]")
    code, out, err = cli("endpoints", "invoke", "cli-ep", "--body", f"@{body}", "--target-variant", "b", "--json")
    assert code == 0, err
    assert (orjson.loads(out)["body"], orjson.loads(out)["invoked_variant"]) == ("[10.0]", "b")
    code, out, _ = cli("endpoints", "invoke", "cli-ep", "--body", "[[1]]", "--target-variant", "a")
    assert (code, out.strip()) == (0, "[3.0]")
    code, out, _ = cli("endpoints", "update", "cli-ep", "--model", "times@2", "--json")
    assert code == 0 and orjson.loads(out)["generation"] == 2
    code, out, _ = cli("endpoints", "describe", "cli-ep", "--json")
    assert orjson.loads(out)["variants"][0]["model"] == "times@2"
    code, out, _ = cli("endpoints", "ls", "--json")
    assert [e["name"] for e in orjson.loads(out)] == ["cli-ep"]
    code, out, err = cli("endpoints", "create", "x", "--variant", "no-equals")
    assert code == 2 and err.startswith("error:") and "NAME=MODEL_REF:WEIGHT" in err
    code, out, err = cli("endpoints", "invoke", "ghost", "--body", "[[1]]")
    assert code == 3 and "does not exist" in err
    assert cli("endpoints", "delete", "cli-ep")[0] == 0
    assert client.endpoints.list() == []
    delete_all(client)


def test_the_cli_without_a_server_leaves_the_endpoint_running(client: kiln.Client, models: dict[str, str]) -> None:
    """`kiln endpoints create` in one process; the endpoint outlives it (detached, its own
    session) and answers `kiln endpoints invoke` from another."""
    import os
    import subprocess

    env = {**os.environ, "KILN_HOME": str(client.settings.home)}

    def kiln_cmd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kiln", *args], env=env, capture_output=True, text=True, timeout=120)

    made = kiln_cmd("endpoints", "create", "detached", "--model", "times@1", "--json")
    assert made.returncode == 0, made.stderr
    assert orjson.loads(made.stdout)["state"] == "InService"
    got = kiln_cmd("endpoints", "invoke", "detached", "--body", "[[1, 1]]")
    assert (got.returncode, got.stdout.strip()) == (0, "[6.0]"), got.stderr
    assert kiln_cmd("endpoints", "delete", "detached").returncode == 0


def test_cli_serverless_and_batching_endpoint(client: kiln.Client, models: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        return _cli(client, monkeypatch, capsys, *args)

    code, out, err = cli(
        "endpoints", "create", "sl", "--model", "times@1", "--serverless", "--memory-mb", "2048", "--max-concurrency", "5",
        "--idle-timeout", "30", "--batch-max", "8", "--json",
    )
    assert code == 0, err
    made = orjson.loads(out)
    assert made["serverless"] == {"memory_mb": 2048, "max_concurrency": 5, "idle_timeout_s": 30.0}
    assert made["batching"] == {"max_batch": 8, "max_delay_ms": 2.0}
    assert cli("endpoints", "invoke", "sl", "--body", "[[1]]")[1].strip() == "[3.0]"
    code, out, _ = cli("endpoints", "update", "sl", "--no-batching", "--json")
    assert code == 0 and orjson.loads(out)["batching"] is None and orjson.loads(out)["serverless"]["max_concurrency"] == 5
    for bad, words in (
        (("--max-concurrency", "3"), "go with --serverless"),
        (("--serverless", "--workers", "2"), "one worker"),
        (("--serverless", "--max-concurrency", "0"), "max_concurrency"),
        (("--allow", "churn*"), "--multi-model"),
    ):
        code, _, err = cli("endpoints", "create", "bad", "--model", "times@1", *bad)
        assert code == 2 and words in err, (bad, err)
    assert cli("endpoints", "delete", "sl")[0] == 0
    code, out, err = cli("endpoints", "create", "mm", "--multi-model", "--memory-mb", "512", "--allow", "times*", "--json")
    assert code == 0 and orjson.loads(out)["multi_model"] == {"memory_mb": 512, "allow": ["times*"]}, err
    assert cli("endpoints", "invoke", "mm", "--body", "[[1]]", "--target-model", "times/2")[1].strip() == "[5.0]"
    code, _, err = cli("endpoints", "invoke", "mm", "--body", "[[1]]", "--target-model", "stranger@1")
    assert code != 0 and "may load" in err
    code, _, err = cli("endpoints", "create", "mm2", "--multi-model", "--model", "times@1")
    assert code == 2 and "no model" in err
    delete_all(client)
