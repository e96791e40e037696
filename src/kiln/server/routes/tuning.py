"""REST: tuning jobs (``/v1/tuning-jobs``), all derived from :mod:`kiln.tuning._ops`."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute
from kiln.tuning import _ops as ops

router = APIRouter(tags=["tuning"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))
