"""Outliers: clip to bounds or learned quantiles, remove by IQR or (robust) std."""

from __future__ import annotations

from typing import Any

import polars as pl

from ._base import (
    Env,
    OpSpec,
    column_stats,
    columns_param,
    floats,
    keep_schema,
    medians,
    quantiles,
    register,
)
from ._errors import RecipeError
from ._kernel_helpers import as_float
from ._params import Param
from ._schema import SchemaState


def op_clip(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    lower, upper = p["lower"], p["upper"]
    exprs = []
    for name in p["columns"]:
        col = pl.col(name)
        if df.schema[name].is_integer() and (isinstance(lower, float) or isinstance(upper, float)):
            col = col.cast(pl.Float64)
        exprs.append(col.clip(lower, upper))
    return df.with_columns(exprs)


def _schema_clip(sc: SchemaState, p: dict, env: Env) -> None:
    lower, upper = p["lower"], p["upper"]
    if lower is None and upper is None:
        raise RecipeError('give "lower", "upper" or both', details={"param": "lower"})
    if lower is not None and upper is not None and lower > upper:
        raise RecipeError(
            f'"lower" ({lower}) is above "upper" ({upper})', details={"param": "lower"}
        )
    if isinstance(lower, float) or isinstance(upper, float):
        for name in p["columns"]:
            dtype = sc.columns.get(name)
            if dtype is not None and dtype.is_integer():
                sc.add(name, pl.Float64())


def _floats_in_place(sc: SchemaState, p: dict, env: Env) -> None:
    for name in p["columns"]:
        dtype = sc.columns.get(name)
        if dtype is not None and not dtype.is_float():
            sc.add(name, pl.Float64())


def op_clip_quantiles(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(
        as_float(pl.col(c), df.schema[c]).clip(lo, hi)
        for c, (lo, hi) in zip(p["columns"], s["bounds"])
    )


def _fit_clip_quantiles(df: pl.DataFrame, p: dict) -> Any:
    return {"bounds": quantiles(df, p["columns"], [p["lower"], p["upper"]])}


def _schema_quantile_pair(sc: SchemaState, p: dict, env: Env) -> None:
    if p["lower"] >= p["upper"]:
        raise RecipeError(
            f'"lower" ({p["lower"]}) must be below "upper" ({p["upper"]})',
            details={"param": "lower"},
        )
    _floats_in_place(sc, p, env)


def _within(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    keep = []
    for name, (lo, hi) in zip(p["columns"], s["bounds"]):
        col = pl.col(name)
        inside = pl.lit(True)
        if lo is not None:
            inside = inside & (col >= lo)
        if hi is not None:
            inside = inside & (col <= hi)
        keep.append(inside.fill_null(True))
    return df.filter(pl.all_horizontal(keep))


def op_remove_outliers_iqr(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return _within(df, p, s)


def _fit_iqr(df: pl.DataFrame, p: dict) -> Any:
    bounds = []
    for q1, q3 in quantiles(df, p["columns"], [0.25, 0.75]):
        if q1 is None or q3 is None:
            bounds.append([None, None])
            continue
        spread = p["factor"] * (q3 - q1)
        bounds.append([q1 - spread, q3 + spread])
    return {"bounds": bounds}


def op_remove_outliers_std(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return _within(df, p, s)


def _fit_std(df: pl.DataFrame, p: dict) -> Any:
    columns = p["columns"]
    if p["robust"]:
        centers = medians(df, columns)
        deviations = df.select(
            (pl.col(c).cast(pl.Float64) - m).abs()
            for c, m in zip(columns, centers)
            if m is not None
        )
        mads = iter(medians(deviations, deviations.columns))
        spreads = [None if m is None else 1.4826 * next(mads) for m in centers]
    else:
        got = column_stats(df, columns, m=lambda c: c.mean(), s=lambda c: c.std(ddof=0))
        centers, spreads = floats(got["m"]), floats(got["s"])
    bounds = []
    for center, spread in zip(centers, spreads):
        if center is None or not spread:  # constant column: nothing is an outlier
            bounds.append([None, None])
            continue
        bounds.append([center - p["factor"] * spread, center + p["factor"] * spread])
    return {"bounds": bounds}


_NUM = columns_param("numeric")

register(
    OpSpec(
        "clip",
        "outliers",
        "Clip values to fixed bounds.",
        (_NUM, Param("lower", "number"), Param("upper", "number")),
        op_clip,
        _schema_clip,
        rowwise=True,
    )
)
register(
    OpSpec(
        "clip_quantiles",
        "outliers",
        "Clip values to quantiles learned at fit.",
        (
            _NUM,
            Param("lower", "number", default=0.01, minimum=0, maximum=1),
            Param("upper", "number", default=0.99, minimum=0, maximum=1),
        ),
        op_clip_quantiles,
        _schema_quantile_pair,
        fit=_fit_clip_quantiles,
        rowwise=True,
    )
)
register(
    OpSpec(
        "remove_outliers_iqr",
        "outliers",
        "Drop rows outside [Q1 - factor*IQR, Q3 + factor*IQR] (learned at fit) in any column.",
        (_NUM, Param("factor", "number", default=1.5, minimum=0)),
        op_remove_outliers_iqr,
        keep_schema,
        fit=_fit_iqr,
    )
)
register(
    OpSpec(
        "remove_outliers_std",
        "outliers",
        "Drop rows more than factor standard deviations from the center (robust: median and "
        "1.4826*MAD) in any column.",
        (
            _NUM,
            Param("factor", "number", default=3.0, minimum=0),
            Param("robust", "bool", default=True),
        ),
        op_remove_outliers_std,
        keep_schema,
        fit=_fit_std,
    )
)
