"""REST: feature groups (``/v1/feature-groups``), the feature server (``POST /v1/features/online``)
and training sets, all derived from :mod:`kiln.features._ops`."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.features import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute

router = APIRouter(tags=["features"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))
