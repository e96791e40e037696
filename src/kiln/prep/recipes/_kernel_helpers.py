"""Small helpers used by op kernels.

Everything here is copied verbatim into exported scripts, so it may use only
``pl``, ``np``, ``math`` and builtins, and other helpers of this module.
"""

from __future__ import annotations

import math  # noqa: F401  (kept so exported helpers may use it)
from typing import Any

import numpy as np  # noqa: F401
import polars as pl


def pl_dtype(name: str) -> pl.DataType:
    """Turn a Kiln dtype name (``int64``, ``str``, ``datetime[ms, UTC]``...) into a polars type."""
    n = name.strip().lower().replace(" ", "")
    simple = {
        "int8": pl.Int8,
        "int16": pl.Int16,
        "int32": pl.Int32,
        "int64": pl.Int64,
        "uint8": pl.UInt8,
        "uint16": pl.UInt16,
        "uint32": pl.UInt32,
        "uint64": pl.UInt64,
        "int": pl.Int64,
        "integer": pl.Int64,
        "long": pl.Int64,
        "float32": pl.Float32,
        "float64": pl.Float64,
        "float": pl.Float64,
        "double": pl.Float64,
        "bool": pl.Boolean,
        "boolean": pl.Boolean,
        "str": pl.String,
        "string": pl.String,
        "utf8": pl.String,
        "text": pl.String,
        "category": pl.Categorical,
        "categorical": pl.Categorical,
        "date": pl.Date,
        "time": pl.Time,
        "null": pl.Null,
        "datetime": pl.Datetime("us"),
        "timestamp": pl.Datetime("us"),
        "duration": pl.Duration("us"),
    }
    if n in simple:
        dtype = simple[n]
        return dtype() if isinstance(dtype, type) else dtype
    compact = name.replace(" ", "")
    for head in ("datetime64", "datetime", "timestamp", "duration", "timedelta64"):
        if n.startswith(head + "[") and n.endswith("]"):
            unit, _, tz = compact[len(head) + 1 : -1].partition(",")
            if unit.lower() not in ("ns", "us", "ms"):
                break
            if head in ("duration", "timedelta64"):
                return pl.Duration(unit.lower())
            return pl.Datetime(unit.lower(), tz or None)
    if n.startswith("list[") and n.endswith("]"):
        return pl.List(pl_dtype(name.strip()[5:-1]))
    raise ValueError(f"unknown dtype {name!r}")


def lit_as(value: Any, dtype: pl.DataType) -> pl.Expr:
    """A literal of ``dtype``; temporal values travel as ISO strings in recipe state."""
    if value is None:
        return pl.lit(None, dtype=dtype)
    if isinstance(value, str) and dtype.is_temporal():
        if dtype == pl.Date:
            return pl.lit(value).str.to_date("%Y-%m-%d")
        return pl.lit(value).str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return pl.lit(value, dtype=pl.String)
    return pl.lit(value)


def as_plain(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Categorical columns are compared by their string values."""
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return expr.cast(pl.String)
    return expr


def lit_series(values: list[Any], dtype: pl.DataType) -> pl.Series:
    """A series of category values in the (plain) type of a column."""
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return pl.Series(values, dtype=pl.String)
    return pl.Series(values, dtype=dtype, strict=False)


def unseen_error(column: str, values: list[Any]) -> ValueError:
    """The error raised when ``handle_unknown`` is ``"error"`` and new categories appear."""
    shown = ", ".join(repr(v) for v in values[:5])
    more = f" and {len(values) - 5} more" if len(values) > 5 else ""
    return ValueError(
        f"column {column!r} has categories not seen at fit: {shown}{more} "
        f"(set handle_unknown to 'ignore' or 'value' to accept them)"
    )


def unseen(df: pl.DataFrame, column: str, categories: list[Any]) -> list[Any]:
    """Distinct non-null values of ``column`` that are not in ``categories``."""
    dtype = df.schema[column]
    col = as_plain(pl.col(column), dtype)
    known = lit_series(categories, dtype)
    mask = col.is_not_null() & ~col.is_in(known.implode())
    new = df.select(col.filter(mask).unique().sort()).to_series()
    return new.to_list()


def apply_when(df: pl.DataFrame, condition: str, kernel: Any, p: dict, s: Any) -> pl.DataFrame:
    """Run ``kernel`` and keep its result only on rows where ``condition`` (SQL) holds.

    Rows where the condition is false or null keep their old values; columns the
    step adds are null there.
    """
    mask = df.select(pl.sql_expr(condition).fill_null(False)).to_series()
    out = kernel(df, p, s)
    cols = []
    for name in out.columns:
        new = out.get_column(name)
        if name in df.columns:
            cols.append(pl.when(mask).then(new).otherwise(df.get_column(name)).alias(name))
        else:
            cols.append(pl.when(mask).then(new).alias(name))
    return out.with_columns(cols)


def missing(name: str, dtype: pl.DataType) -> pl.Expr:
    """Null, or NaN in a float column: both count as missing."""
    col = pl.col(name)
    return col.is_null() | col.is_nan() if dtype.is_float() else col.is_null()


def as_float(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Float columns keep their width; everything else becomes Float64."""
    return expr if dtype.is_float() else expr.cast(pl.Float64)
