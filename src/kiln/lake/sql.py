"""SQL over the lake (the Athena part): DuckDB, read-only, sandboxed, timed, limited.

Every dataset is a view: ``sales`` is its latest version and ``"sales@3"`` a
fixed one. The sandbox has three layers:

1. the statement allowlist: one SELECT (or EXPLAIN of one);
2. the function check: DuckDB's parse tree may call only a few table functions
   (``range``, ``unnest``...), no scalar function that reveals the server
   (``current_setting``, ``getenv``...) and no system view;
3. the connection: a DuckDB per snapshot of the lake (its set of live files)
   whose only readable paths are exactly those files (``allowed_paths``),
   external access otherwise off, no temp folder, no extensions, no scans of
   Python variables, configuration locked. Views read the files with DuckDB's
   own Parquet reader. An S3 lake's datasets come in as Arrow datasets
   instead, and its connection may open no file at all.

Layer 3 holds on its own against reading a deleted version's file or any file
outside the live ones, writing a new file anywhere (the lake, /tmp), ATTACH of
another database and SET. One thing it does not stop: ``COPY ... TO`` a live
file with ``USE_TMP_FILE false`` overwrites it, because DuckDB's allowed paths
allow writes as well as reads. Only layers 1 and 2 refuse that (each alone
does), and with both bypassed the live files' paths show in
``duckdb_settings()``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import OrderedDict
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, KilnError, ResourceExhausted
from kiln.core.names import parse_ref
from kiln.core.workspace import Workspace
from kiln.lake import _tables as t
from kiln.lake._models import SqlHistoryEntry
from kiln.lake._sources import quote_ident, sql_str
from kiln.lake.datasets import DatasetService

__all__ = ["QueryResult", "SqlService"]

_ALLOWED = {"SELECT", "EXPLAIN"}
_REF = re.compile(r"([a-z0-9][a-z0-9_-]{0,62})@(\d+|latest)")
# A dataset name with "-" written without quotes (FROM cancer-pd): DuckDB reads a minus.
_UNQUOTED = re.compile(r"(?i:\b(?:from|join)\s+)([a-z0-9][a-z0-9_]*(?:-[a-z0-9_]+)+(?:@[a-z0-9_-]+)?)(?![\w\"@-])")
_MAX_QUERY = 100_000
# Table functions a query may call; every other one (read_parquet, glob, query,
# duckdb_settings(), ...) is refused before DuckDB sees the query.
_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
# Scalar functions that reveal the server: its settings (paths), environment, secrets.
_SCALAR_REFUSED = frozenset({"current_setting", "getenv", "which_secret", "getvariable"})
# System views (duckdb_databases, pragma_database_list, pg_settings, sqlite_master), and
# table names that look like a file (replacement scans: FROM 'x.parquet').
_SYSTEM_VIEW = re.compile(r"duckdb_|pragma_|sqlite_|pg_")
_FILE_LIKE = re.compile(r"[./\\:*?~]")
_ONLY_DATASETS = 'queries may read only lake datasets; use FROM sales or FROM "sales@3"'


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
        # A client may lower the server's limits, never raise them.
        max_rows, max_timeout = self.ws.settings.sql_max_rows, self.ws.settings.sql_timeout_s
        limit = max_rows if limit is None else limit
        if limit < 0 or limit > max_rows:
            raise InvalidArgument(f"limit must be between 0 and {max_rows} rows, the server's maximum (KILN_SQL_MAX_ROWS)")
        timeout = max_timeout if timeout_s is None else timeout_s
        if not 0 < timeout <= max_timeout:
            raise InvalidArgument(f"timeout must be more than 0 and at most {max_timeout:g} seconds, the server's maximum (KILN_SQL_TIMEOUT_S)")
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
        except duckdb.PermissionException:
            raise InvalidArgument(f"refused: file access; {_ONLY_DATASETS}") from None
        except duckdb.OutOfMemoryException as exc:
            raise ResourceExhausted(f"query needs more memory than it may use: {self._first_line(exc)}; aggregate more or select fewer columns") from None
        except (duckdb.Error, OSError) as exc:
            # An error after the first batch comes out of the Arrow reader as an OSError.
            if not timer.is_alive() and timer.finished.is_set():
                raise ResourceExhausted(f"query ran past its {timeout:g} s timeout") from None
            raise InvalidArgument(f"query failed: {self._first_line(exc)}") from None
        finally:
            timer.cancel()
            con.close()
        return QueryResult(table=table, truncated=truncated, elapsed_ms=(time.perf_counter() - start) * 1000)

    def _sandbox(self, sql: str) -> duckdb.DuckDBPyConnection:
        """A cursor on the locked DuckDB of the lake's current snapshot, with the
        datasets the query names as temporary views that only this cursor sees."""
        services = DatasetService(self.ws, self.ctx)
        live = services.live_files()
        con = _sandbox_database(self.ws, live)
        try:
            statements = con.extract_statements(sql)
            if len(statements) != 1:
                raise InvalidArgument(f"send exactly one statement (got {len(statements)})")
            kind, select = statements[0].type.name, sql
            if kind == "EXPLAIN":
                kind, select = _explained(con, sql)
            if kind not in _ALLOWED:
                raise InvalidArgument(f"only SELECT queries are allowed; {kind} statements are refused (SQL over the lake is read-only)")
            for name in _checked_tables(con, select):
                keys = _version_keys(live, name)
                if keys is None and (ref := _REF.fullmatch(name)) is not None:
                    # Not in the snapshot: NotFound (or InvalidArgument) with the usual message.
                    services.get(ref.group(1) if ref.group(2) == "latest" else name)
                    raise Conflict(f"dataset {ref.group(1)!r} changed as the query started; run it again")
                if keys is not None:
                    self._view(con, name, keys)
        except duckdb.Error as exc:
            con.close()
            hint = _UNQUOTED.search(sql) if isinstance(exc, duckdb.ParserException) else None
            quote = f'; a name with "-" needs double quotes: FROM "{hint.group(1)}"' if hint else ""
            raise InvalidArgument(f"query failed: {self._first_line(exc)}{quote}") from None
        except BaseException:
            con.close()
            raise
        return con

    def _view(self, con: duckdb.DuckDBPyConnection, view: str, keys: list[str]) -> None:
        store = self.ws.store
        if store.capabilities.local_paths:
            # DuckDB's own reader: the connection may open exactly these files.
            files = ", ".join(sql_str(store.path(k)) for k in keys)
            con.execute(f"CREATE TEMP VIEW {quote_ident(view)} AS SELECT * FROM read_parquet([{files}])")
        else:
            # S3: DuckDB cannot load httpfs offline, and its connection opens no file at all.
            con.register(view, _arrow_dataset(self.ws, keys))

    def _first_line(self, exc: BaseException) -> str:
        """The error's first line, without the server's paths."""
        line = _first_line(exc)
        settings = self.ws.settings
        for root in sorted({str(self.ws.store.url), str(settings.home), str(settings.home.resolve())}, key=len, reverse=True):
            line = line.replace(root, "<lake>")
        return _PATH.sub("<path>", line)

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


def _explained(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, str]:
    """The type of the statement an EXPLAIN wraps ("SELECT" when allowed), and its text.

    EXPLAIN ANALYZE runs its statement, so ``EXPLAIN ANALYZE COPY ... TO`` would write.
    Anything this cannot read as EXPLAIN [ANALYZE] [(options)] SELECT is refused.
    """
    refused = "EXPLAIN (of a statement other than SELECT)"
    tokens = duckdb.tokenize(sql)
    ends = [pos for pos, _ in tokens[1:]] + [len(sql)]
    words = [(pos, sql[pos:end].strip().upper()) for (pos, kind), end in zip(tokens, ends, strict=True) if kind != duckdb.token_type.comment]
    if not words or words[0][1] != "EXPLAIN":
        return refused, ""
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
                return refused, ""
            if len(inner) == 1 and inner[0].type.name == "SELECT":
                return "SELECT", sql[pos:]
            return (f"EXPLAIN {inner[0].type.name}" if len(inner) == 1 else refused), ""
    return refused, ""


def _checked_tables(con: duckdb.DuckDBPyConnection, select: str) -> set[str]:
    """The tables one SELECT names, after walking DuckDB's parse tree for anything
    that reaches past the lake's datasets (see ``_TABLE_FUNCTIONS``).

    Raises:
        InvalidArgument: the query calls a refused function or names a system view.
    """
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [select]).fetchall()[0][0])
    if tree.get("error"):
        raise InvalidArgument(f"query failed: {tree.get('error_message', 'not a SELECT')}"[:500])
    tables: set[str] = set()
    stack: list[Any] = [tree["statements"]]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = str(node.get("function", {}).get("function_name", "")).lower()
            if name not in _TABLE_FUNCTIONS:
                raise InvalidArgument(f"refused: table function {name}(); {_ONLY_DATASETS}")
        elif kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if _FILE_LIKE.search(name):  # a replacement scan: FROM 'x.parquet' (not echoed back: it may be a path)
                raise InvalidArgument(f"refused: reading a file; {_ONLY_DATASETS}")
            if node.get("schema_name") or node.get("catalog_name") or _SYSTEM_VIEW.match(name.lower()):
                raise InvalidArgument(f"refused: table {name!r}; {_ONLY_DATASETS}")
            tables.add(name)
        elif kind == "SHOW_REF" and node.get("query") is None:
            raise InvalidArgument("refused: SHOW of the database; list datasets with `kiln datasets list`")
        elif node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in _SCALAR_REFUSED:
            raise InvalidArgument(f"refused: {node['function_name']}() reveals the server's settings; {_ONLY_DATASETS}")
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return tables


_ARROW: OrderedDict[tuple[str, tuple[str, ...]], pads.Dataset] = OrderedDict()
_ARROW_LOCK = threading.Lock()
_ARROW_KEEP = 256


def _arrow_dataset(ws: Workspace, keys: list[str]) -> pads.Dataset:
    """The Parquet files of one version as an Arrow dataset of row-group fragments
    (more fragments scan in parallel). A version's files never change, so the
    dataset (metadata only) is kept for the next query."""
    key = (str(ws.store.url), tuple(keys))
    with _ARROW_LOCK:
        found = _ARROW.get(key)
        if found is not None:
            _ARROW.move_to_end(key)
            return found
    store = ws.store
    whole = pads.dataset([store.path(k) for k in keys], format="parquet", filesystem=store.fs)
    fragments = [piece for fragment in whole.get_fragments() for piece in fragment.split_by_row_group()]
    found = pads.FileSystemDataset(fragments, whole.schema, whole.format, filesystem=whole.filesystem) if fragments else whole
    with _ARROW_LOCK:
        _ARROW[key] = found
        while len(_ARROW) > _ARROW_KEEP:
            _ARROW.popitem(last=False)
    return found


_DATABASES: OrderedDict[tuple[str, str, frozenset[str]], duckdb.DuckDBPyConnection] = OrderedDict()
_DATABASES_LOCK = threading.Lock()
_SNAPSHOTS_KEPT = 2  # per workspace: the current one, and the one before for queries still on it
_DATABASES_KEPT = 8


def _version_keys(live: dict[str, dict[int, list[str]]], name: str) -> list[str] | None:
    """The file keys of the version a view name stands for (``sales``, ``sales@3``,
    ``sales@latest``) in this snapshot, or None when it names none."""
    if name in live:
        return live[name][max(live[name])]
    ref = _REF.fullmatch(name)
    if ref is None or ref.group(1) not in live:
        return None
    versions = live[ref.group(1)]
    if ref.group(2) == "latest":
        return versions[max(versions)]
    # parse_ref bounds the number before int() does (a 5,000-digit version is a 400)
    return versions.get(parse_ref(f"{ref.group(1)}@{ref.group(2)}", kind="dataset").version)  # type: ignore[arg-type]


def _sandbox_database(ws: Workspace, live: dict[str, dict[int, list[str]]]) -> duckdb.DuckDBPyConnection:
    """A cursor on the locked in-memory DuckDB of this snapshot of the lake.

    A snapshot is the set of live files: committing or deleting a version changes
    it, and the next query gets a DuckDB that may read exactly the new set.
    Opening and locking one costs ~17 ms, a cursor well under one, so the latest
    ``_SNAPSHOTS_KEPT`` per workspace are kept. One dropped here stays open until
    the last query on it closes its cursor.
    """
    keys = frozenset(k for versions in live.values() for files in versions.values() for k in files)
    workspace = (ws.settings.storage_url, ws.settings.database_url)
    cache_key = (*workspace, keys)
    with _DATABASES_LOCK:
        db = _DATABASES.get(cache_key)
        if db is not None:
            _DATABASES.move_to_end(cache_key)
            return db.cursor()
        store = ws.store
        allowed = sorted(store.path(k) for k in keys) if store.capabilities.local_paths else []
        db = duckdb.connect(":memory:", config={
            "temp_directory": "",
            "max_temp_directory_size": "0B",
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,
            # Not the server's ~/.duckdb: no setting may name a server path.
            "allow_persistent_secrets": False,
            "secret_directory": "no-secrets",
            "threads": max(1, os.cpu_count() or 1),
        })
        # Exact files, not the lake's folder: a deleted version's files stay there until gc.
        db.execute(f"SET allowed_paths=[{', '.join(sql_str(p) for p in allowed)}]")
        db.execute("SET enable_external_access=false")
        db.execute("SET lock_configuration=true")
        _DATABASES[cache_key] = db
        same = [k for k in _DATABASES if k[:2] == workspace]
        for old in same[:-_SNAPSHOTS_KEPT]:
            del _DATABASES[old]
        while len(_DATABASES) > _DATABASES_KEPT:
            _DATABASES.popitem(last=False)
        return db.cursor()


_PATH = re.compile(r"""(?<![\w.])(?:[a-z][a-z0-9+]*://|/)[^\s'"]*(?:/[^\s'"]*)+""")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]
