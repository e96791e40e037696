"""Authorization before any work: every route refuses a caller below its role before
one byte of the body is read, and every operation declares the role it needs."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from kiln.core.auth import TokenService
from kiln.core.context import ROLES, Context, local_context
from kiln.core.errors import PermissionDenied
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

pytestmark = pytest.mark.xdist_group("roles")


@pytest.fixture
def gated(ws: Workspace) -> tuple[Any, dict[str, str]]:
    svc = TokenService(ws, local_context())
    tokens = {r: svc.create(name=f"as-{r}", role=r).token for r in ROLES}
    return create_app(ws, auth=True), tokens


def _operations(app: Any) -> list[tuple[str, str, str]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            ops.append((method.upper(), path, op["x-kiln-role"]))
    return ops


def _call(app: Any, method: str, path: str, token: str) -> tuple[int, bool]:
    """Send ``method path`` with a token; returns the status and whether the body was read."""
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
        "type": "http", "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"format=csv", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8300),
        "headers": [
            (b"host", b"127.0.0.1:8300"), (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/octet-stream"), (b"content-length", b"1048576"),
        ],
    }
    asyncio.run(app(scope, receive, send))
    return status[0], read


def test_every_operation_declares_a_role(gated: tuple[Any, dict[str, str]]) -> None:
    ops = _operations(gated[0])
    assert len(ops) > 60
    assert {r for _, _, r in ops} <= {*ROLES, "public"}
    declared = {(m, p): r for m, p, r in ops}
    assert declared[("POST", "/v1/tokens")] == "admin"
    assert declared[("POST", "/v1/models/{name}/versions/{version}/approve")] == "approver"
    assert declared[("POST", "/v1/models/{name}/versions")] == "editor"
    assert declared[("GET", "/v1/health")] == "public"


def test_refused_before_the_body_is_read(gated: tuple[Any, dict[str, str]]) -> None:
    app, tokens = gated
    checked = 0
    for method, template, needed in _operations(app):
        if needed == "public":
            continue
        path = re.sub(r"\{[^}]+\}", "x1", template)
        for below in ROLES[: ROLES.index(needed)]:
            status, read = _call(app, method, path, tokens[below])
            assert status == 403, (method, template, below, status)
            assert not read, f"{method} {template} read the body of a {below} who may not call it"
            checked += 1
    assert checked > 40


def test_refusal_is_audited_with_the_operation_name(gated: tuple[Any, dict[str, str]], ws: Workspace) -> None:
    app, tokens = gated
    assert _call(app, "POST", "/v1/models/m1/versions", tokens["viewer"]) == (403, False)
    assert _call(app, "POST", "/v1/models/m1/versions/1/approve", tokens["editor"]) == (403, False)
    from kiln.core import audit

    with ws.db.read() as conn:
        events = audit.list_events(conn, limit=10)
    got = {(e.actor, e.action, e.resource, e.outcome) for e in events}
    assert ("token:as-viewer", "models.register", "models/m1", "failure") in got
    assert ("token:as-editor", "models.approve", "models/m1", "failure") in got


def test_only_an_admin_lists_or_revokes_tokens_even_in_process(ws: Workspace) -> None:
    """The service checks the role itself, whatever face calls it (the REST route checks it first)."""
    admin = TokenService(ws, local_context())
    made = [admin.create(name=n, role="viewer").name for n in ("zed", "amy")]
    assert [t.name for t in admin.list()] == made, "oldest first"
    editor = TokenService(ws, Context(actor="token:ed", role="editor"))
    for call in (editor.list, lambda: editor.revoke(name="zed")):
        with pytest.raises(PermissionDenied):
            call()
    assert admin.revoke(name="zed").revoked


def test_a_role_declaration_names_its_action_only_when_given_and_knows_every_role() -> None:
    from kiln.core.errors import InvalidArgument
    from kiln.server._roles import role

    assert [role(r) for r in (*ROLES, "public")] == [{"x-kiln-role": r} for r in (*ROLES, "public")]
    assert role("editor", action="models.register") == {"x-kiln-role": "editor", "x-kiln-action": "models.register"}
    with pytest.raises(InvalidArgument) as caught:
        role("root")
    assert caught.value.message == "unknown role 'root'"


def test_a_refused_read_is_not_audited_and_a_refused_mutation_names_its_resource(gated: tuple[Any, dict[str, str]], ws: Workspace) -> None:
    app, tokens = gated
    name = "m" * 250
    for method, path in [("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("POST", f"/v1/models/{name}/versions")]:
        assert _call(app, method, path, tokens["viewer"]) == (403, False)
    from kiln.core import audit

    with ws.db.read() as conn:
        refused = [(e.action, e.resource) for e in audit.list_events(conn, limit=100) if e.outcome == "failure"]
    # The resource is the first path parameter under the operation's kind, cut to 200 characters.
    assert sorted(refused) == [("models.register", f"models/{name}"[:200]), ("tokens.create", "tokens")]


def test_a_token_name_that_is_invalid_or_unknown_is_refused_by_name(ws: Workspace) -> None:
    from kiln.core.errors import InvalidArgument, NotFound

    admin = TokenService(ws, local_context())
    with pytest.raises(InvalidArgument) as invalid:
        admin.revoke(name="Bad Name")
    assert invalid.value.message.startswith("invalid token name 'Bad Name': ")
    with pytest.raises(NotFound) as unknown:
        admin.revoke(name="ghost")
    assert unknown.value.message == "token 'ghost' does not exist; `kiln tokens ls` lists them"


def test_a_token_created_with_an_invalid_name_is_refused_as_a_token_name(ws: Workspace) -> None:
    from kiln.core.errors import InvalidArgument

    with pytest.raises(InvalidArgument) as invalid:
        TokenService(ws, local_context()).create(name="Bad Name", role="viewer")
    assert invalid.value.message.startswith("invalid token name 'Bad Name': ")
    assert TokenService(ws, local_context()).list() == []


def test_only_an_admin_creates_a_token_and_a_new_token_is_as_asked(ws: Workspace) -> None:
    """In process too: an editor cannot mint itself an admin token (the mutation asks for admin)."""
    from kiln.core.errors import AlreadyExists, InvalidArgument

    admin = TokenService(ws, local_context())
    with pytest.raises(PermissionDenied):
        TokenService(ws, Context(actor="token:ed", role="editor")).create(name="mine", role="admin")
    with pytest.raises(InvalidArgument) as unknown:
        admin.create(name="x", role="root")
    assert unknown.value.message == "unknown role 'root': use one of viewer, editor, approver, admin"
    new = admin.create(name="ci", role="editor")
    assert re.fullmatch(r"kiln_[A-Za-z0-9_-]{43}", new.token) and (new.name, new.role, new.revoked) == ("ci", "editor", False)
    with pytest.raises(AlreadyExists) as taken:
        admin.create(name="ci", role="viewer")
    assert taken.value.message == "token 'ci' already exists; pick another name or revoke it first"
    assert [(t.name, t.role, t.revoked) for t in admin.list()] == [("ci", "editor", False)]


def test_tokens_are_listed_oldest_first_whatever_order_they_were_stored_in(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from kiln.core import auth

    clock = iter([200.0, 100.0])
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: next(clock)))
    admin = TokenService(ws, local_context())
    admin.create(name="late")
    admin.create(name="early")
    assert [(t.name, t.created_at) for t in admin.list()] == [("early", 100.0), ("late", 200.0)]


MALFORMED = "missing or malformed token: send 'Authorization: Bearer kiln_...'"
UNKNOWN = "token is unknown or revoked; create one with `kiln tokens create`"


def test_authentication_says_what_to_send_and_carries_the_tokens_role(ws: Workspace) -> None:
    from kiln.core.auth import authenticate
    from kiln.core.errors import Unauthenticated

    admin = TokenService(ws, local_context())
    live, gone = admin.create(name="live", role="approver").token, admin.create(name="gone", role="admin").token
    admin.revoke(name="gone")
    for secret, message in [("", MALFORMED), ("Basic dXNlcjpwYXNz", MALFORMED), (live[len("kiln_"):], MALFORMED), ("kiln_unknown", UNKNOWN), (gone, UNKNOWN)]:
        with pytest.raises(Unauthenticated) as caught:
            authenticate(ws, secret, source="10.0.0.1", request_id="req-1")
        assert caught.value.message == message, secret
    ctx = authenticate(ws, live, source="10.0.0.1", request_id="req-1")
    assert (ctx.actor, ctx.role, ctx.source, ctx.request_id) == ("token:live", "approver", "10.0.0.1", "req-1")


def test_a_route_that_declares_no_role_needs_viewer_to_read_and_editor_for_anything_else() -> None:
    """Every route of the app declares its role; a new one that forgets falls back to these."""
    from fastapi.routing import APIRoute

    from kiln.server._roles import role, route_role

    def endpoint() -> None: ...

    for methods, needed in [(["GET"], "viewer"), (["HEAD"], "viewer"), (["GET", "HEAD"], "viewer"), (["POST"], "editor"), (["GET", "POST"], "editor"), (["DELETE"], "editor")]:
        assert route_role(APIRoute("/x", endpoint, methods=methods)) == needed, methods
    assert route_role(APIRoute("/x", endpoint, methods=["GET"], openapi_extra=role("admin"))) == "admin"
