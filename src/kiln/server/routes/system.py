"""Health, tokens, audit and garbage collection."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

import kiln
from kiln.core import _ops as ops
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role

router = APIRouter(tags=["system"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))


class Health(BaseModel):
    status: str
    version: str


@router.get("/v1/health", response_model=Health, openapi_extra=role("public"))
def health() -> Health:
    return Health(status="ok", version=kiln.__version__)
