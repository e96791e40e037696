"""REST: /v1/sql."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kiln.lake._wire import MEDIA_TYPES, encode_table
from kiln.lake.sql import SqlService
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import service

router = APIRouter(prefix="/v1/sql", tags=["sql"], route_class=KilnRoute)


class SqlRequest(BaseModel):
    query: str = Field(..., max_length=100_000)
    format: Literal["json", "csv", "parquet", "arrow", "jsonl"] = "json"
    limit: int | None = Field(None, ge=0, description="Rows; at most the server's KILN_SQL_MAX_ROWS.")
    timeout_s: float | None = Field(None, gt=0, description="Seconds; at most the server's KILN_SQL_TIMEOUT_S.")


@router.post("", responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}}, openapi_extra=role("viewer"))
def run_sql(body: SqlRequest, svc: SqlService = service(SqlService)) -> Response:
    """Run one read-only SELECT over the lake; JSON is ``{"columns", "types", "rows", "truncated", "elapsed_ms"}``."""
    result = svc.query(body.query, limit=body.limit, timeout_s=body.timeout_s)
    extra = {"truncated": result.truncated, "elapsed_ms": result.elapsed_ms} if body.format == "json" else {}
    headers = {"x-kiln-truncated": str(result.truncated).lower()}
    return Response(encode_table(result.table, body.format, **extra), media_type=MEDIA_TYPES[body.format], headers=headers)
