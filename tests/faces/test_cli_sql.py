"""`kiln sql`: a table shows the first rows at once; the file formats write every row."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

ROWS = 70_000  # more than one 65,536-row batch


@pytest.fixture
def big(cli: Any, tmp_path: Path) -> Any:
    src = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": pa.array(range(ROWS), pa.int64()), "name": [f"n{i}" for i in range(ROWS)]}), src)
    assert cli("datasets", "ingest", "big", str(src)).code == 0
    return cli


def _asked_rows(cli: Any) -> int:
    """How many rows the service returned for the last query (from `kiln sql history`)."""
    return json.loads(cli("sql", "history", "--format", "json", "--limit", "1").out)[0]["rows"]


def test_table_shows_50_rows_asks_for_no_more_and_says_how_to_get_all(big: Any) -> None:
    result = big("sql", "SELECT * FROM big ORDER BY id")
    assert result.code == 0, result.err
    assert " n49 " in result.out and " n50 " not in result.out
    out = " ".join(result.out.split())
    assert "first 50 rows shown" in out and "--format csv > out.csv" in out and "--limit N" in out
    assert _asked_rows(big) == 50


@pytest.mark.parametrize(("limit", "shown", "note"), [("3", 3, "first 3 rows shown"), ("5000", 1000, "a table shows at most 1,000"), ("0", 0, "first 0 rows shown")])
def test_table_limit_is_bounded(big: Any, limit: str, shown: int, note: str) -> None:
    result = big("sql", "SELECT * FROM big", "--limit", limit)
    assert result.code == 0 and note in " ".join(result.out.split())
    assert _asked_rows(big) == shown


def test_a_small_result_says_its_size_and_nothing_more(big: Any) -> None:
    result = big("sql", "SELECT id FROM big WHERE id < 3")
    assert result.code == 0 and "3 rows in" in result.out and "more" not in result.out


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet", "arrow"])
def test_formats_write_every_row_to_stdout_and_to_a_file(big: Any, tmp_path: Path, fmt: str) -> None:
    query = "SELECT * FROM big ORDER BY id"
    out = tmp_path / f"out.{fmt}"
    result = big("sql", query, "--format", fmt, "-o", str(out))
    assert result.code == 0 and f"wrote {ROWS:,} rows" in result.out
    table = _read(out.read_bytes(), fmt)
    assert table.num_rows == ROWS and table.column("id").to_pylist()[-2:] == [ROWS - 2, ROWS - 1]
    assert table.column("name").to_pylist()[:2] == ["n0", "n1"]
    if fmt in ("csv", "json", "jsonl"):  # text on stdout is the same bytes
        assert big("sql", query, "--format", fmt).out.encode() == out.read_bytes()


def test_a_capped_export_says_so_on_stderr(big: Any) -> None:
    result = big("sql", "SELECT * FROM big", "--format", "csv", "--limit", "10")
    assert result.code == 0 and len(result.out.splitlines()) == 11
    assert "stopped at 10 rows" in result.err


def test_empty_results(big: Any) -> None:
    assert json.loads(big("sql", "SELECT * FROM big WHERE id < 0", "--format", "json").out) == []
    assert big("sql", "SELECT * FROM big WHERE id < 0", "--format", "jsonl").out == ""
    assert big("sql", "SELECT * FROM big WHERE id < 0", "--format", "csv").out.strip() == '"id","name"'


@pytest.mark.parametrize(("args", "needle"), [
    (["--format", "xml"], "unsupported format 'xml'"),
    (["--limit", "-1"], "--limit must be 0 or more"),
])
def test_bad_options(big: Any, args: list[str], needle: str) -> None:
    result = big("sql", "SELECT 1", *args)
    assert result.code != 0 and needle in result.err and "Traceback" not in result.err


def test_a_column_csv_cannot_hold_fails_before_writing(big: Any, tmp_path: Path) -> None:
    out = tmp_path / "l.csv"
    result = big("sql", "SELECT [1, 2] AS l", "--format", "csv", "-o", str(out))
    assert result.code != 0 and "cannot write this result as csv" in result.err
    assert not out.exists() and result.out == ""


def _read(data: bytes, fmt: str) -> pa.Table:
    if fmt == "csv":
        return pacsv.read_csv(io.BytesIO(data))
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    if fmt == "arrow":
        return pa.ipc.open_stream(data).read_all()
    rows = json.loads(data) if fmt == "json" else [json.loads(line) for line in data.splitlines()]
    return pa.Table.from_pylist(rows)
