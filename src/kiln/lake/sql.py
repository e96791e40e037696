"""SQL over the lake (the Athena part): DuckDB, read-only, sandboxed, timed, limited.

Every dataset is a view: ``sales`` is its latest version and ``"sales@3"`` a
fixed one. User SQL runs on a connection that can read only the lake's files:
external access is off except for the store's folder, the configuration is
locked, and only a single SELECT-like statement is accepted.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, KilnError, ResourceExhausted
from kiln.core.workspace import Workspace
from kiln.lake import _tables as t
from kiln.lake._models import SqlHistoryEntry
from kiln.lake._sources import quote_ident, sql_str
from kiln.lake.datasets import DatasetService

__all__ = ["QueryResult", "SqlService"]

_ALLOWED = {"SELECT", "EXPLAIN"}
_REF = re.compile(r'"([a-z0-9][a-z0-9-]{0,62})@(\d+|latest)"')
_MAX_QUERY = 100_000


class QueryResult(BaseModel):
    """Rows of one query as an Arrow table, plus how it went."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    table: Any
    truncated: bool
    elapsed_ms: float

    @property
    def columns(self) -> list[str]:
        return list(self.table.schema.names)

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist()

    def to_pandas(self) -> Any:
        return self.table.to_pandas()

    def __len__(self) -> int:
        return self.table.num_rows


class SqlService:
    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def query(self, sql: str, *, limit: int | None = None, timeout_s: float | None = None) -> QueryResult:
        """Run one read-only statement; at most ``limit`` rows come back.

        Raises:
            InvalidArgument: not a single SELECT, a syntax error, a refused file access.
            ResourceExhausted: the query ran past its timeout.
        """
        self.ctx.require("viewer")
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidArgument("empty query: give one SELECT statement")
        if len(sql) > _MAX_QUERY:
            raise InvalidArgument(f"query is longer than {_MAX_QUERY} characters")
        max_rows = self.ws.settings.sql_max_rows
        limit = max_rows if limit is None else limit
        if limit < 0 or limit > max_rows:
            raise InvalidArgument(f"limit must be between 0 and {max_rows} (KILN_SQL_MAX_ROWS)")
        timeout = timeout_s if timeout_s is not None else self.ws.settings.sql_timeout_s
        if timeout <= 0 or timeout > 24 * 3600:
            raise InvalidArgument("timeout must be between 0 and 86400 seconds")
        start = time.perf_counter()
        status, error, rows = "ok", "", 0
        try:
            result = self._run(sql, limit, timeout)
            rows = result.table.num_rows
            return result
        except KilnError as exc:
            status, error = "error", exc.message
            raise
        except BaseException as exc:  # never remembered as "ok"
            status, error = "error", type(exc).__name__
            raise
        finally:
            self._remember(sql, status, rows, (time.perf_counter() - start) * 1000, error)

    def _run(self, sql: str, limit: int, timeout: float) -> QueryResult:
        con = self._sandbox(sql)
        timer = threading.Timer(timeout, con.interrupt)
        timer.daemon = True
        start = time.perf_counter()
        timer.start()
        try:
            reader = con.sql(sql).to_arrow_reader(batch_size=65536)
            batches, count, truncated = [], 0, False
            for batch in reader:
                if count + batch.num_rows > limit:
                    batches.append(batch.slice(0, limit - count))
                    truncated = True
                    break
                batches.append(batch)
                count += batch.num_rows
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException:
            raise ResourceExhausted(f"query ran past its {timeout:g} s timeout; narrow it or raise the timeout") from None
        except duckdb.PermissionException as exc:
            raise InvalidArgument(f"refused: {_first_line(exc)}; queries may read only lake datasets") from None
        except duckdb.OutOfMemoryException as exc:
            raise ResourceExhausted(f"query needs more memory than it may use: {_first_line(exc)}; aggregate more or select fewer columns") from None
        except (duckdb.Error, OSError) as exc:
            # An error after the first batch comes out of the Arrow reader as an OSError.
            if not timer.is_alive() and timer.finished.is_set():
                raise ResourceExhausted(f"query ran past its {timeout:g} s timeout") from None
            raise InvalidArgument(f"query failed: {_first_line(exc)}") from None
        finally:
            timer.cancel()
            con.close()
        return QueryResult(table=table, truncated=truncated, elapsed_ms=(time.perf_counter() - start) * 1000)

    def _sandbox(self, sql: str) -> duckdb.DuckDBPyConnection:
        """A connection (cursor) on the workspace's locked, read-only DuckDB, with the
        datasets as temporary views that only this connection sees."""
        con = _sandbox_database(self.ws)
        try:
            statements = con.extract_statements(sql)
            if len(statements) != 1:
                raise InvalidArgument(f"send exactly one statement (got {len(statements)})")
            kind = statements[0].type.name
            if kind == "EXPLAIN":
                kind = _explained_kind(con, sql)
            if kind not in _ALLOWED:
                raise InvalidArgument(f"only SELECT queries are allowed; {kind} statements are refused (SQL over the lake is read-only)")
            services = DatasetService(self.ws, self.ctx)
            for name, keys in services.latest_files().items():
                self._view(con, name, keys)
            for name, version in {(m.group(1), m.group(2)) for m in _REF.finditer(sql)}:
                ref = name if version == "latest" else f"{name}@{version}"
                self._view(con, f"{name}@{version}", [f.key for f in services.get(ref).files])
        except duckdb.Error as exc:
            con.close()
            raise InvalidArgument(f"query failed: {_first_line(exc)}") from None
        except BaseException:
            con.close()
            raise
        return con

    def _view(self, con: duckdb.DuckDBPyConnection, view: str, keys: list[str]) -> None:
        store = self.ws.store
        if store.capabilities.local_paths:
            files = ", ".join(sql_str(store.path(k)) for k in keys)
            con.execute(f"CREATE TEMP VIEW {quote_ident(view)} AS SELECT * FROM read_parquet([{files}])")
        else:
            con.register(view, pads.dataset([store.path(k) for k in keys], format="parquet", filesystem=store.fs))

    def _remember(self, sql: str, status: str, rows: int, elapsed_ms: float, error: str) -> None:
        with self.ws.db.write() as conn:
            conn.execute(t.sql_history.insert().values(time=time.time(), actor=self.ctx.actor, query=sql[:_MAX_QUERY], status=status, rows=rows, elapsed_ms=elapsed_ms, error=error[:2000]))

    def history(self, *, limit: int = 50) -> list[SqlHistoryEntry]:
        self.ctx.require("viewer")
        if limit < 1 or limit > 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        q = sa.select(t.sql_history).order_by(t.sql_history.c.id.desc()).limit(limit)
        if self.ctx.role != "admin":
            q = q.where(t.sql_history.c.actor == self.ctx.actor)
        with self.ws.db.read() as conn:
            return [SqlHistoryEntry(**r._mapping) for r in conn.execute(q)]


def _explained_kind(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The type of the statement an EXPLAIN wraps ("SELECT" when allowed).

    EXPLAIN ANALYZE runs its statement, so ``EXPLAIN ANALYZE COPY ... TO`` would write.
    Anything this cannot read as EXPLAIN [ANALYZE] [(options)] SELECT is refused.
    """
    refused = "EXPLAIN (of a statement other than SELECT)"
    tokens = duckdb.tokenize(sql)
    ends = [pos for pos, _ in tokens[1:]] + [len(sql)]
    words = [(pos, sql[pos:end].strip().upper()) for (pos, kind), end in zip(tokens, ends, strict=True) if kind != duckdb.token_type.comment]
    if not words or words[0][1] != "EXPLAIN":
        return refused
    depth = 0
    for pos, text in words[1:]:
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and text not in ("ANALYZE", "ANALYSE"):
            try:
                inner = con.extract_statements(sql[pos:])
            except duckdb.Error:
                return refused
            if len(inner) == 1 and inner[0].type.name == "SELECT":
                return "SELECT"
            return f"EXPLAIN {inner[0].type.name}" if len(inner) == 1 else refused
    return refused


_DATABASES: dict[tuple[str, str], duckdb.DuckDBPyConnection] = {}
_DATABASES_LOCK = threading.Lock()


def _sandbox_database(ws: Workspace) -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per workspace, locked down once; queries use cursors on it.

    Opening a DuckDB costs ~17 ms; a cursor costs well under one. The lock-down is
    database-wide: no external access except the lake's folder, no extensions, no
    spilling to a temp folder a query could read, and the settings locked.
    """
    key = (ws.settings.storage_url, ws.settings.database_url)
    with _DATABASES_LOCK:
        db = _DATABASES.get(key)
        if db is None:
            # DuckDB lets queries read its temp folder even with external access
            # off: give it an empty folder of its own and forbid spilling into it.
            scratch = ws.settings.home / "tmp" / "sql-sandbox"
            scratch.mkdir(parents=True, exist_ok=True)
            db = duckdb.connect(config={
                "temp_directory": str(scratch),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "threads": max(1, os.cpu_count() or 1),
                "max_temp_directory_size": "0B",
            })
            if ws.store.capabilities.local_paths:
                db.execute(f"SET allowed_directories=[{sql_str(str(ws.store.url))}]")
            db.execute("SET enable_external_access=false")
            db.execute("SET lock_configuration=true")
            _DATABASES[key] = db
        return db.cursor()


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]
