"""DESIGN §8: every traversal string, fed to every route and command that takes a name,
ref or path, is refused without a 5xx or a traceback, creates nothing, and touches no
file outside the workspace. Routes are discovered from the app, so later stages' routes
are covered as they are added."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiln.core.config import Settings
import kiln
from kiln.core.errors import InvalidArgument, KilnError, PermissionDenied
from kiln.core.storage import LocalStore
from kiln.core.workspace import Workspace
from kiln.server.app import create_app
from tests.conftest import TRAVERSAL
from tests.faces.conftest import CSV, http_client, upload

assert TRAVERSAL, "shared/security/traversal.txt is missing"
PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
LEAK = re.compile(rb"root:.*:0:0:")


def _walk(routes: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(METHOD, path) of every route, through FastAPI's included routers and mounts."""
    for route in routes:
        include = getattr(route, "include_context", None)
        if include is not None:
            yield from _walk(route.original_router.routes, prefix + include.prefix)
        elif getattr(route, "methods", None) and getattr(route, "path", None):
            for method in route.methods - {"HEAD", "OPTIONS"}:
                yield method, prefix + route.path
        elif getattr(route, "routes", None):
            yield from _walk(route.routes, prefix + getattr(route, "path", ""))


def _discover() -> list[tuple[str, str, str]]:
    """(METHOD, path template, parameter) for every path parameter of every route."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp)).resolved())
        try:
            app = create_app(ws, auth=False, allowed_hosts=["testserver"])
            found = set(_walk(app.routes))
            for path, item in app.openapi()["paths"].items():
                found |= {(m.upper(), path) for m in item if m in ("get", "post", "put", "patch", "delete")}
        finally:
            ws.close()
    return sorted((m, p, name) for m, p in found for name in PARAM.findall(p))


ROUTES = _discover()


def test_the_known_routes_are_discovered() -> None:
    have = {(m, p) for m, p, _ in ROUTES}
    for want in [("POST", "/v1/datasets/{name}/versions"), ("GET", "/v1/datasets/{ref}"), ("GET", "/v1/datasets/{ref}/head"),
                 ("GET", "/v1/datasets/{ref}/export"), ("GET", "/v1/datasets/{name}/versions"), ("DELETE", "/v1/datasets/{ref}"),
                 ("DELETE", "/v1/tokens/{name}")]:
        assert want in have


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    """One workspace for the whole module, with dataset 'sales' and a sentinel outside it."""
    root = tmp_path_factory.mktemp("traversal")
    (root / "outside").mkdir()
    (root / "outside" / "sentinel.txt").write_text("untouched")
    ws = Workspace(Settings(home=root / "kiln").resolved())
    with http_client(create_app(ws, auth=False, allowed_hosts=["testserver"])) as http:
        assert upload(http, "sales").status_code == 201
        assert http.post("/v1/tokens", json={"name": "keeper", "role": "viewer"}).status_code == 201
        yield http, root
    ws.close()


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*") if p.is_file() and "kiln" not in p.relative_to(root).parts[:1]}


def _encode(value: str) -> str:
    """Every byte but letters and digits percent-encoded (quote() keeps '.', so '..' would stay)."""
    return "".join(chr(b) if chr(b).isalnum() and b < 128 else f"%{b:02X}" for b in value.encode())


def _url(template: str, param: str, value: str, raw: bool) -> str:
    def fill(match: re.Match[str]) -> str:
        if match.group(1) != param:
            return "sales"
        return value if raw else _encode(value)

    return PARAM.sub(fill, template)


@pytest.mark.parametrize("raw", [False, True], ids=["encoded", "raw"])
@pytest.mark.parametrize(("method", "template", "param"), ROUTES, ids=[f"{m} {p} {n}" for m, p, n in ROUTES])
def test_route_refuses_traversal(lake: tuple[httpx.Client, Path], method: str, template: str, param: str, raw: bool) -> None:
    http, root = lake
    before = _snapshot(root)
    problems = []
    for value in TRAVERSAL:
        url = _url(template, param, value, raw)
        kwargs: dict[str, Any] = {}
        if method in ("POST", "PUT", "PATCH"):
            kwargs = {"params": {"format": "csv"}, "content": CSV, "headers": {"content-type": "application/octet-stream"}}
        resp = http.request(method, url, **kwargs)
        if resp.status_code >= 500 or 300 <= resp.status_code < 400 or LEAK.search(resp.content):
            problems.append(f"{value!r}: {resp.status_code} {resp.text[:120]}")
        elif not raw and not 400 <= resp.status_code < 500:
            # Encoded, the string is the parameter itself: it must be refused.
            problems.append(f"{value!r}: {resp.status_code} {resp.text[:120]}")
        elif resp.status_code >= 400:
            assert set(resp.json()) == {"error"}, resp.text
    assert not problems, "\n".join(problems)
    assert _snapshot(root) == before
    assert [d["name"] for d in http.get("/v1/datasets").json()] == ["sales"]
    assert [t["name"] for t in http.get("/v1/tokens").json()] == ["keeper"]
    assert http.get("/v1/datasets/sales").json()["version"] == 1


@pytest.mark.parametrize("value", TRAVERSAL)
def test_token_create_refuses_traversal(lake: tuple[httpx.Client, Path], value: str) -> None:
    http, _ = lake
    resp = http.post("/v1/tokens", json={"name": value, "role": "viewer"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_argument"


@pytest.mark.parametrize("value", [*TRAVERSAL, "/etc/passwd", "sqlite:////etc/passwd", "file:///etc/passwd", "postgresql+psycopg://x/y"])
def test_rest_ingest_never_reads_a_server_path(lake: tuple[httpx.Client, Path], value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no waiting on an instance-metadata lookup
    http, _ = lake
    resp = http.post("/v1/datasets/fresh/versions", json={"source": value, "options": {"format": "csv", "query": "select 1"}})
    assert 400 <= resp.status_code < 500, resp.text
    assert not LEAK.search(resp.content)
    assert http.get("/v1/datasets/fresh").status_code == 404


def _inputs(spec: dict[str, Any]) -> set[str]:
    """Names of every query/header parameter and request-body field (path parameters name resources)."""
    schemas = spec.get("components", {}).get("schemas", {})

    def fields(schema: Any, seen: frozenset[str] = frozenset()) -> Iterator[str]:
        if isinstance(schema, dict):
            ref = schema.get("$ref", "")
            if ref and ref not in seen:
                yield from fields(schemas.get(ref.rsplit("/", 1)[-1], {}), seen | {ref})
            yield from schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else ()
            for value in schema.values():
                yield from fields(value, seen)
        elif isinstance(schema, list):
            for value in schema:
                yield from fields(value, seen)

    names: set[str] = set()
    for item in spec["paths"].values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            names |= {p["name"] for p in op.get("parameters", []) if p.get("in") != "path"}
            names |= set(fields(op.get("requestBody", {})))
    return {n.lower() for n in names}


def test_openapi_takes_no_server_path() -> None:
    """REST never takes a path on the server: no query parameter or body field names one."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp)).resolved())
        names = _inputs(create_app(ws, auth=False, allowed_hosts=["testserver"]).openapi())
        ws.close()
    assert {"format", "source", "query"} <= names
    assert not names & {"dest", "path", "output", "filename", "file", "file_path", "dir", "directory", "folder", "local_path"}


# -- SDK, local and over REST ----------------------------------------------------------------

SDK_CALLS = {
    "ingest": lambda c, v, src, out: c.datasets.ingest(v, src),
    "get": lambda c, v, src, out: c.datasets.get(v),
    "versions": lambda c, v, src, out: c.datasets.versions(v),
    "head": lambda c, v, src, out: c.datasets.head(v),
    "read": lambda c, v, src, out: c.datasets.read(v),
    "export": lambda c, v, src, out: c.datasets.export(v, out),
    "delete": lambda c, v, src, out: c.datasets.delete(v),
    "tokens-create": lambda c, v, src, out: c.tokens.create(v),
    "tokens-revoke": lambda c, v, src, out: c.tokens.revoke(v),
    "endpoints-create": lambda c, v, src, out: c.endpoints.create(v, model="sales", wait=False),
    "endpoints-create-model": lambda c, v, src, out: c.endpoints.create("ep", model=v, wait=False),
    "endpoints-get": lambda c, v, src, out: c.endpoints.get(v),
    "endpoints-invoke": lambda c, v, src, out: c.endpoints.invoke(v, b"[[1]]"),
    "endpoints-delete": lambda c, v, src, out: c.endpoints.delete(v),
}


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
@pytest.mark.parametrize("call", sorted(SDK_CALLS))
def test_sdk_refuses_traversal(lake: tuple[httpx.Client, Path], tmp_path: Path, call: str, remote: bool) -> None:
    """Over REST a name like 'a/../../datasets/sales' must not become another resource's URL."""
    http, root = lake
    src = tmp_path / "in.csv"
    src.write_bytes(CSV)
    client = kiln.Client("http://testserver", http_transport=http._transport) if remote else kiln.Client(settings=Settings(home=root / "kiln").resolved())
    problems = []
    try:
        for value in TRAVERSAL:
            try:
                SDK_CALLS[call](client, value, src, tmp_path / "out.csv")
                problems.append(f"{value!r}: no error")
            except KilnError as exc:
                if not 400 <= exc.http_status < 500 or LEAK.search(exc.message.encode()):
                    problems.append(f"{value!r}: {type(exc).__name__} {exc.message[:100]}")
    finally:
        client.close()
    assert not problems, "\n".join(problems)
    assert not (tmp_path / "out.csv").exists()
    assert [d["name"] for d in http.get("/v1/datasets").json()] == ["sales"]
    assert [t["name"] for t in http.get("/v1/tokens").json()] == ["keeper"]
    assert http.get("/v1/datasets/sales").json()["version"] == 1


@pytest.mark.parametrize("path", ["/v1/datasets/a/../../tokens/x", "/v1/streams/s/consumers/..", "/v1/datasets/./head", "/v1/datasets/x?y=1", "/v1/datasets/x#y"])
def test_http_transport_refuses_paths_a_name_bent(path: str) -> None:
    from kiln.sdk._base import HttpTransport

    with pytest.raises(InvalidArgument, match="invalid name in request path"):
        HttpTransport("http://testserver").request("DELETE", path)


# -- CLI -----------------------------------------------------------------------------

CLI_COMMANDS = {
    "ingest": lambda v, src, out: ["datasets", "ingest", v, src],
    "show": lambda v, src, out: ["datasets", "show", v],
    "head": lambda v, src, out: ["datasets", "head", v],
    "versions": lambda v, src, out: ["datasets", "versions", v],
    "export": lambda v, src, out: ["datasets", "export", v, out],
    "rm": lambda v, src, out: ["datasets", "rm", v, "--yes"],
    "tokens-create": lambda v, src, out: ["tokens", "create", v],
    "tokens-revoke": lambda v, src, out: ["tokens", "revoke", v],
    "endpoints-create": lambda v, src, out: ["endpoints", "create", v, "--model", "sales"],
    "endpoints-variant": lambda v, src, out: ["endpoints", "create", "ep", "--variant", f"a={v}:1"],
    "endpoints-describe": lambda v, src, out: ["endpoints", "describe", v],
    "endpoints-invoke": lambda v, src, out: ["endpoints", "invoke", v, "--body", "[[1]]"],
    "endpoints-delete": lambda v, src, out: ["endpoints", "delete", v],
    "tune-describe": lambda v, src, out: ["tune", "describe", v],
    "tune-stop": lambda v, src, out: ["tune", "stop", v],
    "tune-name": lambda v, src, out: ["tune", "--name", v, "--objective", "train:accuracy", "--algorithm", "random-forest", "--channel", "train=sales@1",
                                      "--ranges", '{"IntegerParameterRanges": [{"Name": "n_estimators", "MinValue": "2", "MaxValue": "4"}]}'],
    "tune-warm-start": lambda v, src, out: ["tune", "--warm-start-from", v, "--warm-start-type", "TransferLearning", "--objective", "train:accuracy",
                                            "--algorithm", "random-forest", "--channel", "train=sales@1",
                                            "--ranges", '{"IntegerParameterRanges": [{"Name": "n_estimators", "MinValue": "2", "MaxValue": "4"}]}'],
}


@pytest.fixture
def cli_lake(cli: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    src = tmp_path / "in.csv"
    src.write_bytes(CSV)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "sentinel.txt").write_text("untouched")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert cli("datasets", "ingest", "sales", str(src)).code == 0
    assert cli("tokens", "create", "keeper").code == 0
    return cli, src


@pytest.mark.parametrize("command", sorted(CLI_COMMANDS))
def test_cli_refuses_traversal(cli_lake: tuple[Any, Path], tmp_path: Path, command: str) -> None:
    cli, src = cli_lake
    before = _snapshot(tmp_path)
    problems = []
    for value in TRAVERSAL:
        result = cli(*CLI_COMMANDS[command](value, str(src), str(tmp_path / "out.csv")))
        lines = result.err.strip().splitlines()
        if result.code == 0 or "Traceback" in result.err + result.out or len(lines) != 1 or not lines[0].startswith("error:"):
            problems.append(f"{value!r}: exit {result.code}, stderr {result.err!r}")
    assert not problems, "\n".join(problems)
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "out.csv").exists()
    assert [d["name"] for d in json.loads(cli("datasets", "ls", "--json").out)] == ["sales"]
    assert cli("datasets", "show", "sales@1").code == 0
    assert '"keeper"' in cli("tokens", "ls", "--json").out


def test_cli_export_writes_only_where_asked(cli_lake: tuple[Any, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local user may export anywhere on their own disk; exactly there, nowhere else."""
    cli, _ = cli_lake
    deep = tmp_path / "cwd" / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    before = _snapshot(tmp_path)
    assert cli("datasets", "export", "sales", "../../outside.csv").code == 0
    after = _snapshot(tmp_path)
    assert set(after) - set(before) == {str(tmp_path / "cwd" / "outside.csv")}
    assert (tmp_path / "cwd" / "outside.csv").read_text().splitlines()[0] == "id,city,amount"


def test_cli_subprocess_has_no_traceback(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "KILN_HOME": str(settings.home)}
    proc = subprocess.run([sys.executable, "-m", "kiln", "datasets", "show", "../../etc/passwd"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: invalid")


# -- object store roots ----------------------------------------------------------------

@pytest.fixture
def escaped_store(tmp_path: Path) -> tuple[LocalStore, Path]:
    """A store whose datasets/evil folder is a symlink to a folder outside it."""
    store = LocalStore(tmp_path / "objects")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("outside")
    (store.root / "datasets").mkdir()
    (store.root / "datasets" / "evil").symlink_to(elsewhere, target_is_directory=True)
    return store, elsewhere


@pytest.mark.parametrize("operation", ["path", "read", "write", "delete", "exists"])
def test_symlink_out_of_the_store_is_refused(escaped_store: tuple[LocalStore, Path], operation: str) -> None:
    store, elsewhere = escaped_store
    act = {
        "path": lambda: store.path("datasets/evil/secret.txt"),
        "read": lambda: store.read_bytes("datasets/evil/secret.txt"),
        "write": lambda: store.put_bytes("datasets/evil/new.txt", b"x"),
        "delete": lambda: store.delete("datasets/evil"),
        "exists": lambda: store.exists("datasets/evil/secret.txt"),
    }[operation]
    with pytest.raises(PermissionDenied):
        act()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.txt"]
    assert (elsewhere / "secret.txt").read_text() == "outside"


def test_listing_and_gc_do_not_follow_symlinks_out(escaped_store: tuple[LocalStore, Path], tmp_path: Path) -> None:
    from kiln.core.context import local_context
    from kiln.core.gc import collect_garbage

    store, elsewhere = escaped_store
    assert store.list("datasets") == []
    ws = Workspace(Settings(home=tmp_path / "kiln", storage_url=str(store.root)).resolved())
    try:
        report = collect_garbage(ws, local_context(), grace_s=0, dry_run=False, now=1e12)
    finally:
        ws.close()
    assert report.removed == []
    assert (elsewhere / "secret.txt").read_text() == "outside"


def _leaves_root(key: str) -> bool:
    return any(p in ("", ".", "..") for p in key.split("/")) or key.startswith("/") or "\\" in key or ":" in key.split("/")[0]


@pytest.mark.parametrize("key", [v for v in TRAVERSAL if _leaves_root(v)])
def test_store_keys_refuse_traversal(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "objects")
    with pytest.raises((InvalidArgument, PermissionDenied)):
        store.put_bytes(key, b"x")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
