"""The online reads' hot path (kiln.server._hot) answers exactly what the routes answer,
after the same authentication and role check, and leaves everything but a success to them."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import pytest

from kiln.core.auth import TokenService
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.features._service import FeatureService
from kiln.lake.datasets import DatasetService
from kiln.server._hot import OnlineReads
from kiln.server.app import create_app
from tests.faces.conftest import http_client


def _without_hot_path(app: Any) -> Any:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not OnlineReads]
    app.middleware_stack = None
    return app


@pytest.fixture
def stores(ws: Workspace) -> dict[str, str]:
    ctx = local_context()
    DatasetService(ws, ctx).write_table("d", pd.DataFrame({"id": [1, 2], "when": [1.0e9, 1.0e9], "v": [0.5, 1.5], "s": ["x", "y"]}))
    FeatureService(ws, ctx).create("g", record_id="id", event_time="when", dataset="d@1")
    FeatureService(ws, ctx).get_record("g", 1)  # the definition cached: reads may run inline
    svc = TokenService(ws, ctx)
    return {"viewer": svc.create(name="v", role="viewer").token}


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/feature-groups/g/records/1", {}),
    ("GET", "/v1/feature-groups/g/records/002", {"params": [("features", "v"), ("features", "s")]}),
    ("GET", "/v1/feature-groups/g/records/1", {"params": {"features": "nope"}}),
    ("GET", "/v1/feature-groups/g/records/404", {}),
    ("GET", "/v1/feature-groups/ghost/records/1", {}),
    ("GET", "/v1/feature-groups/g/records/seven", {}),
    ("POST", "/v1/features/online", {"json": {"identifiers": [{"feature_group": "g", "record_ids": [1, "2", 3], "features": ["v"]}]}}),
    ("POST", "/v1/features/online", {"json": {"identifiers": [{"feature_group": "g", "record_ids": [1]}], "extra": 1}}),
    ("POST", "/v1/features/online", {"json": {"identifiers": "g"}}),
    ("POST", "/v1/features/online", {"json": {"identifiers": []}}),
    ("POST", "/v1/features/online", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/v1/features/online", {"content": b'{"identifiers": [{"feature_group": "g", "record_ids": [1]}]}', "headers": {"content-type": "text/plain"}}),
]


@pytest.mark.parametrize("auth", [False, True])
def test_the_hot_path_answers_what_the_routes_answer(ws: Workspace, stores: dict[str, str], auth: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    answered: list[str] = []
    real = OnlineReads._answer

    async def spy(self: OnlineReads, scope: Any, *args: Any) -> Any:
        out = await real(self, scope, *args)
        if out is None:
            answered.append(f"{scope['method']} {scope['path']}")
        return out

    monkeypatch.setattr(OnlineReads, "_answer", spy)
    hot = create_app(ws, auth=auth, allowed_hosts=["testserver"])
    routed = _without_hot_path(create_app(ws, auth=auth, allowed_hosts=["testserver"]))
    callers = [{}, {"authorization": f"Bearer {stores['viewer']}"}] if auth else [{}]
    for headers in callers:
        with http_client(hot) as a, http_client(routed) as b:
            a.get("/v1/feature-groups/g/records/1", headers=headers)  # the group's definition cached (for a second): inline
            answered.clear()
            for method, path, kw in REQUESTS:
                kw = {**kw, "headers": {**headers, **kw.get("headers", {})}}
                ra, rb = a.request(method, path, **kw), b.request(method, path, **kw)
                assert (ra.status_code, ra.content) == (rb.status_code, rb.content), (method, path, kw, headers)
                assert ra.headers.get("content-type") == rb.headers.get("content-type")
            # Only successes are the hot path's own (with auth on, only the viewer's: the caller
            # without a token got the routes' 401).
            assert len(answered) == (0 if auth and not headers else 3), answered
    assert sorted(set(answered)) == ["GET /v1/feature-groups/g/records/002", "GET /v1/feature-groups/g/records/1", "POST /v1/features/online"]


def test_an_unauthenticated_caller_is_refused_before_the_body_is_read(ws: Workspace, stores: dict[str, str]) -> None:
    app = create_app(ws, auth=True)
    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b'{"identifiers": []}', "more_body": False}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/v1/features/online", "raw_path": b"/v1/features/online",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8300),
             "headers": [(b"host", b"127.0.0.1:8300"), (b"x-kiln-client", b"1"), (b"content-type", b"application/json"), (b"content-length", b"19")]}
    asyncio.run(app(scope, receive, send))
    assert status == [401] and not read


def test_a_browser_is_still_refused_by_the_guard(ws: Workspace, stores: dict[str, str]) -> None:
    app = create_app(ws, auth=False, allowed_hosts=["testserver"])
    with http_client(app) as http:
        assert http.get("/v1/feature-groups/g/records/1").status_code == 200
        refused = http.get("/v1/feature-groups/g/records/1", headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site", "x-kiln-client": ""})
    assert refused.status_code == 403
