"""What the profile computes beyond per-column statistics: correlations, missing patterns, alerts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from kiln.prep.stats import ColumnKind, ColumnStatistics, DatasetStatistics

__all__ = ["Alert", "AlertThresholds", "column_alerts", "correlations", "missing_patterns"]

MAX_CORRELATION_COLUMNS = 60


@dataclass(frozen=True)
class AlertThresholds:
    """When the profile raises each alert.

    Attributes:
        missing_share: share of missing values from which ``missing`` fires.
        high_cardinality: distinct values from which a string column is ``high_cardinality``.
        unique_share: distinct/present share from which a column counts as
            ``unique`` when its distinct count is an HLL estimate (exact counts need 1.0).
        skewness: absolute skewness above which ``skewed`` fires.
        zeros_share: share of zeros above which ``zeros`` fires.
        correlation: absolute Pearson r above which a pair is ``high_correlation``.
        imbalance: ``1 - entropy / log(k)`` above which a categorical column is
            ``imbalanced`` (0 = balanced, 1 = one class).
        max_categories: categorical columns with more classes are not checked for balance.
    """

    missing_share: float = 0.2
    high_cardinality: int = 50
    unique_share: float = 0.97
    skewness: float = 3.0
    zeros_share: float = 0.5
    correlation: float = 0.9
    imbalance: float = 0.5
    max_categories: int = 50


@dataclass(frozen=True)
class Alert:
    """A finding worth a look: ``kind`` over ``columns`` (empty for the whole dataset)."""

    kind: str
    columns: tuple[str, ...]
    message: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["columns"] = list(self.columns)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        return cls(d["kind"], tuple(d["columns"]), d["message"], float(d["value"]))


def _imbalance(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    if p.size < 2:
        return 0.0
    return float(1.0 - (-(p * np.log(p)).sum()) / math.log(p.size))


def column_alerts(col: ColumnStatistics, th: AlertThresholds) -> list[Alert]:
    """The alerts one column's statistics raise."""
    out: list[Alert] = []
    name, present = col.name, col.present
    cols = (name,)

    def add(kind: str, message: str, value: float) -> None:
        out.append(Alert(kind, cols, message, float(value)))

    if col.count and col.missing / col.count >= th.missing_share:
        share = col.missing / col.count
        add("missing", f"{name} is {share:.1%} missing ({col.missing:,} of {col.count:,})"
            if present else f"{name} is entirely missing", share)
    distinct = col.distinct
    if distinct is not None and present:
        if distinct <= 1:
            top = col.top_values(1)
            shown = top[0][0] if top else "?"
            add("constant", f"{name} has one value ({shown!s:.40}) in every present row", 1)
        elif col.kind in (ColumnKind.INTEGER, ColumnKind.STRING, ColumnKind.DATETIME) and \
                present > 1 and (distinct == present if col.distinct_exact
                                 else distinct >= th.unique_share * present):
            approx = "" if col.distinct_exact else " (estimated)"
            add("unique", f"{name} has a distinct value in every row{approx}", distinct / present)
        elif col.kind is ColumnKind.STRING and distinct >= th.high_cardinality:
            add("high_cardinality", f"{name} has {distinct:,.0f} distinct values", distinct)
    if col.kind.is_numeric and present:
        skew = col.skewness
        if skew is not None and abs(skew) > th.skewness:
            add("skewed", f"{name} is highly skewed (skewness {skew:.2f})", skew)
        zeros = col.zeros / present
        if zeros > th.zeros_share:
            add("zeros", f"{name} is {zeros:.1%} zeros ({col.zeros:,})", zeros)
        if col.infinite:
            add("infinite", f"{name} has {col.infinite:,} infinite values", col.infinite)
    items = col.values.items() if col.values is not None else None
    if col.kind in (ColumnKind.STRING, ColumnKind.BOOL) and items is not None and \
            2 <= len(items[1]) <= th.max_categories:
        imb = _imbalance(items[1])
        if imb > th.imbalance:
            top = col.top_values(1)[0]
            add("imbalanced", f"{name} is imbalanced: {top[0]!s:.40} is "
                f"{top[1] / present:.1%} of values", imb)
    return out


def _numeric_matrix(sample: pa.Table, names: list[str]) -> np.ndarray:
    # Filled column by column into one Fortran-ordered block: no list of copies.
    x = np.empty((sample.num_rows, len(names)), dtype=np.float64, order="F")
    for j, name in enumerate(names):
        arr = sample.column(name)
        if arr.null_count:
            arr = arr.cast(pa.float64()).fill_null(np.nan)
        x[:, j] = arr.to_numpy()
    return x


def pairwise_pearson(x: np.ndarray) -> np.ndarray:
    """Pearson r of every column pair over the rows where both are finite.

    Done with four matrix products instead of a loop over pairs; columns are
    standardised first (in place, ``x`` is overwritten) so the sums keep
    their precision.
    """
    m = np.isfinite(x)
    if m.all():  # the common case: one matrix product
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(x, rowvar=False)
        return np.clip(np.where(np.isfinite(r), r, np.nan), -1.0, 1.0)
    missing = ~m
    x[missing] = 0.0
    cnt = np.maximum(m.sum(axis=0), 1)
    x -= x.sum(axis=0) / cnt
    x[missing] = 0.0
    sd = np.sqrt(np.einsum("ij,ij->j", x, x) / cnt)
    x /= np.where(sd > 0, sd, 1.0)
    mf = m.astype(np.float64)
    del m, missing
    with np.errstate(invalid="ignore", divide="ignore"):
        n = mf.T @ mf
        sx = x.T @ mf  # sx[i, j]: sum of column i over rows where j is present too
        sxy = x.T @ x
        np.square(x, out=x)
        sxx = x.T @ mf
        cov = sxy - sx * sx.T / n
        vx = sxx - sx * sx / n
        r = cov / np.sqrt(vx * vx.T)
    r[(n < 3) | ~np.isfinite(r)] = np.nan
    np.fill_diagonal(r, np.where(sd > 0, 1.0, np.nan))
    return np.clip(r, -1.0, 1.0)


def correlations(stats: DatasetStatistics, sample: pa.Table | None,
                 th: AlertThresholds) -> tuple[dict[str, Any], list[Alert]]:
    """Pearson correlations of the numeric (and bool) columns, on the sample."""
    names = [c.name for c in stats if (c.kind.is_numeric or c.kind is ColumnKind.BOOL)
             and (c.std or 0) > 0 and c.name in (sample.column_names if sample else [])]
    names = names[:MAX_CORRELATION_COLUMNS]
    if sample is None or len(names) < 2:
        return {"method": "pearson", "columns": [], "matrix": [], "pairs": []}, []
    r = pairwise_pearson(_numeric_matrix(sample, names))
    iu = np.triu_indices(len(names), 1)
    vals = r[iu]
    order = np.argsort(-np.nan_to_num(np.abs(vals), nan=-1.0))
    pairs, alerts = [], []
    for rank, k in enumerate(order):
        v = float(vals[k])
        if not math.isfinite(v) or (rank >= 20 and abs(v) <= th.correlation):
            break
        a, b = names[iu[0][k]], names[iu[1][k]]
        if rank < 20:
            pairs.append({"columns": [a, b], "r": round(v, 4)})
        if abs(v) > th.correlation:
            alerts.append(Alert("high_correlation", (a, b),
                                f"{a} and {b} are highly correlated (r = {v:.3f})", v))
    matrix = [[None if not math.isfinite(v) else round(float(v), 3) for v in row] for row in r]
    return {"method": "pearson", "columns": names, "matrix": matrix, "pairs": pairs}, alerts


def missing_patterns(stats: DatasetStatistics, sample: pa.Table | None,
                     *, max_patterns: int = 8) -> dict[str, Any]:
    """Per-column missing counts (full data) and co-missing structure (sample)."""
    per_column = [{"column": c.name, "missing": c.missing,
                   "share": c.missing / c.count if c.count else 0.0} for c in stats]
    out: dict[str, Any] = {"columns": per_column, "nullity": {"columns": [], "matrix": []},
                           "patterns": []}
    gappy = [c.name for c in stats if 0 < c.missing]
    if sample is None or not gappy or sample.num_rows == 0:
        return out
    null = np.column_stack([_missing_mask(sample.column(n)) for n in gappy])
    varying = [i for i in range(len(gappy)) if 0 < null[:, i].sum() < len(null)]
    if len(varying) >= 2:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(null[:, varying].T.astype(np.float64))
        out["nullity"] = {"columns": [gappy[i] for i in varying],
                          "matrix": [[round(float(v), 3) if math.isfinite(v) else None
                                      for v in row] for row in r]}
    # One integer key per row (first 63 gappy columns): a 1-D unique is far
    # cheaper than np.unique(axis=0) on the boolean matrix.
    cols = gappy[:63]
    weights = np.left_shift(np.uint64(1), np.arange(len(cols), dtype=np.uint64))
    keys = null[:, : len(cols)].astype(np.uint64) @ weights
    uniq, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:max_patterns]
    for k in order:
        bits = (int(uniq[k]) >> np.arange(len(cols))) & 1 == 1
        out["patterns"].append({"columns": [g for g, b in zip(cols, bits, strict=True) if b],
                                "count": int(counts[k]), "share": float(counts[k] / len(null))})
    return out


def _missing_mask(arr: pa.ChunkedArray) -> np.ndarray:
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(arr.type):
        mask = mask | np.isnan(arr.fill_null(0.0).to_numpy(zero_copy_only=False))
    return mask

