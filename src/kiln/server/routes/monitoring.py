"""REST: monitors (``/v1/monitors``), baselines and comparisons (``/v1/monitoring/...``),
all derived from :mod:`kiln.monitoring._ops`."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.monitoring import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute

router = APIRouter(tags=["monitoring"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))
