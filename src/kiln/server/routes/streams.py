"""REST: /v1/streams, every route derived from the streams' declared operations."""

from __future__ import annotations

from fastapi import APIRouter

from kiln.lake.streams import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute

router = APIRouter(tags=["streams"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))
