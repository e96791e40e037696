from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from kiln.core.errors import InvalidArgument, NotFound, ResourceExhausted
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
from kiln.lake import sql as sqlmod
from kiln.lake.sql import SqlService


def _seed(ws: Workspace, ctx) -> SqlService:
    ds = DatasetService(ws, ctx)
    ds.ingest("sales", pd.DataFrame({"id": [1, 2, 3], "region": ["n", "s", "n"], "amount": [10.0, 20.0, 30.0]}))
    ds.ingest("sales", pd.DataFrame({"id": [4], "region": ["s"], "amount": [40.0]}), append=True)
    ds.ingest("regions", pd.DataFrame({"region": ["n", "s"], "label": ["North", "South"]}))
    return SqlService(ws, ctx)


@pytest.fixture
def sql(any_ws: Workspace, ctx) -> SqlService:
    return _seed(any_ws, ctx)


@pytest.fixture(scope="module")
def local_sql(tmp_path_factory: pytest.TempPathFactory):
    from kiln.core.config import load_settings
    from kiln.core.context import local_context

    ws = Workspace(load_settings(home=str(tmp_path_factory.mktemp("sql"))))
    yield _seed(ws, local_context())
    ws.close()


def test_latest_fixed_versions_and_joins(sql: SqlService) -> None:
    assert sql.query("SELECT count(*) AS n FROM sales").rows() == [{"n": 4}]
    assert sql.query('SELECT count(*) AS n FROM "sales@1"').rows() == [{"n": 3}]
    assert sql.query('SELECT count(*) AS n FROM "sales@latest"').rows() == [{"n": 4}]
    rows = sql.query("SELECT label, sum(amount) AS total FROM sales JOIN regions USING (region) GROUP BY label ORDER BY label").rows()
    assert rows == [{"label": "North", "total": 40.0}, {"label": "South", "total": 60.0}]


def test_row_limit_truncates_and_says_so(sql: SqlService) -> None:
    result = sql.query("SELECT * FROM sales ORDER BY id", limit=2)
    assert len(result) == 2 and result.truncated
    assert not sql.query("SELECT * FROM sales", limit=10).truncated


@pytest.mark.parametrize("query", [
    "CREATE TABLE x AS SELECT 1",
    "INSERT INTO sales VALUES (9, 'n', 1.0)",
    "DELETE FROM sales",
    "DROP VIEW sales",
    "ATTACH '/tmp/evil.db' AS evil",
    "INSTALL httpfs",
    "LOAD httpfs",
    "COPY (SELECT 1) TO '/tmp/kiln-evil.csv'",
    "EXPORT DATABASE '/tmp/kiln-evil'",
    "SET enable_external_access = true",
    "PRAGMA database_list",
    "CALL pragma_version()",
    "SELECT 1; SELECT 2",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM parquet_metadata('/tmp/x.parquet')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM iceberg_scan('/tmp/x')",
    "SELECT * FROM query('SELECT * FROM read_text(''/etc/hostname'')')",
    "SELECT * FROM (SELECT * FROM sales) s, LATERAL (SELECT * FROM read_csv_auto('/etc/passwd'))",
    "SELECT current_setting('temp_directory')",
    "SELECT [current_setting('secret_directory') for x in [1]]",
    "SELECT getenv('HOME')",
    "SELECT which_secret('s3://b/x', 's3')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM duckdb_databases",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM pg_catalog.pg_settings",
    "SELECT * FROM pg_settings",
    "SHOW databases",
    "EXPLAIN SELECT * FROM read_parquet('/tmp/x.parquet')",
    "",
    "SELEC 1",
])
def test_only_read_only_lake_queries_run(local_sql: SqlService, query: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        local_sql.query(query)
    assert str(local_sql.ws.settings.home) not in info.value.message


def test_explain_describe_and_quoted_versions_still_work(local_sql: SqlService) -> None:
    assert "physical_plan" in str(local_sql.query("EXPLAIN SELECT * FROM sales").rows())
    assert len(local_sql.query('DESCRIBE "sales@1"')) == 3
    assert local_sql.query('SELECT count(*) AS n FROM "sales@1" JOIN range(2) r ON true').rows() == [{"n": 6}]
    with pytest.raises(InvalidArgument, match='use FROM sales or FROM "sales@3"'):
        local_sql.query("SELECT * FROM read_parquet('x.parquet')")


def _deleted_file(sql: SqlService) -> str:
    """A dataset that was deleted (its file stays until `kiln gc`); the file's path."""
    ds = DatasetService(sql.ws, sql.ctx)
    ds.ingest("secret", pd.DataFrame({"pin": [1234]}))
    path = str(sql.ws.store.path(ds.get("secret").files[0].key))
    ds.delete("secret")
    return path


def test_a_deleted_dataset_is_unreadable_by_any_route(sql: SqlService) -> None:
    path = _deleted_file(sql)
    for query in ["SELECT * FROM secret", 'SELECT * FROM "secret@1"', 'SELECT * FROM "secret@latest"', f"SELECT * FROM read_parquet('{path}')",
                  f"SELECT * FROM parquet_scan(['{path}'])", f"SELECT * FROM '{path}'", f"SELECT * FROM glob('{path}')"]:
        with pytest.raises((InvalidArgument, NotFound)) as info:
            sql.query(query)
        assert path not in info.value.message and "1234" not in info.value.message, (query, info.value.message)


class _Everything(frozenset):
    def __contains__(self, item: object) -> bool:
        return True


def _open_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlmod, "_ALLOWED", _Everything())
    monkeypatch.setattr(sqlmod, "_explained", lambda con, sql: ("SELECT", sql))


def _open_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlmod, "_checked_tables", lambda con, select: {"sales"})


def _open_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlmod, "_sandbox_database", lambda ws: duckdb.connect())


def test_the_connection_alone_stops_writes_and_file_reads(local_sql: SqlService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _open_statements(monkeypatch)
    _open_functions(monkeypatch)
    lake = Path(local_sql.ws.store.url)
    before = sorted(lake.rglob("*"))
    path = _deleted_file(local_sql)
    for query in [f"COPY sales TO '{lake}/datasets/sales/x.csv'", f"COPY sales TO '{tmp_path}/x.csv'", f"SELECT * FROM read_parquet('{path}')",
                  f"SELECT * FROM '{path}'", f"ATTACH '{tmp_path}/x.db' AS x", "SET enable_external_access = true", "SET temp_directory = '/tmp'"]:
        with pytest.raises(InvalidArgument, match="refused|query failed") as info:
            local_sql.query(query)
        assert str(lake) not in info.value.message and str(tmp_path) not in info.value.message
    assert sorted(lake.rglob("*")) == [*before, *[p for p in sorted(lake.rglob("*")) if p not in before and "secret" in str(p)]]
    assert list(tmp_path.iterdir()) == []
    settings = local_sql.query("SELECT name, value FROM duckdb_settings()").rows()
    server = [str(local_sql.ws.settings.home), str(lake), os.path.expanduser("~"), os.getcwd()]
    assert not [s for s in settings if any(root in str(s["value"]) for root in server)], settings


def test_the_function_check_alone_stops_file_reads_and_settings(local_sql: SqlService, monkeypatch: pytest.MonkeyPatch) -> None:
    _open_statements(monkeypatch)
    _open_connection(monkeypatch)
    path = _deleted_file(local_sql)
    for query in [f"SELECT * FROM read_parquet('{path}')", f"SELECT * FROM '{path}'", "SELECT * FROM glob('/etc/*')",
                  "SELECT current_setting('temp_directory')", "SELECT * FROM duckdb_databases", "SELECT * FROM duckdb_settings()"]:
        with pytest.raises(InvalidArgument, match="refused"):
            local_sql.query(query)
    with pytest.raises(InvalidArgument, match="not a SELECT|Only SELECT"):
        local_sql.query(f"COPY (SELECT 1) TO '{path}.csv'")
    assert not Path(f"{path}.csv").exists()


def test_the_statement_allowlist_alone_stops_writes(local_sql: SqlService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _open_functions(monkeypatch)
    _open_connection(monkeypatch)
    for query in [f"COPY (SELECT 1) TO '{tmp_path}/x.csv'", f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp_path}/x.csv'", f"ATTACH '{tmp_path}/x.db'", "SET threads = 1"]:
        with pytest.raises(InvalidArgument, match="refused"):
            local_sql.query(query)
    assert list(tmp_path.iterdir()) == []


def test_unknown_version_is_not_found(sql: SqlService) -> None:
    with pytest.raises(NotFound, match=r"no version 9 \(latest is 2\)"):
        sql.query('SELECT * FROM "sales@9"')


def test_timeout(sql: SqlService) -> None:
    with pytest.raises(ResourceExhausted, match="timeout"):
        sql.query("SELECT count(*) FROM range(10000000000) a, range(10) b", timeout_s=0.5)


def test_history_records_successes_and_failures(sql: SqlService) -> None:
    sql.query("SELECT 1 AS one")
    with pytest.raises(InvalidArgument):
        sql.query("DROP VIEW sales")
    history = sql.history(limit=2)
    assert [h.status for h in history] == ["error", "ok"]
    assert history[0].error and history[1].rows == 1


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"limit": -1}, "limit"),
    ({"timeout_s": 0}, "timeout"),
    ({"limit": 1_000_001}, r"at most|between 0 and 1000000 rows, the server's maximum \(KILN_SQL_MAX_ROWS\)"),
    ({"timeout_s": 60.5}, r"at most 60 seconds, the server's maximum \(KILN_SQL_TIMEOUT_S\)"),
    ({"timeout_s": 86_400}, "at most 60 seconds"),
])
def test_bad_query_options(local_sql: SqlService, kwargs: dict, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        local_sql.query("SELECT 1", **kwargs)


def test_a_client_may_lower_the_limits_but_not_raise_them(tmp_path: Path, ctx) -> None:
    from kiln.core.config import load_settings

    ws = Workspace(load_settings(home=str(tmp_path), sql_timeout_s=2, sql_max_rows=5))
    try:
        sql = SqlService(ws, ctx)
        assert len(sql.query("SELECT * FROM range(100)")) == 5 and len(sql.query("SELECT * FROM range(100)", limit=3)) == 3
        with pytest.raises(ResourceExhausted, match="2 s timeout"):
            sql.query("SELECT count(*) FROM range(10000000000) a, range(10) b")
        with pytest.raises(InvalidArgument, match="at most 2 seconds"):
            sql.query("SELECT 1", timeout_s=3)
        with pytest.raises(InvalidArgument, match="between 0 and 5 rows"):
            sql.query("SELECT 1", limit=6)
    finally:
        ws.close()


def test_error_after_the_first_batch_is_invalid_argument_and_remembered(local_sql: SqlService) -> None:
    query = "SELECT CASE WHEN i > 300000 THEN error('boom') ELSE i END AS x FROM range(1000000) t(i)"
    with pytest.raises(InvalidArgument, match="boom"):
        local_sql.query(query)
    last = local_sql.history(limit=1)[0]
    assert last.query == query and last.status == "error"


def test_version_past_64_bits_is_invalid_not_a_crash(local_sql: SqlService) -> None:
    with pytest.raises(InvalidArgument):
        local_sql.query('SELECT * FROM "sales@99999999999999999999999"')


def test_an_unexpected_failure_is_not_remembered_as_ok(local_sql: SqlService, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.core.errors import Unavailable

    def down(self, *args, **kwargs):
        raise Unavailable("the store went away")

    monkeypatch.setattr(SqlService, "_run", down)
    with pytest.raises(Unavailable):
        local_sql.query("SELECT 42")
    last = local_sql.history(limit=1)[0]
    assert last.query == "SELECT 42" and last.status == "error" and "went away" in last.error
