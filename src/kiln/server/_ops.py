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

__all__ = ["operations_router"]


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


def _endpoint(op: Operation) -> Any:
    adapter: TypeAdapter[Any] = TypeAdapter(op.response)
    params = op.parameters
    hints = typing.get_type_hints(getattr(op.service_class, op.call))

    def _annotation(p: inspect.Parameter) -> Any:
        return hints.get(p.name, Any)

    fields = {
        n: (_annotation(params[n]), ... if params[n].default is inspect.Parameter.empty else params[n].default)
        for n in op.body
    }
    body_model = create_model(f"{op.name.replace('.', '_')}_body", __config__=ConfigDict(extra="forbid"), **fields) if fields else None  # type: ignore[call-overload]
    signature = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    for seg in op.segments:
        signature.append(inspect.Parameter(seg, inspect.Parameter.KEYWORD_ONLY, annotation=str, default=Path(...)))
    for n in op.query_args:
        p = params[n]
        default = Query(... if p.default is inspect.Parameter.empty else p.default)
        signature.append(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(p), default=default))
    if body_model is not None:
        required = any(f[1] is ... for f in fields.values())
        signature.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body_model, default=Body(...) if required else Body(None)))

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
