"""SDK: ``client.sql(...)``."""

from __future__ import annotations

from typing import Any

from kiln.lake import SqlHistoryEntry
from kiln.lake._wire import decode_table
from kiln.lake.sql import QueryResult, SqlService
from kiln.sdk._base import HttpTransport, LocalTransport

__all__ = ["run_sql", "sql_history"]


def run_sql(t: Any, query: str, *, limit: int | None, timeout_s: float | None) -> QueryResult:
    if isinstance(t, LocalTransport):
        return SqlService(t.workspace, t.ctx).query(query, limit=limit, timeout_s=timeout_s)
    assert isinstance(t, HttpTransport)
    import httpx  # noqa: F401 - transport is httpx

    body = {"query": query, "format": "arrow", "limit": limit, "timeout_s": timeout_s}
    resp = t._http.post("/v1/sql", json={k: v for k, v in body.items() if v is not None})
    if resp.status_code >= 400:
        from kiln.sdk._base import _decode

        _decode(resp)
    return QueryResult(table=decode_table(resp.content), truncated=resp.headers.get("x-kiln-truncated") == "true", elapsed_ms=resp.elapsed.total_seconds() * 1000)


def sql_history(t: Any, *, limit: int = 50) -> list[SqlHistoryEntry]:
    from kiln.lake import _ops as ops

    return t.call(ops.SQL_HISTORY, limit=limit)  # type: ignore[no-any-return]
