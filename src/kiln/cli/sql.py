"""kiln sql: read-only SQL over every dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kiln.cli._common import console, emit, get_client, print_json
from kiln.core.errors import InvalidArgument

app = typer.Typer()

_FORMATS = ("table", "csv", "json", "jsonl", "parquet", "arrow")


@app.command("sql")
def sql(
    query: str = typer.Argument(..., help='One SELECT; datasets are tables ("sales", "sales@3"). `kiln sql history` lists past queries.'),
    format: str = typer.Option("table", "--format", "-f", help="table, csv, json, jsonl, parquet or arrow."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of the terminal."),
    limit: int = typer.Option(None, help="At most this many rows (default and maximum: the server's KILN_SQL_MAX_ROWS)."),
    timeout: float = typer.Option(None, help="Seconds before the query is stopped (default and maximum: the server's KILN_SQL_TIMEOUT_S)."),
) -> None:
    """Run SQL over the lake; `--format json` prints a JSON array of row objects."""
    client = get_client()
    if query.strip().lower() == "history":
        emit(client.sql_history(limit=limit or 50), json=format == "json", columns=["id", "time", "actor", "status", "rows", "elapsed_ms", "query"])
        return
    if format not in _FORMATS:
        raise InvalidArgument(f"unsupported format {format!r}: use {', '.join(_FORMATS)}")
    from kiln.lake._wire import encode_table  # lazy: the lake pulls in pandas/pyarrow/duckdb

    result = client.sql(query, limit=limit, timeout_s=timeout)
    table = result.table
    if format == "table" and output is None:
        emit(table.to_pylist(), json=False, columns=table.schema.names)
        note = " (truncated: raise --limit)" if result.truncated else ""
        console.print(f"[dim]{table.num_rows} rows in {result.elapsed_ms:.0f} ms{note}[/dim]")
        return
    if format == "json":
        data = None
        if output is None:
            print_json(table.to_pylist())
            return
        import orjson

        data = orjson.dumps(table.to_pylist(), default=str)
    else:
        data = encode_table(table, "csv" if format == "table" else format)
    if output is not None:
        output.write_bytes(data)
        console.print(f"wrote {table.num_rows} rows to {output}", markup=False)
    elif format in ("parquet", "arrow"):
        if sys.stdout.isatty():
            raise InvalidArgument(f"{format} is binary: pass --output FILE")
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data.decode())
