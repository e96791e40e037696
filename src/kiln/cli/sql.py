"""kiln sql: read-only SQL over every dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import typer

from kiln.cli._common import console, emit, err_console, get_client
from kiln.core.errors import InvalidArgument

app = typer.Typer()

_FORMATS = ("table", "csv", "json", "jsonl", "parquet", "arrow")
# A table on screen is for looking, not for moving data: it shows this many rows unless
# --limit asks for more (up to _TABLE_MAX), and says how to get all of them.
_TABLE_ROWS = 50
_TABLE_MAX = 1000
_BATCH = 65_536


@app.command("sql")
def sql(
    query: str = typer.Argument(..., help='One SELECT; datasets are tables ("sales", "sales@3"). `kiln sql history` lists past queries.'),
    format: str = typer.Option("table", "--format", "-f", help="table, csv, json, jsonl, parquet or arrow."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of the terminal."),
    limit: int = typer.Option(None, help=f"At most this many rows (default: {_TABLE_ROWS} in a table; otherwise, and at most, the server's KILN_SQL_MAX_ROWS)."),
    timeout: float = typer.Option(None, help="Seconds before the query is stopped (default and maximum: the server's KILN_SQL_TIMEOUT_S)."),
) -> None:
    """Run SQL over the lake: a table shows the first rows; --format csv|json|jsonl|parquet|arrow writes them all."""
    client = get_client()
    if query.strip().lower() == "history":
        emit(client.sql_history(limit=limit or 50), json=format == "json", columns=["id", "time", "actor", "status", "rows", "elapsed_ms", "query"])
        return
    if format not in _FORMATS:
        raise InvalidArgument(f"unsupported format {format!r}: use {', '.join(_FORMATS)}")
    if limit is not None and limit < 0:
        raise InvalidArgument("--limit must be 0 or more")
    if format == "table" and output is None:
        _show(client, query, limit=limit, timeout=timeout)
        return
    fmt = "csv" if format == "table" else format
    if output is None and fmt in ("parquet", "arrow") and sys.stdout.isatty():
        raise InvalidArgument(f"{fmt} is binary: pass --output FILE or redirect stdout")
    result = client.sql(query, limit=limit, timeout_s=timeout)
    table = result.table
    _check_writable(table, fmt)
    if output is not None:
        with output.open("wb") as sink:
            _write(table, fmt, sink)
        console.print(f"wrote {table.num_rows:,} rows to {output}", markup=False)
    else:
        sys.stdout.flush()
        _write(table, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    if result.truncated:
        err_console.print(f"stopped at {table.num_rows:,} rows: the query has more; raise --limit (at most KILN_SQL_MAX_ROWS)", markup=False)


def _show(client: Any, query: str, *, limit: int | None, timeout: float | None) -> None:
    """Print the first rows as a table, instantly whatever the result's size.

    The service is asked for only the rows shown; it reads one batch past them, so
    ``truncated`` says whether more exist without computing (or counting) the rest.
    """
    shown = min(_TABLE_ROWS if limit is None else limit, _TABLE_MAX)
    result = client.sql(query, limit=shown, timeout_s=timeout)
    table = result.table
    emit(table.to_pylist(), json=False, columns=table.schema.names)
    rows = f"{table.num_rows:,} row{'s' if table.num_rows != 1 else ''}"
    if result.truncated:
        more = f"--limit N shows up to {_TABLE_MAX:,}" if shown < _TABLE_MAX else f"a table shows at most {_TABLE_MAX:,}"
        console.print(f"first {rows} shown in {result.elapsed_ms:.0f} ms; the result has more ({more}; "
                      "all of them: --format csv > out.csv, or --format parquet -o out.parquet)", markup=False, style="dim", soft_wrap=True)
    else:
        console.print(f"{rows} in {result.elapsed_ms:.0f} ms", markup=False, style="dim", soft_wrap=True)


def _check_writable(table: Any, fmt: str) -> None:
    """Fail before writing anything when the format cannot hold a column (lists in CSV...)."""
    from kiln.lake._wire import encode_table  # lazy: pyarrow

    if fmt != "jsonl":
        encode_table(table.slice(0, 1), fmt)


def _write(table: Any, fmt: str, sink: IO[bytes]) -> None:
    """Stream ``table`` to ``sink`` batch by batch: no copy of the whole result in memory."""
    import orjson
    import pyarrow as pa

    batches = table.to_batches(max_chunksize=_BATCH)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with pacsv.CSVWriter(sink, table.schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(sink, table.schema) as writer:
            writer.write_table(table, row_group_size=1 << 20)
    elif fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
    elif fmt == "jsonl":
        for batch in batches:
            sink.write(b"".join(orjson.dumps(row, default=str) + b"\n" for row in batch.to_pylist()))
    else:  # json: an array of row objects, one per line
        sink.write(b"[")
        first = True
        for batch in batches:
            rows = b",\n".join(orjson.dumps(row, default=str) for row in batch.to_pylist())
            if rows:
                sink.write((b"\n" if first else b",\n") + rows)
                first = False
        sink.write(b"]\n" if first else b"\n]\n")
