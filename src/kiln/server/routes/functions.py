"""REST: functions (``/v1/functions``), all declared operations; their code is uploaded
through the jobs' ``POST /v1/jobs/code``."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.jobs import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute

router = APIRouter(tags=["functions"], route_class=KilnRoute)
router.include_router(operations_router(ops.FUNCTIONS, tags=[]))
