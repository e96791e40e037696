from __future__ import annotations

import pandas as pd
import pytest

from kiln.core.errors import InvalidArgument, NotFound, ResourceExhausted
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
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
    "",
    "SELEC 1",
])
def test_only_read_only_lake_queries_run(local_sql: SqlService, query: str) -> None:
    with pytest.raises(InvalidArgument):
        local_sql.query(query)


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


@pytest.mark.parametrize(("kwargs", "needle"), [({"limit": -1}, "limit"), ({"timeout_s": 0}, "timeout"), ({"limit": 10**9}, "limit")])
def test_bad_query_options(local_sql: SqlService, kwargs: dict, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        local_sql.query("SELECT 1", **kwargs)


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


def test_underscore_names_work_as_paths_keys_and_tables(any_ws: Workspace, ctx) -> None:
    """`cancer_pd` is what people type: stored under its name on a folder and on S3, queried bare."""
    ds = DatasetService(any_ws, ctx)
    ds.ingest("cancer_pd", pd.DataFrame({"id": [1, 2]}))
    ds.ingest("cancer_pd", pd.DataFrame({"id": [3]}), append=True)
    assert all(f.key.startswith("datasets/cancer_pd/") for f in ds.get("cancer_pd").files)
    sql = SqlService(any_ws, ctx)
    assert sql.query("SELECT sum(id) AS s FROM cancer_pd").rows() == [{"s": 6}]
    assert sql.query('SELECT sum(id) AS s FROM "cancer_pd"').rows() == [{"s": 6}]
    assert [d.name for d in ds.list()] == ["cancer_pd"]


@pytest.mark.xfail(reason='lake/sql.py _REF must allow "_" ([a-z0-9][a-z0-9_-]{0,62}) for "cancer_pd@1"; owned by the SQL sandbox work', strict=False)
def test_a_fixed_version_of_an_underscore_name(local_sql: SqlService) -> None:
    DatasetService(local_sql.ws, local_sql.ctx).ingest("cancer_pd", pd.DataFrame({"id": [1, 2]}))
    assert local_sql.query('SELECT count(*) AS n FROM "cancer_pd@1"').rows() == [{"n": 2}]
