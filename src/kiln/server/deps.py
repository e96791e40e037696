"""Request-scoped dependencies: the workspace and who is calling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from kiln.core.auth import authenticate, is_loopback
from kiln.core.context import Context
from kiln.core.errors import Unauthenticated
from kiln.core.workspace import Workspace
from kiln.server._guard import CLIENT_HEADER

__all__ = ["Ctx", "Ws", "get_ctx", "get_ws", "service"]


def get_ws(request: Request) -> Workspace:
    return request.app.state.workspace


def get_ctx(request: Request) -> Context:
    """Who is calling: authenticated once per request (the route gate and the handler share it)."""
    cached = getattr(request.state, "ctx", None)
    if cached is None:
        cached = request.state.ctx = _authenticate(request)
    return cached


def _authenticate(request: Request) -> Context:
    ws: Workspace = request.app.state.workspace
    request_id: str = request.state.request_id
    source = request.client.host if request.client else "unknown"
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not request.app.state.auth and not header:
        # --no-auth: admin only for a program on this machine that says it is a Kiln client
        # (a header no web page can send here); never for a browser or a remote caller.
        if is_loopback(source) and request.headers.get(CLIENT_HEADER, "").strip():
            return Context(actor=f"anonymous@{source}", role="admin", source=source, request_id=request_id)
        raise Unauthenticated(
            "this server runs without auth (--no-auth) and answers only Kiln clients on this "
            "machine: send the 'X-Kiln-Client: 1' header (the SDK and CLI do), or a token"
        )
    return authenticate(ws, secret.strip() if scheme.lower() == "bearer" else "", source=source, request_id=request_id)


Ws = Annotated[Workspace, Depends(get_ws)]
Ctx = Annotated[Context, Depends(get_ctx)]


def service(cls: type) -> Any:
    """A dependency building ``cls(workspace, context)`` for one request."""

    def build(ws: Ws, ctx: Ctx) -> Any:
        return cls(ws, ctx)

    return Depends(build)
