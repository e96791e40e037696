"""What an op is, and the registry the engine and exporter read.

An op is data plus three plain functions:

* ``schema(sc, p, env)`` propagates the schema before any data is read,
  mutating ``sc`` (a copy) and raising ``RecipeError`` for bad params;
* ``fit(df, p) -> state`` (fitted ops only) learns JSON-serialisable state;
* ``kernel(df, p, s) -> df`` (``kernel(df, p, s, other)`` for ops that read
  another dataset) applies the step. Kernels are copied verbatim into
  exported scripts, so they use only ``pl``, ``np``, ``math`` and the helpers
  of ``_kernel_helpers``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ._errors import RecipeError
from ._params import Param
from ._schema import SchemaState

Kernel = Callable[..., pl.DataFrame]


@dataclass
class Env:
    """What a schema function may consult besides the schema and params.

    Attributes:
        state: the step's fitted state, or None before fit.
        dataset_schema: returns the schema of another dataset by name.
    """

    state: Any = None
    dataset_schema: Callable[[str], SchemaState] | None = None

    def other(self, name: str) -> SchemaState:
        if self.dataset_schema is None:
            raise RecipeError(
                f'the schema of dataset "{name}" is unknown: pass dataset_schemas to validate',
                details={"dataset": name},
            )
        return self.dataset_schema(name)


@dataclass(frozen=True)
class OpSpec:
    """One recipe operation.

    Attributes:
        name: the op name used in recipes.
        family: a grouping for docs and UIs (``columns``, ``missing``, ...).
        doc: one line saying what the op does.
        params: declared params.
        kernel: the polars kernel.
        schema: the schema-propagation function.
        fit: learns state from data, for fitted ops.
        rowwise: output rows map 1:1 to input rows, so ``when`` is allowed.
        dataset: the op reads another dataset (join, union).
    """

    name: str
    family: str
    doc: str
    params: tuple[Param, ...]
    kernel: Kernel
    schema: Callable[[SchemaState, dict[str, Any], Env], None]
    fit: Callable[[pl.DataFrame, dict[str, Any]], Any] | None = None
    rowwise: bool = False
    dataset: bool = False


REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add an op to the registry (built-in ops register themselves on import)."""
    if spec.name in REGISTRY:
        raise ValueError(f"op {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


# -- params and schema functions shared by many ops ------------------------------------------


def columns_param(kind: str = "any", doc: str = "columns to transform") -> Param:
    return Param("columns", "columns", required=True, col_kind=kind, doc=doc)


def keep_schema(sc: SchemaState, p: dict[str, Any], env: Env) -> None:
    """The op changes values, not columns or types."""


def columns_become(dtype: pl.DataType) -> Callable[[SchemaState, dict[str, Any], Env], None]:
    """A schema function for ops that turn ``p["columns"]`` into ``dtype`` in place."""

    def schema(sc: SchemaState, p: dict[str, Any], env: Env) -> None:
        for name in p["columns"]:
            sc.add(name, dtype)

    return schema


def check_new_name(
    sc: SchemaState, name: str, *, param: str = "output", allow: tuple[str, ...] = ()
) -> None:
    """A column the step creates must not silently overwrite another."""
    if name in sc.columns and name not in allow:
        raise RecipeError(
            f'param "{param}": column "{name}" already exists; pick another name or drop it first',
            details={"param": param, "column": name},
        )


_NOT_FOUND = re.compile(r'unable to find column "([^"]+)"')


def sql_dtype(sc: SchemaState, expr: str, param: str) -> pl.DataType | None:
    """The dtype of a SQL expression over ``sc`` (None when it depends on unknown columns).

    Raises:
        RecipeError: unknown column or invalid expression.
    """
    label = '"when"' if param == "when" else f'param "{param}"'
    known = {k: v for k, v in sc.columns.items() if v is not None}
    try:
        out = pl.LazyFrame(schema=known).select(pl.sql_expr(expr)).collect_schema()
    except pl.exceptions.ColumnNotFoundError as exc:
        found = _NOT_FOUND.search(str(exc))
        name = found.group(1) if found else "?"
        if name in sc.columns or sc.may_have(name):
            return None
        raise RecipeError(
            f"{label}: {sc.not_found(name)}", details={"param": param, "column": name}
        ) from None
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecipeError(
            f"{label}: invalid expression {expr!r}: {first}", details={"param": param}
        ) from None
    if len(out) != 1:
        raise RecipeError(
            f"{label}: expression {expr!r} must give one value per row", details={"param": param}
        )
    return next(iter(out.values()))


def to_json(value: Any) -> Any:
    """Plain JSON-able Python for learned state (numpy scalars, dates, tuples...)."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item"):  # numpy scalar
        return to_json(value.item())
    raise TypeError(f"cannot store {type(value).__name__} in recipe state")


def floats(values: list[Any]) -> list[float | None]:
    """Statistics as plain floats (None when there was no data)."""
    out: list[float | None] = []
    for v in values:
        out.append(None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
    return out


def column_stats(
    df: pl.DataFrame, columns: list[str], numeric: bool = True, **aggs: Callable[[pl.Expr], pl.Expr]
) -> dict[str, list[Any]]:
    """Aggregate every column in one parallel pass: ``{agg name: [value per column]}``.

    NaN counts as missing; with ``numeric`` the columns are read as Float64.
    """
    exprs = []
    for key, agg in aggs.items():
        for i, name in enumerate(columns):
            col = pl.col(name)
            dtype = df.schema[name]
            if numeric and not dtype.is_float():
                col = col.cast(pl.Float64)
            if dtype.is_float() or numeric:
                col = col.fill_nan(None)
            exprs.append(agg(col).alias(f"{key}\x1f{i}"))
    row = df.select(exprs).row(0) if exprs else ()
    out: dict[str, list[Any]] = {key: [] for key in aggs}
    for expr, value in zip(exprs, row):
        out[expr.meta.output_name().split("\x1f")[0]].append(value)
    return out


def finite_values(df: pl.DataFrame, name: str) -> np.ndarray:
    """The non-missing values of a column as float64 (no copy when there is nothing to drop)."""
    col = df.get_column(name)
    if col.dtype != pl.Float64:
        col = col.cast(pl.Float64)
    if col.null_count():
        col = col.drop_nulls()
    x = col.to_numpy()
    nan = np.isnan(x)
    return x[~nan] if nan.any() else x


def quantiles(df: pl.DataFrame, columns: list[str], qs: list[float]) -> list[list[float | None]]:
    """Per column, the linearly interpolated quantiles ``qs`` (numpy's default, as pandas and
    scikit-learn compute them); NaN counts as missing. One partial sort per column."""
    out: list[list[float | None]] = []
    for name in columns:
        x = finite_values(df, name)
        out.append([float(v) for v in np.quantile(x, qs)] if x.size else [None] * len(qs))
    return out


def medians(df: pl.DataFrame, columns: list[str]) -> list[float | None]:
    """Per column, the median (NaN counts as missing)."""
    out: list[float | None] = []
    for name in columns:
        x = finite_values(df, name)
        out.append(float(np.median(x)) if x.size else None)
    return out
