"""REST: AutoML jobs (``/v1/automl-jobs``), all derived from :mod:`kiln.automl._ops`."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.automl import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute

router = APIRouter(tags=["automl"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))
