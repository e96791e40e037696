"""REST routes derived from operation declarations (:mod:`kiln.core.ops`).

Each declared operation becomes one route: its path segments and query
parameters are typed from the service method's signature, its JSON body is a
pydantic model of the ``body`` arguments (or, for a ``payload`` operation, one JSON
value passed through as it is), its role is checked before the body is
read (:class:`~kiln.server._roles.KilnRoute`), and the service runs in the
thread pool (or, for a declared ``inline`` operation on a local store, on the event loop). The OpenAPI entry follows from the same declaration.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import ConfigDict, TypeAdapter, create_model
from starlette.concurrency import run_in_threadpool

from kiln.core.errors import InvalidArgument
from kiln.core.ops import Operation
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import get_ctx

__all__ = ["body_model", "operations_router", "response_adapter"]


def operations_router(operations: Iterable[Operation], *, tags: list[str]) -> APIRouter:
    """An APIRouter with one route per operation."""
    router = APIRouter(tags=list(tags), route_class=KilnRoute)
    for op in operations:
        extra = role(op.role, action=op.name)
        if op.payload:
            extra["requestBody"] = {"required": False, "description": f"the {op.payload}: any JSON value", "content": {"application/json": {"schema": {}}}}
        router.add_api_route(
            op.path, _endpoint(op), methods=[op.method], response_model=op.response, status_code=op.status, name=op.name.split(".", 1)[1],
            operation_id=op.name, summary=op.summary or _first_line(op), openapi_extra=extra,
        )
    return router


async def _payload(request: Request, name: str) -> Any:
    """The whole body as one JSON value (an empty body is null)."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the {name} is not JSON: {exc}") from None


def _first_line(op: Operation) -> str:
    doc = inspect.getdoc(getattr(op.service_class, op.call)) or op.name
    return doc.splitlines()[0]


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}
_BODIES: dict[str, Any] = {}


def response_adapter(op: Operation) -> TypeAdapter[Any]:
    """How an operation's result is written (the route's and the hot path's, one object)."""
    if op.name not in _ADAPTERS:
        _ADAPTERS[op.name] = TypeAdapter(op.response)
    return _ADAPTERS[op.name]


def body_model(op: Operation) -> Any:
    """The pydantic model of an operation's JSON body (None without one): extra fields refused;
    the route's and the hot path's, one class."""
    if op.name not in _BODIES:
        _BODIES[op.name] = _body_model(op)
    return _BODIES[op.name]


def _body_model(op: Operation) -> Any:
    params = op.parameters
    hints = typing.get_type_hints(getattr(op.service_class, op.call))
    fields = {
        n: (hints.get(n, Any), ... if params[n].default is inspect.Parameter.empty else params[n].default)
        for n in op.body
    }
    return create_model(f"{op.name.replace('.', '_')}_body", __config__=ConfigDict(extra="forbid"), **fields) if fields else None  # type: ignore[call-overload]


def _endpoint(op: Operation) -> Any:
    adapter = response_adapter(op)
    params = op.parameters
    hints = typing.get_type_hints(getattr(op.service_class, op.call))

    def _annotation(p: inspect.Parameter) -> Any:
        return hints.get(p.name, Any)

    body = body_model(op)
    signature = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    for seg in op.segments:
        signature.append(inspect.Parameter(seg, inspect.Parameter.KEYWORD_ONLY, annotation=str, default=Path(...)))
    for n in op.query_args:
        p = params[n]
        default = Query(... if p.default is inspect.Parameter.empty else p.default)
        signature.append(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(p), default=default))
    if body is not None:
        required = any(params[n].default is inspect.Parameter.empty for n in op.body)
        signature.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body, default=Body(...) if required else Body(None)))

    async def endpoint(request: Request, **values: Any) -> Any:
        body = values.pop("body", None)
        args = op.args_from_path({s: values.pop(s) for s in op.segments})
        args.update(values)
        if body is not None:
            args.update(body.model_dump(exclude_unset=True))
        if op.payload:
            args[op.payload] = await _payload(request, op.payload)
        ws = request.app.state.workspace
        if op.runs_inline(ws, args):  # a cheap local read: no thread hop (the role was checked before this)
            result = op.invoke(ws, get_ctx(request), args)
        else:
            result = await run_in_threadpool(op.invoke, ws, get_ctx(request), args)
        # The response type serialises itself (NaN metrics as "NaN", as the models say).
        return Response(adapter.dump_json(result), media_type="application/json", status_code=op.status)

    endpoint.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    endpoint.__name__ = op.name.replace(".", "_")
    return endpoint
