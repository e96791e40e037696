"""The REST face: FastAPI over the same services the SDK and CLI use."""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import uuid
from pathlib import Path
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import kiln
from kiln.core.auth import is_loopback
from kiln.core.config import Settings
from kiln.core.errors import InvalidArgument, KilnError, PayloadTooLarge
from kiln.core.workspace import Workspace
from kiln.server._docs import add_docs
from kiln.server._guard import BrowserGuard, HostRules
from kiln.server._hot import OnlineReads

__all__ = ["ROUTE_MODULES", "create_app", "is_loopback"]

log = logging.getLogger("kiln.server")

# Each stage's REST routes live in kiln.server.routes.<module> as `router`.
# Matched in this order, route by route (FastAPI scans every route of each router before the
# next): the feature server's online reads, the latency-critical path, come right after system
# (a GET or POST /v1/features/online answered in ~130 fewer route checks, about half its CPU).
ROUTE_MODULES = [
    "system",
    "features",
    "datasets",
    "sql",
    "tracking", "registry",
    "streams", "catalog",
    "prep",
    "jobs", "functions",
    "endpoints",
    "metrics",
    "tuning",
    "monitoring",
    "automl",
]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KilnJSONResponse(JSONResponse):
    """JSON via orjson (numpy, non-str keys). FastAPI deprecated its ORJSONResponse."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _error(status: int, code: str, message: str, details: Any = None) -> KilnJSONResponse:
    return KilnJSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status_code=status
    )


class _RequestLimits:
    """Request ids on every response, and a cap on body size before anything reads it."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        ctype = headers.get("content-type", "")
        is_upload = ctype.startswith(("multipart/form-data", "application/octet-stream", "application/gzip", "text/csv", "application/vnd"))
        limit = self.max_upload if is_upload else self.max_body
        declared = headers.get("content-length", "")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            await send(message)

        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit, scope, receive, send_with_id)
            return
        seen = 0
        started = answered = False

        async def counted_receive() -> Message:
            nonlocal seen, answered
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answer 413 now: whatever reads the body may turn the exception into
                    # something else (FastAPI makes it a 400 "error parsing the body").
                    if not started and not answered:
                        answered = True
                        await _too_large(limit, scope, receive, send_with_id)
                    raise _BodyTooLarge(limit)
            return message

        async def send_once(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's own answer to a body it never got whole
            started = True
            await send_with_id(message)

        try:
            await self.app(scope, counted_receive, send_once)
        except _BodyTooLarge:
            if not answered and not started:
                await _too_large(limit, scope, receive, send_with_id)


class _BodyTooLarge(PayloadTooLarge):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body is larger than {limit / (1 << 20):g} MB; send less, "
            "or raise KILN_MAX_REQUEST_MB / KILN_MAX_UPLOAD_MB"
        )


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    mb = limit / (1 << 20)
    response = _error(413, "payload_too_large", f"request body is larger than {mb:g} MB; send less, or raise KILN_MAX_REQUEST_MB / KILN_MAX_UPLOAD_MB")
    await response(scope, receive, send)


# Stage background tasks that live as long as the app: "module:function", where the
# function takes the app and returns an async context manager.
LIFESPAN_HOOKS = [
    "kiln.lake.streams._worker:lifespan",
    "kiln.server._audit_anchor:lifespan",
    "kiln.jobs._watcher:lifespan",
    "kiln.serving._watcher:lifespan",
    "kiln.metrics._watcher:lifespan",
    "kiln.monitoring._scheduler:lifespan",
]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for spec in LIFESPAN_HOOKS:
            module, _, func = spec.partition(":")
            await stack.enter_async_context(getattr(importlib.import_module(module), func)(app))
        yield


def create_app(workspace: Workspace | None = None, *, settings: Settings | None = None, auth: bool | None = None, allowed_hosts: Sequence[str] = ()) -> FastAPI:
    """Build the app over ``workspace`` (opened from settings when not given).

    ``auth`` overrides the ``auth`` setting; ``allowed_hosts`` adds ``Host`` names the app
    answers to, besides loopback, the bound host and the ``allowed_hosts`` setting.
    """
    ws = workspace or Workspace(settings)
    rules = HostRules.build([*ws.settings.allowed_hosts.split(","), *allowed_hosts], bound=ws.settings.host)
    app = FastAPI(
        title="Kiln",
        version=kiln.__version__,
        description="Kiln's REST API. Every route is also reachable from the SDK and the CLI.",
        default_response_class=KilnJSONResponse,
        openapi_url="/openapi.json",
        docs_url=None,  # /docs and /redoc: kiln.server._docs, from assets in the package
        redoc_url=None,
        # No slash redirects: Starlette builds them from the decoded path, so '/v1/datasets/..%2F'
        # answered 307 to '/v1/datasets/..', which a client resolves to another route.
        redirect_slashes=False,
        lifespan=_lifespan,
    )
    app.state.workspace = ws
    hide_paths = _path_hider(ws)
    app.state.auth = ws.settings.auth if auth is None else auth

    @app.exception_handler(KilnError)
    async def _kiln_error(_: Request, exc: KilnError) -> KilnJSONResponse:
        if exc.http_status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        # The last guard against a library's message naming a server file (DuckDB quotes the
        # paths it read): callers see "<server path>", the log keeps nothing less.
        return _error(exc.http_status, exc.code, hide_paths(exc.message), exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> KilnJSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append(f"{where}: {err.get('msg')}")
        return _error(400, InvalidArgument.code, "invalid request: " + "; ".join(problems)[:2000], {"errors": problems[:50]})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> KilnJSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> KilnJSONResponse:
        # Answered by Starlette's outermost middleware, outside _RequestLimits: add the id here.
        request_id = str(getattr(request.state, "request_id", ""))
        log.exception("unexpected error in request %s", request_id)
        response = _error(500, "internal", f"internal error ({type(exc).__name__}) in request {request_id}; see the server log")
        if request_id:
            response.headers["x-request-id"] = request_id
        return response

    for name in ROUTE_MODULES:
        module = importlib.import_module(f"kiln.server.routes.{name}")
        app.include_router(module.router)

    _document_errors(app)
    add_docs(app)
    max_body = int(ws.settings.max_request_mb * (1 << 20))
    max_upload = int(ws.settings.max_upload_mb * (1 << 20))
    # Innermost of Kiln's own: the online reads' hot path, behind the guard and the limits.
    app.add_middleware(OnlineReads)  # type: ignore[arg-type]
    # Added before _RequestLimits, so it runs inside it: its refusals carry a request id too.
    app.add_middleware(BrowserGuard, rules=rules)  # type: ignore[arg-type]
    app.add_middleware(_RequestLimits, max_body=max_body, max_upload=max_upload)  # type: ignore[arg-type]
    return app


def _path_hider(ws: Workspace) -> Any:
    import tempfile

    roots = {str(ws.settings.home), str(ws.settings.home.resolve()), tempfile.gettempdir(), str(Path(tempfile.gettempdir()).resolve())}
    if "://" not in ws.settings.storage_url:
        roots.add(str(Path(ws.settings.storage_url).resolve()))
    pattern = re.compile("|".join(re.escape(r) + r"[^\s'\"]*" for r in sorted(roots, key=len, reverse=True)))

    def hide(message: str) -> str:
        return pattern.sub("<server path>", message)

    return hide


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    """Every error, from every route: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


def _document_errors(app: FastAPI) -> None:
    """Say in the OpenAPI what every route answers on error: the one error shape, with any
    4xx/5xx status (not FastAPI's 422, which the handler above turns into a 400)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorResponse"] = body
        error = {"description": "Error (any 4xx or 5xx status)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        _hoist_defs(spec.get("paths", {}), schemas)
        # Declared so /docs shows "Authorize": "Try it out" then sends the token.
        spec["components"].setdefault("securitySchemes", {})["bearer"] = {
            "type": "http", "scheme": "bearer",
            "description": "A Kiln token (`kiln tokens create NAME`; a local `kiln server` writes one to KILN_HOME/server-token)",
        }
        for item in spec.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["security"] = [] if operation.get("x-kiln-role") == "public" else [{"bearer": []}]
                    operation["responses"].pop("422", None)
                    operation["responses"].setdefault("default", error)
        if "HTTPValidationError" in schemas and "#/components/schemas/HTTPValidationError" not in orjson.dumps(spec["paths"]).decode():
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move the ``$defs`` of schemas written inline (``openapi_extra``) into components.

    A ``#/$defs/X`` reference is relative to the document's root, where OpenAPI has no
    ``$defs``: ReDoc stopped with "Invalid reference token: $defs".
    """
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            schemas.setdefault(name, schema)
            _hoist_defs(schema, schemas)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in node.values():
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)
