"""REST: /v1/catalog (the offline catalog of public datasets), derived from its declared
operations (:mod:`kiln.lake.catalog._ops`)."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.lake.catalog import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute

router = APIRouter(tags=["catalog"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))
