"""REST: metrics (``/v1/metrics``), alarms (``/v1/alarms``) and logs (``/v1/logs/{kind}/{name}``),
derived from :mod:`kiln.metrics._ops`, and the server's Prometheus exposition at ``GET /metrics``.

``/metrics`` needs a viewer token like every other read (with auth on): the counters name
endpoints, variants and alarms, which a viewer may see and an anonymous caller may not.
Prometheus sends one with ``authorization: {credentials: <token>}`` in its scrape config.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from kiln.metrics import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role

router = APIRouter(tags=["metrics"], route_class=KilnRoute)


@router.get(ops.PROMETHEUS_PATH, openapi_extra=role(ops.PROMETHEUS_ROLE, action="metrics.prometheus"),
            responses={200: {"description": "Prometheus text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def prometheus(request: Request) -> Response:
    """The platform's metrics in Prometheus' text format: endpoints' counters and latency
    histograms, the last minute of every stored series, and alarm states."""
    from kiln.metrics._prometheus import CONTENT_TYPE, render

    text = await run_in_threadpool(render, request.app.state.workspace)
    return Response(text, media_type=CONTENT_TYPE)


router.include_router(operations_router(ops.ALL, tags=[]))
