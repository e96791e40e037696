"""A server is no open door to a web page: each attack found on a server without --auth,
replayed (foreign Host / DNS rebinding, cross-site Origin and Fetch Metadata, CORS-simple
POSTs, anonymous admin), plus the local token file the SDK and CLI use instead."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import kiln
from kiln.core.auth import LOCAL_TOKEN_FILE, TokenService, ensure_local_token, read_local_token
from kiln.core.context import local_context
from kiln.core.errors import PermissionDenied
from kiln.core.workspace import Workspace
from kiln.server.app import create_app
from tests.faces.conftest import CSV, SyncASGI

INGEST = "/v1/datasets/pwned/versions?format=csv"


def _browser(app: Any, **kwargs: Any) -> httpx.Client:
    """What a web page can make a browser send: no X-Kiln-Client, no Authorization."""
    return httpx.Client(transport=SyncASGI(app, **kwargs), base_url="http://testserver")


@pytest.fixture
def open_app(ws: Workspace) -> Any:
    """An app without auth (like `kiln server --no-auth`) answering to the test Host."""
    return create_app(ws, auth=False, allowed_hosts=["testserver"])


@pytest.fixture
def page(open_app: Any) -> Iterator[httpx.Client]:
    with _browser(open_app) as client:
        yield client


def _datasets(ws: Workspace) -> list[str]:
    return [d.name for d in kiln.Client(settings=ws.settings).datasets.list()]


KILN = {"x-kiln-client": "1"}
OCTET = {"content-type": "application/octet-stream"}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8300", "127.0.0.1.evil.example", "localhost.evil.example:80", "localhost:8300@evil.example", "[::2]:8300", "10.0.0.1", "\x00"])
def test_a_foreign_host_is_refused_before_any_route(page: httpx.Client, ws: Workspace, host: str) -> None:
    assert page.get("/v1/datasets", headers={"host": host, **KILN}).status_code == 403
    resp = page.post(INGEST, content=CSV, headers={"host": host, **KILN, **OCTET})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "host_not_allowed"
    assert resp.headers["x-request-id"] and "KILN_ALLOWED_HOSTS" in resp.json()["error"]["message"]
    assert _datasets(ws) == []


def test_dns_rebinding_with_the_servers_own_port_is_refused(ws: Workspace) -> None:
    """A rebound name reaches 127.0.0.1:8300 with 'Host: attacker.example:8300'."""
    with _browser(create_app(ws, auth=False)) as page:
        resp = page.get("http://attacker.example:8300/v1/datasets", headers=KILN)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "host_not_allowed"
        assert page.get("http://127.0.0.1:8300/v1/datasets", headers=KILN).status_code == 200


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8300", "localhost.:8300", "127.0.0.1", "127.0.0.1:8300", "127.9.9.9:1", "[::1]", "[::1]:8300"])
def test_loopback_hosts_are_answered(ws: Workspace, host: str) -> None:
    with _browser(create_app(ws, auth=False)) as client:
        assert client.get("/v1/datasets", headers={"host": host, **KILN}).status_code == 200
        assert client.post(INGEST, content=CSV, headers={"host": host, **KILN, **OCTET}).status_code == 201


@pytest.mark.parametrize(("host", "ok"), [
    ("kiln.internal", True), ("kiln.internal:9000", True), ("KILN.INTERNAL", True),
    ("a.corp.example", True), ("corp.example", False), ("acorp.example", False),
    ("proxy.example:8443", True), ("proxy.example:443", False),
    ("studio.example", True), ("10.0.0.5:8300", True), ("10.0.0.6:8300", False),
])
def test_allowed_and_bound_hosts_are_answered(ws: Workspace, host: str, ok: bool) -> None:
    settings = dataclasses.replace(ws.settings, host="10.0.0.5", allowed_hosts="kiln.internal, *.corp.example,proxy.example:8443,https://studio.example")
    with _browser(create_app(Workspace(settings), auth=False)) as client:
        assert client.get("/v1/datasets", headers={"host": host, **KILN}).status_code == (200 if ok else 403)


def test_a_wildcard_bind_allows_no_extra_host(ws: Workspace) -> None:
    with _browser(create_app(Workspace(dataclasses.replace(ws.settings, host="0.0.0.0")), auth=False)) as client:
        assert client.get("/v1/datasets", headers={"host": "0.0.0.0:8300", **KILN}).status_code == 403


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver.evil.example", "http://localhost:5000", "https://testserver:8443", "file://"])
def test_a_cross_origin_post_is_refused(page: httpx.Client, ws: Workspace, origin: str) -> None:
    resp = page.post(INGEST, content=CSV, headers={"origin": origin, **KILN, **OCTET})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "cross_site_request"
    assert _datasets(ws) == []


@pytest.mark.parametrize("origin", ["http://testserver", "https://testserver", "http://testserver:80", "https://studio.example"])
def test_a_same_origin_or_allowed_origin_post_is_answered(ws: Workspace, origin: str) -> None:
    app = create_app(ws, auth=False, allowed_hosts=["testserver", "https://studio.example"])
    with _browser(app) as client:
        assert client.post(INGEST, content=CSV, headers={"origin": origin, **KILN, **OCTET}).status_code == 201


@pytest.mark.parametrize(("site", "status"), [("cross-site", 403), ("same-site", 403), ("same-origin", 201), ("none", 201)])
def test_fetch_metadata_refuses_other_sites(page: httpx.Client, ws: Workspace, site: str, status: int) -> None:
    resp = page.post(INGEST, content=CSV, headers={"sec-fetch-site": site, **KILN, **OCTET})
    assert resp.status_code == status
    assert page.get("/v1/datasets", headers={"sec-fetch-site": site, **KILN}).status_code == (403 if status == 403 else 200)
    assert _datasets(ws) == ([] if status == 403 else ["pwned"])


SIMPLE_TYPES = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


@pytest.mark.parametrize("ctype", SIMPLE_TYPES)
@pytest.mark.parametrize("kiln_header", [False, True], ids=["as-sent", "even-with-the-header"])
def test_a_cors_simple_post_creates_nothing(page: httpx.Client, ws: Workspace, ctype: str, kiln_header: bool) -> None:
    """What a cross-site form or fetch() sends without a preflight: refused whatever it targets."""
    headers = {"content-type": ctype, **(KILN if kiln_header else {})}
    assert page.post(INGEST, content=CSV, headers=headers).status_code in (403, 415)
    assert page.post("/v1/models/pwned/versions", content=b"tar bytes", headers=headers).status_code in (403, 415)
    assert page.post("/v1/tokens", content=b'{"name": "pwned", "role": "admin"}', headers=headers).status_code in (403, 415)
    if kiln_header:  # the content type alone refuses it
        assert page.post(INGEST, content=CSV, headers=headers).json()["error"]["code"] == "unsupported_media_type"
    admin = kiln.Client(settings=ws.settings)
    assert _datasets(ws) == [] and admin.models.list() == [] and admin.tokens.list() == []


def test_a_body_without_content_type_is_refused(page: httpx.Client, ws: Workspace) -> None:
    resp = page.post(INGEST, content=CSV, headers=KILN)
    assert resp.status_code == 415 and _datasets(ws) == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_mutation_without_the_client_header_or_a_token_is_refused(page: httpx.Client, ws: Workspace, method: str) -> None:
    resp = page.request(method, "/v1/datasets/pwned/versions?format=csv", content=CSV, headers=OCTET)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "client_header_missing"
    assert "X-Kiln-Client" in resp.json()["error"]["message"] and _datasets(ws) == []


def test_anonymous_cannot_mint_an_admin_token(ws: Workspace) -> None:
    body = {"name": "pwned", "role": "admin"}
    with _browser(create_app(ws, allowed_hosts=["testserver"])) as client:  # auth on: the default
        assert client.post("/v1/tokens", json=body, headers=KILN).status_code == 401
    with _browser(create_app(ws, auth=False, allowed_hosts=["testserver"])) as page:
        assert page.post("/v1/tokens", json=body).status_code == 403  # no header: a web page
        assert page.get("/v1/tokens").status_code == 401  # a read, too
    with _browser(create_app(ws, auth=False, allowed_hosts=["testserver"]), client=("10.1.2.3", 5000)) as remote:
        assert remote.post("/v1/tokens", json=body, headers=KILN).status_code == 401  # not from this machine
    assert kiln.Client(settings=ws.settings).tokens.list() == []
    # --no-auth's one admin: a program on this machine that says it is a Kiln client.
    with _browser(create_app(ws, auth=False, allowed_hosts=["testserver"])) as local:
        assert local.post("/v1/tokens", json=body, headers=KILN).status_code == 201


def test_a_token_alone_passes_the_guard(ws: Workspace) -> None:
    token = TokenService(ws, local_context()).create(name="curl", role="editor").token
    with _browser(create_app(ws, allowed_hosts=["testserver"])) as curl:
        assert curl.post(INGEST, content=CSV, headers={"authorization": f"Bearer {token}", **OCTET}).status_code == 201


def test_the_local_token_file_is_owner_only_and_reused(ws: Workspace) -> None:
    path = ensure_local_token(ws)
    assert path == ws.settings.home / LOCAL_TOKEN_FILE and path.stat().st_mode & 0o777 == 0o600
    secret = read_local_token(ws.settings.home)
    assert ensure_local_token(ws) == path and read_local_token(ws.settings.home) == secret
    [info] = kiln.Client(settings=ws.settings).tokens.list()
    assert info.role == "admin" and info.created_by == "system:server"
    with _browser(create_app(ws, allowed_hosts=["testserver"])) as client:
        assert client.get("/v1/tokens", headers={"authorization": f"Bearer {secret}"}).status_code == 200
    kiln.Client(settings=ws.settings).tokens.revoke(info.name)
    ensure_local_token(ws)  # a revoked token is replaced
    assert read_local_token(ws.settings.home) != secret


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_a_token_file_others_can_read_is_refused(ws: Workspace, mode: int) -> None:
    path = ensure_local_token(ws)
    os.chmod(path, mode)
    with pytest.raises(PermissionDenied, match="other users"):
        read_local_token(ws.settings.home)
    with pytest.raises(PermissionDenied, match="other users"):
        kiln.Client("http://127.0.0.1:8300", settings=ws.settings)
    with pytest.raises(PermissionDenied, match="other users"):
        ensure_local_token(ws)


def test_a_symlinked_token_file_is_refused(ws: Workspace, tmp_path: Any) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("kiln_x")
    os.chmod(target, 0o600)
    (ws.settings.home / LOCAL_TOKEN_FILE).symlink_to(target)
    with pytest.raises(PermissionDenied):
        read_local_token(ws.settings.home)


@pytest.mark.parametrize(("url", "sent"), [
    ("http://127.0.0.1:8300", True), ("http://localhost:1", True), ("http://[::1]:8300/", True),
    ("https://kiln.example.com", False), ("http://10.0.0.1:8300", False),
])
def test_the_sdk_picks_the_local_token_up_for_loopback_only(ws: Workspace, url: str, sent: bool) -> None:
    secret = read_local_token(ensure_local_token(ws).parent)
    with kiln.Client(url, settings=ws.settings) as client:
        headers = client._t._http.headers  # type: ignore[union-attr]
        assert headers["x-kiln-client"] == "1"
        assert headers.get("authorization") == (f"Bearer {secret}" if sent else None)
    with kiln.Client(url, token="kiln_given", settings=ws.settings) as client:
        assert client._t._http.headers["authorization"] == "Bearer kiln_given"  # type: ignore[union-attr]


def test_the_sdk_works_with_no_token_file(ws: Workspace) -> None:
    with kiln.Client("http://127.0.0.1:8300", settings=ws.settings) as client:
        assert "authorization" not in client._t._http.headers  # type: ignore[union-attr]


@pytest.mark.parametrize(("origin", "host", "ok"), [
    ("HTTP://TestServer", "testserver", True), ("http://testserver/", "testserver", True),
    ("http://[::1]:8300", "[::1]:8300", True), ("http://[::1]:8300", "[::1]:8301", False),
    ("http://testserver/app", "testserver", False), ("http://testserver?x=1", "testserver", False),
    ("http://u@testserver", "testserver", False), ("http://:80", "testserver", False),
    ("http://testserver", "bad host", False), ("http://testserver", "[::1", False),
])
def test_an_origin_is_the_same_only_when_scheme_host_and_port_are(origin: str, host: str, ok: bool) -> None:
    """The rules themselves, for Origin values a browser may send and Host values a client may."""
    from kiln.server._guard import HostRules

    assert HostRules.build(["testserver", "[::1]"]).allows_origin(origin, host) is ok


def test_a_token_file_that_is_not_a_regular_file_of_this_user_is_refused_by_name(ws: Workspace, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ws.settings.home / LOCAL_TOKEN_FILE
    for make, remove in [(path.mkdir, path.rmdir), (lambda: os.mkfifo(path, 0o600), path.unlink)]:  # a fifo would block a reader
        make()
        with pytest.raises(PermissionDenied) as caught:
            read_local_token(ws.settings.home)
        assert caught.value.message == f"the token file {path} is not a regular file; remove it and restart `kiln server`"
        remove()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PermissionDenied) as caught:
        read_local_token(ws.settings.home)
    assert caught.value.message == f"cannot read the token file {path}: {os.strerror(errno.ELOOP)}; remove it and restart `kiln server`"
    path.unlink()
    owner = ensure_local_token(ws).stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    with pytest.raises(PermissionDenied) as caught:
        read_local_token(ws.settings.home)
    assert caught.value.message == f"the token file {path} belongs to another user; refusing to use it (remove it and restart `kiln server`)"


def test_a_token_file_is_read_up_to_4096_characters(ws: Workspace) -> None:
    path = ensure_local_token(ws)
    path.write_text("kiln_" + "a" * 5000 + "\n")
    assert read_local_token(ws.settings.home) == "kiln_" + "a" * 4091


def test_the_local_admin_token_is_made_and_audited_as_the_server(ws: Workspace) -> None:
    ensure_local_token(ws)
    [info] = kiln.Client(settings=ws.settings).tokens.list()
    assert re.fullmatch(r"local-server-[0-9a-f]{8}", info.name), info.name
    [event] = kiln.Client(settings=ws.settings).audit.list(limit=10)
    assert (event["actor"], event["source"], event["action"], event["resource"], event["outcome"]) == ("system:server", "server", "tokens.create", f"tokens/{info.name}", "success")
    assert event["details"]["role"] == "admin"


def test_a_wildcard_host_allows_only_names_under_it_and_no_host_is_named_as_none() -> None:
    from kiln.server._guard import HostRules, check

    rules = HostRules.build(["*.corp.example"])
    assert [rules.allows_host(h) for h in ("a.corp.example", "evil-but-longer.example.org", ".corp.example", "corp.example")] == [True, False, False, False]
    refusal = check("GET", {}, rules)
    assert refusal is not None and (refusal.status, refusal.code) == (403, "host_not_allowed")
    assert refusal.message == "this server does not answer to Host '(none)': use http://127.0.0.1 or http://localhost, or add the name to KILN_ALLOWED_HOSTS"
    long = "x" * 95 + ".evil.example"  # quoted up to 100 characters
    assert check("GET", {"host": long}, rules).message.startswith(f"this server does not answer to Host {long[:100]!r}: ")  # type: ignore[union-attr]
    crossed = check("POST", {"host": "a.corp.example", "origin": "http://evil.example"}, rules)
    assert crossed is not None and crossed.message == ("cross-origin request from 'http://evil.example' refused; to allow a web app's origin, "
                                                       "add it to KILN_ALLOWED_HOSTS (https://app.example.com)")


def test_a_host_value_is_read_strictly_and_a_trailing_dot_names_the_same_host() -> None:
    from kiln.core.auth import is_loopback
    from kiln.server._guard import HostRules

    rules = HostRules.build(["kiln.internal", "*.corp.example"])
    cases = {
        "kiln.internal.": True, "KILN.INTERNAL.:9000": True, "localhost:65535": True,
        "localhost:123456": False, "localhost:abc": False, "::1:8300": False, "[::1]]": False, "[::1]x": False,
        "evil.example/.corp.example": False, "evil@a.corp.example": False, "evil.example?.corp.example": False,
    }
    assert {h: rules.allows_host(h) for h in cases} == cases
    assert HostRules.build([]).allows_origin("http://[::1]:9300", "[::1]:8300") is False  # the port's every digit counts
    # `kiln server --host` and the SDK's URL may name loopback with a trailing dot or in brackets.
    assert [is_loopback(h) for h in ("localhost.", "127.0.0.1.", "[::1]", " LOCALHOST ", "10.0.0.1", "localhost.evil")] == [True, True, True, True, False, False]


def test_allowed_hosts_entries_are_read_as_documented_and_a_bad_one_is_refused_by_name() -> None:
    from kiln.core.errors import InvalidArgument
    from kiln.server._guard import HostRules

    rules = HostRules.build([" ", "", "https://studio.example/", "*.corp.example."])  # no bound name: none added
    assert [rules.allows_host(h) for h in ("studio.example", "a.corp.example", "xxxx")] == [True, True, False]
    fragment = HostRules.build(["https://studio.example/#://evil.example/x"])  # a fragment is no part of an origin
    assert [fragment.allows_host(h) for h in ("studio.example", "evil.example")] == [True, False]
    for entry, message in [
        ("ftp://kiln.example.com", "KILN_ALLOWED_HOSTS entry 'ftp://kiln.example.com' is not an origin like https://kiln.example.com"),
        ("kiln example", "KILN_ALLOWED_HOSTS entry 'kiln example' is not a host name like kiln.example.com[:8300]"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            HostRules.build([entry])
        assert caught.value.message == message


def test_each_refusal_of_the_guard_says_what_to_send() -> None:
    from kiln.server._guard import HostRules, Refusal, check

    rules = HostRules.build([])
    base = {"host": "localhost", "x-kiln-client": "1"}
    site = "cross-site" + "x" * 40
    assert check("GET", {**base, "sec-fetch-site": site}, rules) == Refusal(403, "cross_site_request", f"request from another site refused (Sec-Fetch-Site: {site[:40]})")
    origin = "http://" + "x" * 120 + ".example"
    assert check("GET", {**base, "origin": origin}, rules) == Refusal(403, "cross_site_request", f"cross-origin request from {origin[:100]!r} refused; to allow a web app's origin, add it to KILN_ALLOWED_HOSTS (https://app.example.com)")
    for ctype in ("application/json; charset=utf-8; x=1", "text/csv;header=present"):  # parameters are not the type
        assert check("POST", {**base, "content-type": ctype}, rules) is None
    ctype = "text/" + "x" * 120
    uploads = "application/gzip, application/octet-stream, application/vnd.apache.parquet, application/x-tar, text/csv"
    assert check("POST", {**base, "content-type": ctype}, rules) == Refusal(415, "unsupported_media_type", f"content type {ctype[:100]!r} is not accepted: send application/json, or an upload as {uploads}")
    no_type = Refusal(415, "unsupported_media_type", "a request body needs a Content-Type: application/json, or application/octet-stream for an upload")
    assert check("POST", {**base, "transfer-encoding": "chunked"}, rules) == no_type  # a chunked body has no Content-Length
    assert check("POST", {**base, "content-length": "5"}, rules) == no_type
    assert check("POST", {**base, "content-length": ""}, rules) is None  # no body
    assert check("DELETE", {"host": "localhost"}, rules) == Refusal(403, "client_header_missing", "state-changing requests need 'Authorization: Bearer <token>' or an 'X-Kiln-Client' header (the Kiln SDK and CLI send it)")


def test_the_guard_closes_a_refused_websocket_passes_lifespan_through_and_refuses_a_repeated_host_or_origin() -> None:
    import asyncio
    import json

    from kiln.server._guard import BrowserGuard, HostRules

    seen: list[Any] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    guard = BrowserGuard(app, rules=HostRules.build([]))

    def run(scope: dict[str, Any]) -> None:
        seen.clear()
        sent.clear()
        asyncio.run(guard(scope, receive, send))

    def scope(kind: str, *headers: tuple[str, str]) -> dict[str, Any]:
        extra = {"method": "GET"} if kind == "http" else {}
        return {"type": kind, "path": "/v1/datasets", **extra, "headers": [(k.encode(), v.encode()) for k, v in headers]}

    lifespan = {"type": "lifespan"}
    run(lifespan)
    assert seen == [(lifespan, receive, send)] and sent == []
    run(scope("websocket", ("host", "localhost")))  # a websocket is a GET: no client header needed
    assert len(seen) == 1 and sent == []
    run(scope("websocket", ("host", "evil.example")))
    assert seen == [] and sent == [{"type": "websocket.close", "code": 1008, "reason": "host_not_allowed"}]
    for headers, code in [
        ((("host", "evil.example"), ("host", "localhost")), "host_not_allowed"),
        ((("host", "localhost"), ("origin", "http://evil.example"), ("origin", "http://localhost")), "cross_site_request"),
    ]:
        run(scope("http", *headers))
        assert seen == [] and sent[0]["type"] == "http.response.start" and sent[0]["status"] == 403
        error = json.loads(sent[1]["body"])["error"]
        assert set(error) == {"code", "message", "details"} and (error["code"], error["details"]) == (code, {})
