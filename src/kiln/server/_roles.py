"""Authorization before any work: every route declares the role it needs, and the
route checks it before FastAPI reads, spools or parses a byte of the body.

FastAPI reads a route's body before it solves the route's dependencies, so a role
check in a dependency (or in the service) comes after the upload is on disk. A
:class:`KilnRoute` wraps the whole handler instead: authenticate, check the role,
then hand over. The role is the route's ``x-kiln-role`` (``openapi_extra``), or by
method: reads (GET, HEAD) need ``viewer``, everything else ``editor``. Services
still check their own, finer roles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from kiln.core.context import ROLES, Context
from kiln.core.errors import InvalidArgument, PermissionDenied

__all__ = ["KilnRoute", "role", "route_role"]

_KEY = "x-kiln-role"
_ACTION = "x-kiln-action"
PUBLIC = "public"  # no token needed (health checks)


def role(name: str, *, action: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` declaring the role a route needs: ``@router.post(..., openapi_extra=role("admin"))``.

    ``action`` names the operation in the audit trail when a caller is refused
    (default ``<tag>.<function>``), as the service would name it.
    """
    if name not in (*ROLES, PUBLIC):
        raise InvalidArgument(f"unknown role {name!r}")
    return {_KEY: name, **({_ACTION: action} if action else {})}


def route_role(route: APIRoute) -> str:
    declared = (route.openapi_extra or {}).get(_KEY)
    if declared:
        return str(declared)
    return "viewer" if set(route.methods or ()) <= {"GET", "HEAD"} else "editor"


class KilnRoute(APIRoute):
    """An APIRoute that authenticates and authorizes before its handler reads the body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        needed = route_role(self)
        # Shown in the OpenAPI, so clients and docs see what each operation needs.
        self.openapi_extra = {**(self.openapi_extra or {}), _KEY: needed}

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()
        needed = route_role(self)
        if needed == PUBLIC:
            return handler
        # Called from APIRoute.__init__: read only what the route was declared with.
        declared = (self.openapi_extra or {}).get(_ACTION)
        action = str(declared or f"{self.tags[0] if self.tags else 'api'}.{self.name}")

        async def authorized(request: Request) -> Response:
            from kiln.server.deps import get_ctx

            ctx = get_ctx(request)
            try:
                ctx.require(needed)
            except PermissionDenied as exc:
                _audit_refusal(request, ctx, action, exc)
                raise
            return await handler(request)

        return authorized


def _audit_refusal(request: Request, ctx: Context, action: str, exc: PermissionDenied) -> None:
    """A refused mutation leaves an audit event, as a refusal inside a service would."""
    if request.method in ("GET", "HEAD"):
        return
    kind = action.split(".", 1)[0]
    first = next(iter(request.path_params.values()), None)
    resource = f"{kind}/{first}" if first else kind
    request.app.state.workspace.audit_failure(ctx, action=action, resource=resource[:200], error=exc)
