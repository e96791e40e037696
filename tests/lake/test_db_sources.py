"""Database sources keep every column's type: a nullable integer stays an integer, on
PostgreSQL (ADBC, and the cursor path without it) and MariaDB (PyMySQL)."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest

from kiln.core.errors import InvalidArgument
from kiln.lake import DatasetService, IngestOptions
from kiln.lake import _dbsource
from kiln.lake._dbsource import database_reader

MYSQL = os.environ.get("KILN_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
ROWS = [
    (1, 5_000_000_000, "12.50", True, "2024-02-29", "2024-02-29 13:14:15", "a"),
    (None, None, None, None, None, None, None),
    (2001, -1, "-0.25", False, "1999-12-31", "1999-12-31 23:59:59", "b"),
]
CREATE = "CREATE TABLE {t} (i integer, b bigint, n numeric(12,2), f boolean, d date, ts timestamp, t text)"
CREATE_MY = "CREATE TABLE {t} (i int, b bigint, n decimal(12,2), f boolean, d date, ts datetime, t text)"


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[tuple[str, str]]:
    import psycopg

    table = f"types_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(CREATE.format(t=table))
        conn.cursor().executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS)
    yield pg_url, table


@pytest.fixture
def my_table() -> Iterator[tuple[str, str]]:
    import pymysql

    table = f"types_{uuid.uuid4().hex[:8]}"
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test", autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        pytest.fail(f"MariaDB is not reachable at 127.0.0.1:3306: {exc} (.ci/run starts it)")
    with conn.cursor() as cur:
        cur.execute(CREATE_MY.format(t=table))
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS)
    try:
        yield MYSQL, table
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")
        conn.close()


def _expect(int_type: pa.DataType, bool_type: pa.DataType) -> pa.Schema:
    return pa.schema([("i", int_type), ("b", pa.int64()), ("n", pa.decimal128(12 if int_type == pa.int32() else 38, 2)), ("f", bool_type),
                      ("d", pa.date32()), ("ts", pa.timestamp("us")), ("t", pa.string())])


def _check_values(table: pa.Table) -> None:
    rows = table.to_pylist()
    assert [r["i"] for r in rows] == [1, None, 2001] and [r["b"] for r in rows] == [5_000_000_000, None, -1]
    assert [r["n"] for r in rows] == [decimal.Decimal("12.50"), None, decimal.Decimal("-0.25")]
    assert rows[0]["d"] == dt.date(2024, 2, 29) and rows[0]["ts"] == dt.datetime(2024, 2, 29, 13, 14, 15) and rows[1]["t"] is None


@pytest.mark.parametrize("path", ["adbc", "cursor"])
def test_postgres_types_are_kept(pg_table: tuple[str, str], path: str) -> None:
    url, table = pg_table
    read = database_reader if path == "adbc" else _dbsource._cursor_reader  # the cursor path: PostgreSQL without ADBC
    got = read(url, f"SELECT * FROM {table}").read_all()
    assert got.schema == (_expect(pa.int32(), pa.bool_()) if path == "adbc" else _expect(pa.int64(), pa.bool_()))
    _check_values(_reorder(got))


def test_mariadb_types_are_kept(my_table: tuple[str, str]) -> None:
    url, table = my_table
    got = database_reader(url, f"SELECT * FROM {table}").read_all()
    assert got.schema == _expect(pa.int64(), pa.int64())  # BOOLEAN is TINYINT(1) in MariaDB
    _check_values(_reorder(got))
    assert _reorder(got).column("f").to_pylist() == [1, None, 0]


def _reorder(table: pa.Table) -> pa.Table:
    """Rows as ROWS orders them: 1, NULL, 2001."""
    rows = table.to_pylist()
    by_i = {r["i"]: r for r in rows}
    return pa.Table.from_pylist([by_i[1], by_i[None], by_i[2001]], schema=table.schema)


def test_ingest_from_postgres_keeps_a_nullable_integer(pg_table: tuple[str, str], ws, ctx) -> None:
    url, table = pg_table
    svc = DatasetService(ws, ctx)
    version = svc.ingest("frompg", url, options=IngestOptions(query=f"SELECT i, n FROM {table}"))
    types = {c.name: c.type for c in version.columns}
    assert types["i"] == "int32" and types["n"].startswith("decimal128(12, 2)")
    assert sorted(svc.read_table("frompg").column("i").to_pylist(), key=lambda v: (v is None, v)) == [1, 2001, None]


def test_a_column_that_changes_type_part_way_names_itself(tmp_path) -> None:
    import sqlite3

    db = tmp_path / "mixed.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100_000)] + [("text",)])
    with pytest.raises(InvalidArgument, match=r"column 'x' changes type after row 100,000 \(first read as int64\).*CAST it"):
        database_reader(f"sqlite:///{db}", "SELECT x FROM t").read_all()


@pytest.mark.parametrize(("url", "query", "needle"), [
    ("postgresql://postgres@127.0.0.1:5432/test", "SELECT * FROM no_such_table_kiln", "database query failed"),
    ("postgresql://postgres@127.0.0.1:1/test", "SELECT 1", "cannot connect to the database"),
    (MYSQL, "SELECT * FROM no_such_table_kiln", "database query failed"),
    ("mysql+nosuchdriver://x@127.0.0.1/test", "SELECT 1", "cannot use database URL"),
])
def test_bad_database_sources(url: str, query: str, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        database_reader(url, query).read_all()
