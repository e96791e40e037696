"""Missing values and duplicates.

Null, and NaN in float columns, both count as missing.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ._base import (
    Env,
    OpSpec,
    check_new_name,
    column_stats,
    columns_param,
    keep_schema,
    medians,
    register,
    to_json,
)
from ._errors import RecipeError
from ._kernel_helpers import lit_as, missing
from ._params import Param
from ._schema import SchemaState, dtype_name, matches_kind

FILL_STRATEGIES = ("constant", "mean", "median", "mode", "min", "max")


def op_drop_missing(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    names = p["columns"] or df.columns
    flags = [missing(c, df.schema[c]) for c in names]
    if p["how"] == "any":
        return df.filter(~pl.any_horizontal(flags))
    return df.filter(~pl.all_horizontal(flags))


def op_fill_missing(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    exprs = []
    for i, name in enumerate(p["columns"]):
        dtype = df.schema[name]
        value = p["value"] if s is None else s["values"][i]
        col = pl.col(name)
        if dtype.is_float():
            col = col.fill_nan(None)
        if dtype.is_integer() and (p["strategy"] in ("mean", "median") or isinstance(value, float)):
            col, dtype = col.cast(pl.Float64), pl.Float64()
        if value is not None:
            col = col.fill_null(lit_as(value, dtype))
        exprs.append(col.alias(name))
    return df.with_columns(exprs)


def _fit_fill(df: pl.DataFrame, p: dict) -> Any:
    strategy, columns = p["strategy"], p["columns"]
    if strategy == "constant":
        return None
    if strategy == "median":
        return {"values": medians(df, columns)}
    if strategy != "mode":
        got = column_stats(
            df, columns, numeric=strategy == "mean", v=lambda c: getattr(c, strategy)()
        )
        return {"values": to_json(got["v"])}
    values = []
    for name in columns:
        col = df.get_column(name)
        if col.dtype.is_float():
            col = col.fill_nan(None)
        if isinstance(col.dtype, (pl.Categorical, pl.Enum)):
            col = col.cast(pl.String)
        col = col.drop_nulls()
        values.append(to_json(col.mode().sort()[0]) if col.len() else None)
    return {"values": values}


def _schema_fill(sc: SchemaState, p: dict, env: Env) -> None:
    strategy, value = p["strategy"], p["value"]
    if strategy == "constant" and value is None:
        raise RecipeError('strategy "constant" needs param "value"', details={"param": "value"})
    if strategy != "constant" and value is not None:
        raise RecipeError(
            f'param "value" is only used with strategy "constant", not "{strategy}"',
            details={"param": "value"},
        )
    for name in p["columns"]:
        dtype = sc.columns.get(name)
        if dtype is None:
            continue
        if strategy in ("mean", "median"):
            sc.require(name, "numeric")
            if dtype == pl.Boolean:
                raise RecipeError(
                    f'column "{name}" is bool; use strategy "mode" or "constant"',
                    details={"column": name},
                )
            if dtype.is_integer():
                sc.add(name, pl.Float64())
        elif strategy in ("min", "max") and not (
            matches_kind(dtype, "numeric") or matches_kind(dtype, "temporal")
        ):
            raise RecipeError(
                f'column "{name}" is {dtype_name(dtype)}; strategy "{strategy}" '
                "needs a numeric or date column",
                details={"column": name},
            )
        elif strategy == "constant":
            _check_constant(sc, name, dtype, value)


def _check_constant(sc: SchemaState, name: str, dtype: pl.DataType, value: Any) -> None:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype == pl.Boolean:
        ok = isinstance(value, bool)
    elif dtype.is_numeric():
        ok = numeric
        if dtype.is_integer() and isinstance(value, float):
            sc.add(name, pl.Float64())
    elif matches_kind(dtype, "string") or matches_kind(dtype, "temporal"):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise RecipeError(
            f'param "value": {value!r} does not fit column "{name}" ({dtype_name(dtype)})',
            details={"param": "value", "column": name},
        )


def op_forward_fill(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(pl.col(c).forward_fill(limit=p["limit"]) for c in p["columns"])


def op_backward_fill(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(pl.col(c).backward_fill(limit=p["limit"]) for c in p["columns"])


def op_missing_indicator(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(missing(c, df.schema[c]).alias(c + p["suffix"]) for c in p["columns"])


def _schema_indicator(sc: SchemaState, p: dict, env: Env) -> None:
    for name in p["columns"]:
        check_new_name(sc, name + p["suffix"], param="suffix")
        sc.add(name + p["suffix"], pl.Boolean())


def op_drop_duplicates(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.unique(subset=p["columns"], keep=p["keep"], maintain_order=True)


_OPTIONAL_COLUMNS = Param("columns", "columns", doc="columns to consider (default: all)")
_LIMIT = Param("limit", "int", minimum=1, doc="fill at most this many consecutive missing values")

register(
    OpSpec(
        "drop_missing",
        "missing",
        "Drop rows with missing values.",
        (
            _OPTIONAL_COLUMNS,
            Param(
                "how",
                "choice",
                default="any",
                choices=("any", "all"),
                doc="drop when any / all of the columns are missing",
            ),
        ),
        op_drop_missing,
        keep_schema,
    )
)
register(
    OpSpec(
        "fill_missing",
        "missing",
        "Fill missing values with a constant or a learned statistic.",
        (
            columns_param(),
            Param("strategy", "choice", default="constant", choices=FILL_STRATEGIES),
            Param("value", "scalar", doc='the fill value for strategy "constant"'),
        ),
        op_fill_missing,
        _schema_fill,
        fit=_fit_fill,
        rowwise=True,
    )
)
register(
    OpSpec(
        "forward_fill",
        "missing",
        "Fill missing values with the last value above.",
        (columns_param(), _LIMIT),
        op_forward_fill,
        keep_schema,
        rowwise=True,
    )
)
register(
    OpSpec(
        "backward_fill",
        "missing",
        "Fill missing values with the next value below.",
        (columns_param(), _LIMIT),
        op_backward_fill,
        keep_schema,
        rowwise=True,
    )
)
register(
    OpSpec(
        "missing_indicator",
        "missing",
        "Add a boolean column per column: is the value missing?",
        (columns_param(), Param("suffix", "name", default="_missing")),
        op_missing_indicator,
        _schema_indicator,
        rowwise=True,
    )
)
register(
    OpSpec(
        "drop_duplicates",
        "missing",
        "Drop repeated rows, keeping the first (or last) of each.",
        (
            _OPTIONAL_COLUMNS,
            Param("keep", "choice", default="first", choices=("first", "last", "none")),
        ),
        op_drop_duplicates,
        keep_schema,
    )
)
