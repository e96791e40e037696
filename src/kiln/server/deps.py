"""Request-scoped dependencies: the workspace and who is calling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from kiln.core.auth import authenticate
from kiln.core.context import Context
from kiln.core.workspace import Workspace

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
    if not request.app.state.auth:
        return Context(actor=f"anonymous@{source}", role="admin", source=source, request_id=request_id)
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    return authenticate(ws, secret.strip() if scheme.lower() == "bearer" else "", source=source, request_id=request_id)


Ws = Annotated[Workspace, Depends(get_ws)]
Ctx = Annotated[Context, Depends(get_ctx)]


def service(cls: type) -> Any:
    """A dependency building ``cls(workspace, context)`` for one request."""

    def build(ws: Ws, ctx: Ctx) -> Any:
        return cls(ws, ctx)

    return Depends(build)
