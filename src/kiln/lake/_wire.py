"""Arrow tables on the wire: what REST sends and the SDK reads back."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import orjson

from kiln.core.errors import InvalidArgument
from kiln.core._lazy import lazy

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
else:
    pa = lazy("pyarrow")
    pacsv = lazy("pyarrow.csv")
    pq = lazy("pyarrow.parquet")

__all__ = ["MEDIA_TYPES", "encode_table", "decode_table", "rows_json"]

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
    "jsonl": "application/x-ndjson",
}


def rows_json(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def encode_table(table: pa.Table, fmt: str, **extra: Any) -> bytes:
    """Serialise ``table`` as json (``{"columns", "rows", ...extra}``), csv, parquet, arrow or jsonl.

    Raises:
        InvalidArgument: the format cannot hold a column's type (lists in CSV, intervals
            in Parquet, dates past Python's range in JSON...).
    """
    try:
        return _encode(table, fmt, **extra)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidArgument(
            f"cannot write this result as {fmt}: {first}; cast the column (e.g. CAST(x AS VARCHAR)) or ask for arrow"
        ) from None


def _encode(table: pa.Table, fmt: str, **extra: Any) -> bytes:
    if fmt == "json":
        payload = {"columns": table.schema.names, "types": [str(f.type) for f in table.schema], "rows": table.to_pylist(), **extra}
        return orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, sink)
    elif fmt == "parquet":
        pq.write_table(table, sink)
    elif fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    elif fmt == "jsonl":
        return b"".join(orjson.dumps(r, default=str) + b"\n" for r in table.to_pylist())
    else:
        raise InvalidArgument(f"unsupported format {fmt!r}: use {', '.join(MEDIA_TYPES)}")
    return sink.getvalue()


def decode_table(data: bytes) -> pa.Table:
    """Read an Arrow IPC stream back into a table."""
    with pa.ipc.open_stream(io.BytesIO(data)) as reader:
        return reader.read_all()
