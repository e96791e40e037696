"""The feature server's two online reads, answered before FastAPI's routing.

``GET /v1/feature-groups/{name}/records/{record_id}`` and ``POST /v1/features/online`` are
the latency-critical path: a read from a local SQLite online store takes tens of
microseconds, FastAPI's route matching, dependency solving and middleware layers several
hundred. :class:`OnlineReads` sits inside the browser guard and the request limits (so both
still apply to every request) and answers the plain case itself, with the routes' own
pieces: the same authentication (:func:`kiln.server.deps.get_ctx`) and role check before
any work, the same body model, the same service call and response type. Anything else
(an unauthenticated or refused caller, a body the model refuses, an error from the
service, a store that is not local) goes on to the routes untouched, its body replayed,
and gets their answer, audit and error format: only successes are answered here.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["OnlineReads"]

# The route's own pattern (Starlette's compile_path of the declared path, on the decoded path).
_RECORD = re.compile(r"/v1/feature-groups/(?P<name>[^/]+)/records/(?P<record_id>[^/]+)")
_ONLINE = "/v1/features/online"


class OnlineReads:
    """ASGI middleware: successful online reads from a local store, without the router."""

    def __init__(self, app: ASGIApp) -> None:
        from kiln.features import _ops
        from kiln.server._ops import body_model, response_adapter

        self.app = app
        self._get, self._post = _ops.GET_RECORD, _ops.BATCH_GET
        self._adapters = {op.name: response_adapter(op) for op in (self._get, self._post)}
        self._body = body_model(self._post)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith("/v1/feature-groups/"):
                m = _RECORD.fullmatch(path)
                if m is not None:
                    receive = await self._answer(scope, receive, send, self._get, m.groupdict())
                    if receive is None:
                        return
            elif method == "POST" and path == _ONLINE:
                receive = await self._answer(scope, receive, send, self._post, {})
                if receive is None:
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, op: Any, args: dict[str, Any]) -> Receive | None:
        """Answer the request (None); for anything but a plain success, send nothing and give
        the ``receive`` the routes should use (the body replayed when it was read)."""
        from kiln.core.errors import KilnError
        from kiln.server.deps import get_ctx

        request = Request(scope, receive)
        try:
            ctx = get_ctx(request)  # cached on the request: the routes reuse it
            ctx.require(op.role)  # a refusal is the route's to answer (and audit)
        except KilnError:
            return receive  # before a byte of the body is read
        if op is self._get:
            features = QueryParams(scope["query_string"]).getlist("features")
            args["features"] = features or None
        else:
            headers = dict(scope["headers"])
            if not headers.get(b"content-type", b"").startswith(b"application/json"):
                return receive
            body = await _read_body(receive)
            receive = _replay(body, receive)
            try:
                parsed = self._body.model_validate(orjson.loads(body))
            except ValueError:  # orjson's and pydantic's errors: the route's 400
                return receive
            args = parsed.model_dump(exclude_unset=True)
        ws = scope["app"].state.workspace
        try:
            if not op.runs_inline(ws, args):
                return receive
            result = op.invoke(ws, ctx, args)
        except Exception:  # noqa: BLE001 - the route runs it again and answers its error
            return receive
        await Response(self._adapters[op.name].dump_json(result), media_type="application/json", status_code=op.status)(scope, receive, send)
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: the route sees an empty body and the next receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
