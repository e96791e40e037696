"""Tokens and roles on the REST face; the audit trail from every face; tamper detection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import kiln
from kiln.core._audit_anchor import ANCHOR_KEY
from kiln.core.context import local_context
from kiln.core.errors import KilnError, PermissionDenied, Unauthenticated
from kiln.core.workspace import Workspace
from kiln.server.app import create_app
from tests.faces.conftest import CSV, SyncASGI, http_client, upload

LOCAL_ACTOR = local_context().actor


@pytest.fixture
def secured(ws: Workspace) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """An app with auth on, and a token of each role (made in-process by the local admin)."""
    admin = kiln.Client(settings=ws.settings)
    tokens = {role: admin.tokens.create(role, role=role).token for role in ("viewer", "editor", "admin")}
    tokens["revoked"] = admin.tokens.create("gone", role="admin").token
    admin.tokens.revoke("gone")
    admin.close()
    with http_client(create_app(ws, auth=True, allowed_hosts=["testserver"])) as http:
        yield http, tokens


def _as(tokens: dict[str, str], who: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens[who]}"} if who else {}


def _ingest(http: httpx.Client, headers: dict[str, str], name: str = "sales") -> httpx.Response:
    return http.post(f"/v1/datasets/{name}/versions", params={"format": "csv"}, content=CSV, headers={"content-type": "application/octet-stream", **headers})


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer kiln_not-a-real-token", "Basic dXNlcjpwYXNz", "Token {admin}", "Bearer {revoked}", "{admin}"])
def test_unauthenticated_is_401(secured: tuple[httpx.Client, dict[str, str]], header: str | None) -> None:
    http, tokens = secured
    headers = {"authorization": header.format(**tokens)} if header else {}
    for resp in (http.get("/v1/datasets", headers=headers), _ingest(http, headers), http.get("/v1/tokens", headers=headers)):
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == "unauthenticated"
        assert resp.headers["x-request-id"]
    assert http.get("/v1/health").status_code == 200  # health answers anyone


# (role, request, allowed)
MATRIX = [
    ("GET", "/v1/datasets", "viewer"),
    ("GET", "/v1/datasets/sales", "viewer"),
    ("GET", "/v1/datasets/sales/head", "viewer"),
    ("GET", "/v1/datasets/sales/export", "viewer"),
    ("POST", "/v1/sql", "viewer"),
    ("GET", "/v1/sql/history", "viewer"),
    ("POST", "/v1/datasets/{new}/versions", "editor"),
    ("DELETE", "/v1/datasets/{new}@1", "editor"),
    ("GET", "/v1/tokens", "admin"),
    ("POST", "/v1/tokens", "admin"),
    ("DELETE", "/v1/tokens/{new}", "admin"),
    ("GET", "/v1/audit", "admin"),
    ("GET", "/v1/audit/verify", "admin"),
    ("POST", "/v1/gc", "admin"),
]
RANK = {"viewer": 0, "editor": 1, "admin": 2}


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_roles(secured: tuple[httpx.Client, dict[str, str]], role: str) -> None:
    http, tokens = secured
    assert _ingest(http, _as(tokens, "editor")).status_code == 201
    headers = _as(tokens, role)
    for method, template, needs in MATRIX:
        new = f"t-{role}"
        if "{new}" in template and method == "DELETE":
            # Something to delete, made by a role that may.
            if "tokens" in template:
                http.post("/v1/tokens", json={"name": new}, headers=_as(tokens, "admin"))
            else:
                _ingest(http, _as(tokens, "admin"), new)
        url = template.format(new=new)
        kwargs: dict[str, Any] = {"headers": headers}
        if url == "/v1/sql":
            kwargs["json"] = {"query": "SELECT count(*) AS n FROM sales"}
        elif url == "/v1/tokens" and method == "POST":
            kwargs["json"] = {"name": new}
        elif url.endswith("/versions"):
            kwargs = {"params": {"format": "csv"}, "content": CSV, "headers": {"content-type": "application/octet-stream", **headers}}
        resp = http.request(method, url, **kwargs)
        if RANK[role] >= RANK[needs]:
            assert resp.status_code < 300, (role, method, url, resp.text)
        else:
            assert resp.status_code == 403, (role, method, url, resp.text)
            err = resp.json()["error"]
            assert err["code"] == "permission_denied" and f"needs '{needs}'" in err["message"]


def test_remote_sdk_carries_the_token_and_its_role(secured: tuple[httpx.Client, dict[str, str]], tmp_path: Path) -> None:
    http, tokens = secured
    source = tmp_path / "s.csv"
    source.write_bytes(CSV)
    transport = http._transport  # the same in-process app
    with kiln.Client("http://testserver", token=tokens["editor"], http_transport=transport) as editor:
        assert editor.datasets.ingest("sales", source).created_by == "token:editor"
        with pytest.raises(PermissionDenied, match="needs 'admin'"):
            editor.tokens.create("more")
    with kiln.Client("http://testserver", token="kiln_wrong", http_transport=transport) as stranger, pytest.raises(Unauthenticated):
        stranger.datasets.list()
    with kiln.Client("http://testserver", token=tokens["viewer"], http_transport=transport) as viewer:
        assert [d.name for d in viewer.datasets.list()] == ["sales"]
        with pytest.raises(PermissionDenied):
            viewer.datasets.delete("sales")


def test_refused_mutation_is_audited(secured: tuple[httpx.Client, dict[str, str]]) -> None:
    http, tokens = secured
    resp = _ingest(http, _as(tokens, "viewer"), "nope")
    assert resp.status_code == 403
    refused = http.post("/v1/tokens", json={"name": "sneaky", "role": "admin"}, headers=_as(tokens, "editor"))
    assert refused.status_code == 403
    events = http.get("/v1/audit", headers=_as(tokens, "admin")).json()
    by_request = {e["request_id"]: e for e in events}
    ingest = by_request[resp.headers["x-request-id"]]
    assert (ingest["actor"], ingest["action"], ingest["resource"], ingest["outcome"]) == ("token:viewer", "datasets.ingest", "datasets/nope", "failure")
    assert ingest["details"]["error"] == "permission_denied"
    token = by_request[refused.headers["x-request-id"]]
    assert (token["actor"], token["action"], token["outcome"]) == ("token:editor", "tokens.create", "failure")
    assert http.get("/v1/datasets/nope", headers=_as(tokens, "admin")).status_code == 404


def test_token_actor_and_source_in_audit(secured: tuple[httpx.Client, dict[str, str]]) -> None:
    http, tokens = secured
    resp = _ingest(http, {**_as(tokens, "editor"), "x-request-id": "ingest-1"})
    assert resp.status_code == 201
    (event,) = [e for e in http.get("/v1/audit", headers=_as(tokens, "admin")).json() if e["request_id"] == "ingest-1"]
    assert event["actor"] == "token:editor" and event["source"] == "127.0.0.1" and event["outcome"] == "success"
    assert event["details"]["version"] == 1


# -- every face audits its mutations --------------------------------------------------------

def _events(ws: Workspace) -> list[dict[str, Any]]:
    client = kiln.Client(settings=ws.settings)
    try:
        return list(reversed(client.audit.list(limit=1000)))
    finally:
        client.close()


def _check(events: list[dict[str, Any]], expected: list[tuple[str, str, str]], actor: str, source: str) -> None:
    got = [(e["action"], e["resource"], e["outcome"]) for e in events]
    assert got == expected
    for e in events:
        assert e["actor"] == actor and e["source"] == source
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", e["request_id"])
        assert e["time"] > time.time() - 300


EXPECTED = [
    ("tokens.create", "tokens/bot", "success"),
    ("datasets.ingest", "datasets/sales", "success"),
    ("datasets.ingest", "datasets/sales", "success"),
    ("datasets.ingest", "datasets/sales", "failure"),
    ("datasets.delete", "datasets/sales", "success"),
    ("datasets.delete", "datasets/sales", "failure"),
    ("tokens.revoke", "tokens/bot", "success"),
    ("tokens.create", "tokens/bot", "failure"),
]


def test_rest_mutations_are_audited(http: httpx.Client, ws: Workspace) -> None:
    ids = []
    for method, url, kwargs in [
        ("POST", "/v1/tokens", {"json": {"name": "bot"}}),
        ("UPLOAD", "sales", {}),
        ("UPLOAD", "sales", {}),
        ("UPLOAD", "sales", {"data": b"a,b\n1\n2,3,4\n"}),
        ("DELETE", "/v1/datasets/sales@1", {}),
        ("DELETE", "/v1/datasets/sales@1", {}),
        ("DELETE", "/v1/tokens/bot", {}),
        ("POST", "/v1/tokens", {"json": {"name": "bot"}}),
    ]:
        resp = upload(http, url, **kwargs) if method == "UPLOAD" else http.request(method, url, **kwargs)
        ids.append(resp.headers["x-request-id"])
    events = _events(ws)
    _check(events, EXPECTED, "anonymous@127.0.0.1", "127.0.0.1")
    assert [e["request_id"] for e in events] == ids


def test_cli_mutations_are_audited(cli: Any, ws: Workspace, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(CSV)
    bad.write_bytes(b"a,b\n1\n2,3,4\n")
    codes = [cli(*args).code for args in [
        ["tokens", "create", "bot"], ["datasets", "ingest", "sales", str(good)], ["datasets", "ingest", "sales", str(good)],
        ["datasets", "ingest", "sales", str(bad)], ["datasets", "rm", "sales@1"], ["datasets", "rm", "sales@1"],
        ["tokens", "revoke", "bot"], ["tokens", "create", "bot"],
    ]]
    assert codes == [0, 0, 0, 2, 0, 3, 0, 4]
    _check(_events(ws), EXPECTED, LOCAL_ACTOR, "local")


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote"])
def test_sdk_mutations_are_audited(ws: Workspace, app: Any, tmp_path: Path, remote: bool) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(CSV)
    bad.write_bytes(b"a,b\n1\n2,3,4\n")
    client = kiln.Client("http://testserver", http_transport=SyncASGI(app)) if remote else kiln.Client(settings=ws.settings)
    calls = [
        lambda: client.tokens.create("bot"), lambda: client.datasets.ingest("sales", good), lambda: client.datasets.ingest("sales", good),
        lambda: client.datasets.ingest("sales", bad), lambda: client.datasets.delete("sales@1"), lambda: client.datasets.delete("sales@1"),
        lambda: client.tokens.revoke("bot"), lambda: client.tokens.create("bot"),
    ]
    for call in calls:
        try:
            call()
        except KilnError:
            pass
    client.close()
    _check(_events(ws), EXPECTED, "anonymous@127.0.0.1" if remote else LOCAL_ACTOR, "127.0.0.1" if remote else "local")


def test_gc_is_audited(http: httpx.Client, ws: Workspace) -> None:
    assert upload(http, "sales").status_code == 201
    assert http.delete("/v1/datasets/sales").status_code == 200
    report = http.post("/v1/gc", params={"grace_s": 0}).json()
    assert len(report["removed"]) == 1
    event = _events(ws)[-1]
    assert (event["action"], event["resource"], event["details"]["removed"]) == ("gc.run", "objects", 1)


# -- kiln audit list / verify --------------------------------------------------------------

def test_audit_list_filters(cli: Any, http: httpx.Client) -> None:
    start = time.time() - 1
    assert upload(http, "sales").status_code == 201
    assert cli("tokens", "create", "bot").code == 0
    assert cli("tokens", "create", "other").code == 0

    def listed(*args: str) -> list[tuple[str, str]]:
        result = cli("audit", "list", "--json", *args)
        assert result.code == 0, result
        return [(e["actor"], e["resource"]) for e in json.loads(result.out)]

    everything = listed()
    assert len(everything) == 3
    assert listed("--actor", "anonymous@127.0.0.1") == [("anonymous@127.0.0.1", "datasets/sales")]
    assert listed("--actor", LOCAL_ACTOR) == [(LOCAL_ACTOR, "tokens/other"), (LOCAL_ACTOR, "tokens/bot")]
    assert listed("--resource", "tokens/bot") == [(LOCAL_ACTOR, "tokens/bot")]
    assert listed("--resource", "tokens") == [(LOCAL_ACTOR, "tokens/other"), (LOCAL_ACTOR, "tokens/bot")]
    assert listed("--resource", "token") == []
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    assert listed("--since", since) == everything
    assert listed("--since", "2999-01-01") == []
    assert listed("--until", "2000-01-01") == []
    bad = cli("audit", "list", "--since", "yesterday")
    assert bad.code == 2 and bad.err.startswith("error: invalid time 'yesterday'")


def _tamper(ws: Workspace, how: str) -> int:
    """Change the trail behind Kiln's back with raw SQL; returns the seq verify must name."""
    statements = {
        "edit": ["UPDATE kiln_audit_events SET resource = 'tokens/evil' WHERE seq = 3"],
        "edit-details": ["UPDATE kiln_audit_events SET details = '{\"role\":\"viewer\"}' WHERE seq = 2"],
        "delete-middle": ["DELETE FROM kiln_audit_events WHERE seq = 3"],
        "delete-last": ["DELETE FROM kiln_audit_events WHERE seq = 5"],
        "delete-first": ["DELETE FROM kiln_audit_events WHERE seq = 1"],
        "reorder": ["UPDATE kiln_audit_events SET seq = -1 WHERE seq = 2", "UPDATE kiln_audit_events SET seq = 2 WHERE seq = 3", "UPDATE kiln_audit_events SET seq = 3 WHERE seq = -1"],
        # The head moved along: only the anchor outside the database shows these.
        "delete-last-and-head": ["DELETE FROM kiln_audit_events WHERE seq = 5", "UPDATE kiln_audit_head SET seq = 4, hash = (SELECT hash FROM kiln_audit_events WHERE seq = 4)"],
        "delete-all-and-reset-head": ["DELETE FROM kiln_audit_events", f"UPDATE kiln_audit_head SET seq = 0, hash = '{'0' * 64}'"],
    }[how]
    with ws.db.engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql))
    return {"edit": 3, "edit-details": 2, "delete-middle": 3, "delete-last": 5, "delete-first": 1, "reorder": 2, "delete-last-and-head": 5, "delete-all-and-reset-head": 1}[how]


@pytest.fixture
def trail(any_ws: Workspace, cli: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Any]:
    """Five audit events on either backend; the CLI pointed at the same workspace."""
    s = any_ws.settings
    for key, value in {"KILN_DATABASE_URL": s.database_url, "KILN_STORAGE_URL": s.storage_url, "KILN_S3_ENDPOINT_URL": s.s3_endpoint_url}.items():
        monkeypatch.setenv(key, value)
    client = kiln.Client(settings=s)
    for name in ("a", "b", "c", "d", "e"):
        client.tokens.create(name, role="admin")
    client.close()
    return any_ws, cli


@pytest.mark.parametrize("how", ["edit", "edit-details", "delete-middle", "delete-last", "delete-first", "reorder", "delete-last-and-head", "delete-all-and-reset-head"])
def test_audit_verify_names_the_first_bad_event(trail: tuple[Workspace, Any], how: str) -> None:
    ws, cli = trail
    clean = cli("audit", "verify")
    assert clean.code == 0 and "5 events verified" in clean.out
    bad_seq = _tamper(ws, how)
    result = cli("audit", "verify")
    assert result.code == 1
    assert result.err.strip().splitlines() == [result.err.strip()]
    assert result.err.startswith(f"error: audit trail broken at event {bad_seq}:"), result.err
    report = json.loads(cli("audit", "verify", "--json").out)
    assert report["ok"] is False and report["first_bad_seq"] == bad_seq


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_a_missing_or_damaged_anchor_is_reported_as_tampering_by_every_face(trail: tuple[Workspace, Any], damage: str) -> None:
    ws, cli = trail
    if damage == "missing":
        ws.store.delete(ANCHOR_KEY)
    else:
        ws.store.put_bytes(ANCHOR_KEY, b'{"seq": 9, "mac": "x"}')
    result = cli("audit", "verify")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.strip().splitlines() == [result.err.strip()]
    assert result.err.startswith("error: audit trail broken: the audit anchor"), result.err
    assert ("missing" if damage == "missing" else "damaged") in result.err
    with http_client(create_app(ws, auth=False, allowed_hosts=["testserver"])) as http:
        resp = http.get("/v1/audit/verify")
    assert resp.status_code == 200 and resp.json()["ok"] is False and resp.json()["first_bad_seq"] is None


@pytest.mark.parametrize("key", ["missing", "loose"])
def test_verify_without_a_usable_key_says_what_to_do(ws: Workspace, key: str, tmp_path: Path) -> None:
    path = ws.settings.home / "audit.key"
    with kiln.Client(settings=ws.settings) as client:
        client.tokens.create("one")  # a trail MACed with the key
    if key == "missing":
        path.unlink()
    else:
        path.chmod(0o644)
    env = {**os.environ, "KILN_HOME": str(ws.settings.home)}
    proc = subprocess.run([sys.executable, "-m", "kiln", "audit", "verify"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == (3 if key == "missing" else 5), proc
    assert ("restore the file from a backup" if key == "missing" else f"chmod 600 {path}") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_server_refuses_public_bind_without_auth(settings: Any, tmp_path: Path) -> None:
    env = {**os.environ, "KILN_HOME": str(settings.home)}
    proc = subprocess.run([sys.executable, "-m", "kiln", "server", "--host", "0.0.0.0", "--no-auth"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc
    assert "refusing to bind 0.0.0.0 without auth" in proc.stderr and "--auth" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "env"), [(["--host", "::", "--no-auth"], {}), (["--host", "10.1.2.3", "--no-auth"], {}), (["--no-auth"], {"KILN_HOST": "0.0.0.0"}), ([], {"KILN_HOST": "0.0.0.0", "KILN_AUTH": "false"})])
def test_server_refusal_variants(cli: Any, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = cli("server", *args)
    assert result.code == 2 and "refusing to bind" in result.err, result


@pytest.mark.parametrize("source", ["s3://other-bucket/secret.csv", "postgresql://postgres@127.0.0.1:5432/test"])
def test_only_an_admin_points_the_server_at_a_source_it_reads_itself(secured: tuple[httpx.Client, dict[str, str]], source: str) -> None:
    http, tokens = secured
    body = {"source": source, "options": {"query": "SELECT 1 AS one"}}
    resp = http.post("/v1/datasets/theirs/versions", json=body, headers=_as(tokens, "editor"))
    assert resp.status_code == 403 and "admin" in resp.json()["error"]["message"]
    assert http.get("/v1/datasets/theirs", headers=_as(tokens, "admin")).status_code == 404
