"""Schemas for flushing: declared, taken from the dataset, or inferred; and the fit check.

A record fits when every field is a column of the schema and every value has
the column's type (or is null). Records that do not fit go to the dead-letter
dataset with the reason, so nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from kiln.core.errors import InvalidArgument

__all__ = ["TYPES", "Fitter", "Misfit", "check_columns", "declared_schema", "infer_schema"]

_JSON_META = {b"kiln:type": b"json"}

TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "json": pa.string(),
}
_ALIASES = {
    "str": "string", "varchar": "string", "text": "string", "int": "int64", "integer": "int64",
    "bigint": "int64", "long": "int64", "float": "double", "float64": "double", "number": "double",
    "boolean": "bool", "datetime": "timestamp",
}
_INVALID = "_kiln_invalid"


class Misfit(Exception):
    """A record does not fit the schema; the message is the reason."""


def check_columns(columns: dict[str, str]) -> dict[str, str]:
    """Validate and normalise a declared schema ``{column: type}``."""
    if not isinstance(columns, dict) or not columns:
        raise InvalidArgument("a stream schema needs at least one column: give COLUMN=TYPE pairs")
    if len(columns) > 1000:
        raise InvalidArgument("a stream schema may have at most 1000 columns")
    out: dict[str, str] = {}
    for col, typ in columns.items():
        if not isinstance(col, str) or not col or len(col) > 128 or not col.isprintable():
            raise InvalidArgument(f"invalid column name {col!r}: use 1-128 printable characters")
        key = str(typ).strip().lower()
        key = _ALIASES.get(key, key)
        if key not in TYPES:
            raise InvalidArgument(f"unknown type {typ!r} for column {col!r}: use one of {', '.join(TYPES)}")
        out[col] = key
    return out


def declared_schema(columns: dict[str, str]) -> pa.Schema:
    return pa.schema([pa.field(c, TYPES[t], metadata=_JSON_META if t == "json" else None) for c, t in columns.items()])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "json"


def infer_schema(records: list[dict[str, Any]]) -> pa.Schema:
    """The most common type of each field (ints and floats together make double)."""
    kinds: dict[str, Counter[str]] = {}
    for rec in records:
        if _INVALID in rec:
            continue
        for key, value in rec.items():
            counter = kinds.setdefault(key, Counter())
            if value is not None:
                counter[_kind(value)] += 1
    columns = {}
    for key, counter in kinds.items():
        if not counter:
            columns[key] = "string"
        elif set(counter) <= {"int64", "double"} and "double" in counter:
            columns[key] = "double"
        else:
            columns[key] = counter.most_common(1)[0][0]
    return declared_schema(columns) if columns else pa.schema([])


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _converter(field: pa.Field) -> Callable[[Any], Any]:
    t = field.type
    name = field.name
    if field.metadata and field.metadata.get(b"kiln:type") == b"json":
        return lambda v: orjson.dumps(v).decode()

    def bad(v: Any, want: str) -> Misfit:
        return Misfit(f"field {name!r}: expected {want}, got {_type_name(v)} {orjson.dumps(v).decode()[:80]}")

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        def conv(v: Any) -> Any:
            if not isinstance(v, str):
                raise bad(v, "a string")
            return v
        return conv
    if pa.types.is_boolean(t):
        def conv_b(v: Any) -> Any:
            if not isinstance(v, bool):
                raise bad(v, "a boolean")
            return v
        return conv_b
    if pa.types.is_integer(t):
        bits = t.bit_width
        lo, hi = (0, 2**bits - 1) if pa.types.is_unsigned_integer(t) else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

        def conv_i(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad(v, f"an integer ({t})")
            if not lo <= v <= hi:
                raise bad(v, f"an integer in [{lo}, {hi}]")
            return v
        return conv_i
    if pa.types.is_floating(t):
        def conv_f(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise bad(v, "a number")
            return float(v)
        return conv_f
    if pa.types.is_timestamp(t):
        aware = t.tz is not None

        def conv_t(v: Any) -> Any:
            if isinstance(v, bool):
                raise bad(v, "an ISO-8601 time or epoch seconds")
            try:
                if isinstance(v, int | float):
                    value = dt.datetime.fromtimestamp(v, tz=dt.UTC)
                elif isinstance(v, str):
                    value = dt.datetime.fromisoformat(v)
                else:
                    raise ValueError
            except (ValueError, OverflowError, OSError):
                raise bad(v, "an ISO-8601 time or epoch seconds") from None
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            value = value.astimezone(dt.UTC)
            return value if aware else value.replace(tzinfo=None)
        return conv_t
    if pa.types.is_date(t):
        def conv_d(v: Any) -> Any:
            try:
                return dt.date.fromisoformat(v) if isinstance(v, str) else _raise()
            except ValueError:
                raise bad(v, "an ISO-8601 date (YYYY-MM-DD)") from None
        return conv_d

    def conv_any(v: Any) -> Any:
        try:
            pa.array([v], type=t)
        except (pa.ArrowException, TypeError, ValueError):
            raise bad(v, str(t)) from None
        return v
    return conv_any


def _raise() -> Any:
    raise ValueError


class Fitter:
    """Checks records against one schema and builds Arrow tables of those that fit."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.names = list(schema.names)
        self._known = set(self.names)
        self._convs = [_converter(f) for f in schema]

    def fit(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The row's values in schema order; raises :class:`Misfit` with the reason."""
        if _INVALID in record:
            raise Misfit(str(record[_INVALID]))
        extra = [k for k in record if k not in self._known]
        if extra:
            raise Misfit(f"fields {sorted(extra)[:10]} are not in the schema (columns: {', '.join(self.names)[:300]})")
        return tuple(None if (v := record.get(n)) is None else conv(v) for n, conv in zip(self.names, self._convs, strict=True))

    def table(self, rows: list[tuple[Any, ...]]) -> pa.Table:
        if not rows:
            return self.schema.empty_table()
        cols = list(zip(*rows, strict=True))
        return pa.Table.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(cols, self.schema, strict=True)], schema=self.schema)


def invalid_record(reason: str, raw: bytes) -> dict[str, Any]:
    """What a source message that is not a JSON object becomes: kept, and dead-lettered at flush."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        text = "base64:" + base64.b64encode(raw).decode()
    return {_INVALID: reason, "_kiln_raw": text[:100_000]}
