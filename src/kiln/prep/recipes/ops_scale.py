"""Scaling, log, binning and PCA. Scaled columns become Float64 in place."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ._base import (
    Env,
    OpSpec,
    check_new_name,
    column_stats,
    columns_become,
    columns_param,
    floats,
    quantiles,
    register,
)
from ._errors import RecipeError
from ._params import Param
from ._schema import SchemaState


def affine(
    df: pl.DataFrame, columns: list[str], scale: list[Any], offset: list[Any]
) -> pl.DataFrame:
    """x * scale + offset, in Float64, per column."""
    return df.with_columns(
        (pl.col(c).cast(pl.Float64) * a + b).alias(c) for c, a, b in zip(columns, scale, offset)
    )


def _nonzero(value: float | None) -> float:
    return 1.0 if value is None or value == 0 else value


def op_standard_scale(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return affine(df, p["columns"], s["scale"], s["offset"])


def _fit_standard(df: pl.DataFrame, p: dict) -> Any:
    scale, offset, mean_, std_ = [], [], [], []
    got = column_stats(df, p["columns"], m=lambda c: c.mean(), s=lambda c: c.std(ddof=0))
    for mean, std in zip(floats(got["m"]), floats(got["s"])):
        mean = mean if (p["with_mean"] and mean is not None) else 0.0
        std = _nonzero(std) if p["with_std"] else 1.0
        scale.append(1.0 / std)
        offset.append(-mean / std)
        mean_.append(mean)
        std_.append(std)
    return {"mean": mean_, "std": std_, "scale": scale, "offset": offset}


def op_min_max_scale(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return affine(df, p["columns"], s["scale"], s["offset"])


def _fit_min_max(df: pl.DataFrame, p: dict) -> Any:
    scale, offset, lows, highs = [], [], [], []
    got = column_stats(df, p["columns"], lo=lambda c: c.min(), hi=lambda c: c.max())
    for low, high in zip(floats(got["lo"]), floats(got["hi"])):
        low, high = (0.0, 1.0) if low is None or high is None else (low, high)
        factor = (p["max"] - p["min"]) / _nonzero(high - low)
        scale.append(factor)
        offset.append(p["min"] - low * factor)
        lows.append(low)
        highs.append(high)
    return {"data_min": lows, "data_max": highs, "scale": scale, "offset": offset}


def _schema_min_max(sc: SchemaState, p: dict, env: Env) -> None:
    if p["min"] >= p["max"]:
        raise RecipeError(
            f'"min" ({p["min"]}) must be below "max" ({p["max"]})', details={"param": "min"}
        )
    _TO_FLOAT(sc, p, env)


def op_max_abs_scale(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return affine(df, p["columns"], s["scale"], [0.0] * len(p["columns"]))


def _fit_max_abs(df: pl.DataFrame, p: dict) -> Any:
    peaks = floats(column_stats(df, p["columns"], m=lambda c: c.abs().max())["m"])
    return {"max_abs": peaks, "scale": [1.0 / _nonzero(m) for m in peaks]}


def op_robust_scale(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return affine(df, p["columns"], s["scale"], s["offset"])


def _fit_robust(df: pl.DataFrame, p: dict) -> Any:
    centers, spreads, scale, offset = [], [], [], []
    qs = [p["lower"] / 100.0, 0.5, p["upper"] / 100.0]
    for q in quantiles(df, p["columns"], qs):
        center = q[1] if (p["with_centering"] and q[1] is not None) else 0.0
        spread = _nonzero(None if q[0] is None else q[2] - q[0])
        centers.append(center)
        spreads.append(spread)
        scale.append(1.0 / spread)
        offset.append(-center / spread)
    return {"center": centers, "iqr": spreads, "scale": scale, "offset": offset}


def _schema_robust(sc: SchemaState, p: dict, env: Env) -> None:
    if p["lower"] >= p["upper"]:
        raise RecipeError(
            f'"lower" ({p["lower"]}) must be below "upper" ({p["upper"]})',
            details={"param": "lower"},
        )
    _TO_FLOAT(sc, p, env)


def op_log_transform(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    base = np.e if p["base"] is None else float(p["base"])
    return df.with_columns(
        (pl.col(c).cast(pl.Float64) + p["offset"]).log(base) for c in p["columns"]
    )


def _schema_log(sc: SchemaState, p: dict, env: Env) -> None:
    if p["base"] is not None and (p["base"] <= 0 or p["base"] == 1):
        raise RecipeError(
            f'param "base" must be positive and not 1, got {p["base"]}', details={"param": "base"}
        )
    _TO_FLOAT(sc, p, env)


def bin_index(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    """Bin number 0..k-1 from learned edges; values beyond the edges go to the end bins."""
    exprs = []
    for name, edges in zip(p["columns"], s["edges"]):
        col = pl.col(name)
        inner = pl.Series(edges[1:-1], dtype=pl.Float64)
        found = pl.lit(inner).search_sorted(col.cast(pl.Float64), side="right").cast(pl.Int32)
        exprs.append(pl.when(col.is_null()).then(None).otherwise(found).alias(name + p["suffix"]))
    return df.with_columns(exprs)


def op_bin_equal_width(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return bin_index(df, p, s)


def _fit_equal_width(df: pl.DataFrame, p: dict) -> Any:
    edges = []
    got = column_stats(df, p["columns"], lo=lambda c: c.min(), hi=lambda c: c.max())
    for low, high in zip(floats(got["lo"]), floats(got["hi"])):
        low, high = (0.0, 1.0) if low is None or high is None else (low, high)
        edges.append([float(x) for x in np.linspace(low, high, p["bins"] + 1)])
    return {"edges": edges}


def op_bin_quantile(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return bin_index(df, p, s)


def _fit_quantile_bins(df: pl.DataFrame, p: dict) -> Any:
    edges = []
    for qs in quantiles(df, p["columns"], list(np.linspace(0.0, 1.0, p["bins"] + 1))):
        edges.append(sorted({q for q in qs if q is not None}) or [0.0, 1.0])
    return {"edges": edges}


def _schema_bins(sc: SchemaState, p: dict, env: Env) -> None:
    for name in p["columns"]:
        out = name + p["suffix"]
        if p["suffix"]:
            check_new_name(sc, out, param="suffix")
        sc.add(out, pl.Int32())


def op_pca(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    centered = [pl.col(c).cast(pl.Float64) - m for c, m in zip(p["columns"], s["mean"])]
    new = []
    for k, weights in enumerate(s["components"]):
        total = centered[0] * weights[0]
        for term, w in zip(centered[1:], weights[1:]):
            total = total + term * w
        new.append(total.alias(f"{p['prefix']}{k + 1}"))
    out = df.with_columns(new)
    return out.drop(p["columns"]) if p["drop_original"] else out


def _fit_pca(df: pl.DataFrame, p: dict) -> Any:
    data = df.select(pl.col(p["columns"]).cast(pl.Float64)).drop_nulls()
    x = data.to_numpy()
    if x.shape[0] < 2:
        raise ValueError("pca needs at least 2 rows without missing values")
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    variance = singular**2 / (x.shape[0] - 1)
    k = p["n_components"]
    return {
        "mean": [float(v) for v in mean],
        "components": [[float(v) for v in row] for row in vt[:k]],
        "explained_variance_ratio": [float(v) for v in (variance / variance.sum())[:k]],
    }


def _schema_pca(sc: SchemaState, p: dict, env: Env) -> None:
    if p["n_components"] > len(p["columns"]):
        raise RecipeError(
            f'"n_components" ({p["n_components"]}) exceeds the number of columns '
            f"({len(p['columns'])})",
            details={"param": "n_components"},
        )
    if p["drop_original"]:
        sc.drop(p["columns"])
    for k in range(p["n_components"]):
        check_new_name(sc, f"{p['prefix']}{k + 1}", param="prefix")
        sc.add(f"{p['prefix']}{k + 1}", pl.Float64())


_NUM = columns_param("numeric")
_TO_FLOAT = columns_become(pl.Float64())
_SUFFIX = Param("suffix", "str", default="_bin", doc='new column suffix ("" replaces the column)')

register(
    OpSpec(
        "standard_scale",
        "scale",
        "Center to mean 0 and scale to standard deviation 1.",
        (_NUM, Param("with_mean", "bool", default=True), Param("with_std", "bool", default=True)),
        op_standard_scale,
        _TO_FLOAT,
        fit=_fit_standard,
        rowwise=True,
    )
)
register(
    OpSpec(
        "min_max_scale",
        "scale",
        "Scale linearly so the fit data spans [min, max].",
        (_NUM, Param("min", "number", default=0.0), Param("max", "number", default=1.0)),
        op_min_max_scale,
        _schema_min_max,
        fit=_fit_min_max,
        rowwise=True,
    )
)
register(
    OpSpec(
        "max_abs_scale",
        "scale",
        "Divide by the largest absolute value seen at fit.",
        (_NUM,),
        op_max_abs_scale,
        _TO_FLOAT,
        fit=_fit_max_abs,
        rowwise=True,
    )
)
register(
    OpSpec(
        "robust_scale",
        "scale",
        "Center on the median and divide by the interquartile range.",
        (
            _NUM,
            Param("lower", "number", default=25.0, minimum=0, maximum=100),
            Param("upper", "number", default=75.0, minimum=0, maximum=100),
            Param("with_centering", "bool", default=True),
        ),
        op_robust_scale,
        _schema_robust,
        fit=_fit_robust,
        rowwise=True,
    )
)
register(
    OpSpec(
        "log_transform",
        "scale",
        "log(x + offset) in the given base (default e); x <= -offset gives NaN/-inf.",
        (_NUM, Param("base", "number"), Param("offset", "number", default=0.0)),
        op_log_transform,
        _schema_log,
        rowwise=True,
    )
)
register(
    OpSpec(
        "bin_equal_width",
        "scale",
        "Bin numbers into equal-width bins (edges learned at fit).",
        (_NUM, Param("bins", "int", default=5, minimum=1), _SUFFIX),
        op_bin_equal_width,
        _schema_bins,
        fit=_fit_equal_width,
        rowwise=True,
    )
)
register(
    OpSpec(
        "bin_quantile",
        "scale",
        "Bin numbers into bins of about equal counts (quantile edges).",
        (_NUM, Param("bins", "int", default=4, minimum=1), _SUFFIX),
        op_bin_quantile,
        _schema_bins,
        fit=_fit_quantile_bins,
        rowwise=True,
    )
)
register(
    OpSpec(
        "pca",
        "scale",
        "Project columns onto their principal components (pc1, pc2, ...).",
        (
            Param("columns", "columns", required=True, col_kind="numeric"),
            Param("n_components", "int", default=2, minimum=1),
            Param("prefix", "name", default="pc"),
            Param("drop_original", "bool", default=True),
        ),
        op_pca,
        _schema_pca,
        fit=_fit_pca,
        rowwise=True,
    )
)
