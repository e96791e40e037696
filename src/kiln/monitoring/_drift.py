"""Drift of one column, and of a table, as pure functions over Arrow / numpy.

Every numeric test reads two *sorted* samples (with optional weights, which is how a
baseline's KLL sketch stands for its data): one merge of the two gives the exact
Model Monitor distance (the largest gap between the two CDFs, which is also the
Kolmogorov-Smirnov statistic), the Wasserstein distance and the histograms of the
binned tests, each with ``searchsorted`` instead of another pass.

The tests and their defaults are Evidently's (``evidently.legacy.calculations.stattests``),
with the same formulas, so verdicts agree:

- reference of at most 1,000 rows: numbers with more than 5 distinct values (reference
  and current together) get the two-sample KS test (p < 0.05 = drift), categories and
  numbers with 3-5 distinct values chi-square (p < 0.05), two distinct values a z-test
  of proportions (p < 0.05);
- more rows: numbers with more than 5 distinct values the Wasserstein distance normed
  by the reference's standard deviation (>= 0.1), everything else the Jensen-Shannon
  distance (>= 0.1) over Sturges bins of both samples (numbers with more than 20
  distinct reference values) or over the categories;
- PSI (>= 0.1) on request, binned the same way with empty bins filled as Evidently does.

A table drifts when the share of drifted columns reaches ``drift_share`` (0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kiln.core.errors import InvalidArgument

__all__ = [
    "METHODS",
    "CategoricalSample",
    "ColumnDrift",
    "DriftOptions",
    "NumericSample",
    "column_drift",
    "default_method",
    "sample_of",
    "table_drift",
]

METHODS = ("ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi", "linf")
# Evidently's default thresholds: p-values below 0.05, distances at or above 0.1.
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1, "linf": 0.1}
P_VALUE_METHODS = ("ks", "chisquare", "z")
SMALL_REFERENCE = 1000
MODEL_MONITOR_THRESHOLD = 0.1


@dataclass
class NumericSample:
    """A sorted sample of finite numbers, with weights when it stands for more values.

    Attributes:
        x: the values, ascending.
        cw: cumulative weights (``cw[-1]`` = the total), None when every weight is 1.
    """

    x: np.ndarray
    cw: np.ndarray | None = None

    @property
    def total(self) -> float:
        return float(self.cw[-1]) if self.cw is not None and len(self.cw) else float(len(self.x))

    def cdf_counts(self, points: np.ndarray, side: str = "right") -> np.ndarray:
        """How much weight lies at or below (``side="right"``) or below each point."""
        idx = np.searchsorted(self.x, points, side=side)  # type: ignore[call-overload]
        if self.cw is None:
            return idx.astype(np.float64)
        return np.concatenate(([0.0], self.cw))[idx]

    def distinct(self) -> int:
        return int(np.count_nonzero(np.diff(self.x))) + 1 if len(self.x) else 0

    def std(self) -> float:
        """Population standard deviation (ddof=0), as ``np.std``."""
        if not len(self.x):
            return 0.0
        if self.cw is None:
            return float(np.std(self.x))
        w = np.diff(np.concatenate(([0.0], self.cw)))
        mean = float(np.sum(w * self.x) / self.total)
        return math.sqrt(float(np.sum(w * (self.x - mean) ** 2) / self.total))

    def counts_of(self, values: np.ndarray) -> np.ndarray:
        """Weight at each of ``values`` exactly."""
        return self.cdf_counts(values, "right") - self.cdf_counts(values, "left")

    @classmethod
    def of(cls, values: np.ndarray, weights: np.ndarray | None = None) -> NumericSample:
        values = np.asarray(values, dtype=np.float64)
        keep = np.isfinite(values)
        if weights is None:
            return cls(np.sort(values[keep]))
        order = np.argsort(values[keep], kind="stable")
        return cls(values[keep][order], np.cumsum(np.asarray(weights, dtype=np.float64)[keep][order]))


@dataclass
class CategoricalSample:
    """Counts of the present values of a categorical column."""

    counts: dict[Any, float]

    @property
    def total(self) -> float:
        return float(sum(self.counts.values()))

    def distinct(self) -> int:
        return len(self.counts)


Sample = NumericSample | CategoricalSample


def _is_numeric_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def sample_of(arr: pa.Array | pa.ChunkedArray, *, categorical: bool | None = None) -> Sample:
    """The sample of one column: sorted finite numbers, or counts of present values."""
    numeric = _is_numeric_type(arr.type) if categorical is None else not categorical
    if numeric:
        if not _is_numeric_type(arr.type):
            raise InvalidArgument(f"a column of type {arr.type} cannot be compared as numbers")
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False) if not pa.types.is_float64(arr.type) or arr.null_count \
            else (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).to_numpy()
        return NumericSample.of(values)
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    vc = pc.value_counts(arr.drop_null())
    keys = vc.field("values").to_pylist()
    counts = vc.field("counts").to_pylist()
    return CategoricalSample({k: float(c) for k, c in zip(keys, counts, strict=True) if not (isinstance(k, float) and math.isnan(k))})


# -- the tests ----------------------------------------------------------------------


@dataclass
class _Merged:
    """Two numeric samples merged: their distinct values, ascending, with the reference's and
    the current's weight at or below each (their CDFs, unnormalised)."""

    v: np.ndarray
    cr: np.ndarray
    cc: np.ndarray
    rows: int  # values of both samples (Evidently's Sturges rule counts these)


def _merged(ref: NumericSample, cur: NumericSample) -> _Merged:
    cat = np.concatenate((ref.x, cur.x))
    order = np.argsort(cat, kind="stable")  # two sorted runs: one linear merge
    v = cat[order]
    del cat
    n = len(ref.x)
    is_ref = order < n
    if ref.cw is None and cur.cw is None:
        cr = np.cumsum(is_ref, dtype=np.float64)
        cc = np.arange(1, len(v) + 1, dtype=np.float64) - cr
    else:
        w = np.empty(len(v), dtype=np.float64)
        rw = np.ones(n) if ref.cw is None else np.diff(ref.cw, prepend=0.0)
        cw = np.ones(len(cur.x)) if cur.cw is None else np.diff(cur.cw, prepend=0.0)
        w[is_ref] = rw[order[is_ref]]
        cr = np.cumsum(np.where(is_ref, w, 0.0))
        w[~is_ref] = cw[order[~is_ref] - n]
        cc = np.cumsum(np.where(is_ref, 0.0, w))
    del order, is_ref
    ends = np.flatnonzero(v[1:] != v[:-1]) if len(v) else np.array([], dtype=np.int64)
    ends = np.append(ends, len(v) - 1) if len(v) else ends
    return _Merged(v[ends], cr[ends], cc[ends], len(v))


def _gap_and_wasserstein(ref: NumericSample, cur: NumericSample, both: _Merged) -> tuple[float, float]:
    """The largest CDF gap (KS statistic) and the Wasserstein-1 distance (scipy's)."""
    diff = np.abs(both.cr * (1.0 / ref.total) - both.cc * (1.0 / cur.total))
    gap = float(diff.max()) if len(diff) else 0.0
    wd = float(np.sum(diff[:-1] * np.diff(both.v))) if len(both.v) > 1 else 0.0
    return gap, wd


def _binned(ref: Sample, cur: Sample, both: _Merged | None, *, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's ``get_binned_data``: shares per Sturges bin (numbers with more than 20
    distinct reference values) or per category / value."""
    if isinstance(ref, NumericSample) and isinstance(cur, NumericSample) and ref.distinct() > 20:
        assert both is not None
        n_bins = int(np.ceil(np.log2(both.rows) + 1)) if both.rows else 1
        edges = np.linspace(both.v[0], both.v[-1], n_bins + 1) if len(both.v) else np.array([0.0, 1.0])

        def hist(s: NumericSample) -> np.ndarray:
            at = s.cdf_counts(edges, "left")
            at[-1] = s.cdf_counts(edges[-1:], "right")[0]  # the last bin is closed, as np.histogram's
            return np.diff(at)

        # Evidently divides by the rows, which for a weighted sample is the total weight.
        rp, cp = hist(ref) / ref.total, hist(cur) / cur.total
    else:
        keys, rc, cc = _value_counts(ref, cur, both)
        rp, cp = rc / ref.total, cc / cur.total
    if fill_zeroes:
        for p in (rp, cp):
            nonzero = p[p != 0]
            if len(nonzero):
                low = nonzero.min()
                np.place(p, p == 0, low / 10**6 if low <= 0.0001 else 0.0001)
    return rp, cp


def _value_counts(ref: Sample, cur: Sample, both: _Merged | None = None) -> tuple[list[Any], np.ndarray, np.ndarray]:
    if isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
        keys = list(dict.fromkeys([*ref.counts, *cur.counts]))
        return keys, np.array([ref.counts.get(k, 0.0) for k in keys]), np.array([cur.counts.get(k, 0.0) for k in keys])
    assert isinstance(ref, NumericSample) and isinstance(cur, NumericSample)
    both = both or _merged(ref, cur)
    return both.v.tolist(), np.diff(both.cr, prepend=0.0), np.diff(both.cc, prepend=0.0)


def _linf(ref: Sample, cur: Sample, both: _Merged | None) -> float:
    """Model Monitor's distance: the largest gap between the CDFs (numbers) or between the
    category shares (LInfinity)."""
    if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
        assert both is not None
        return _gap_and_wasserstein(ref, cur, both)[0]
    _, rc, cc = _value_counts(ref, cur)
    return float(np.max(np.abs(rc / ref.total - cc / cur.total))) if len(rc) else 0.0


def _ks(ref: NumericSample, cur: NumericSample, both: _Merged) -> float:
    from scipy import stats

    if ref.cw is None and cur.cw is None:
        return float(stats.ks_2samp(ref.x, cur.x).pvalue)
    gap = _gap_and_wasserstein(ref, cur, both)[0]
    n, m = ref.total, cur.total
    return float(stats.kstwo.sf(gap, np.round(n * m / (n + m))))


def _chisquare(ref: Sample, cur: Sample) -> float:
    from scipy import stats

    _, rc, cc = _value_counts(ref, cur)
    expected = rc * (cur.total / ref.total)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cc, expected).pvalue)


def _z(ref: Sample, cur: Sample) -> float:
    from scipy import stats

    keys, rc, cc = _value_counts(ref, cur)
    if (ref.distinct() == 1 and cur.distinct() == 1 and np.count_nonzero(rc) == 1 and np.count_nonzero(cc) == 1
            and np.argmax(rc) == np.argmax(cc)):
        return 1.0
    first = keys.index(sorted(keys)[0])
    n1, n2 = ref.total, cur.total
    p1 = (n1 - rc[first]) / n1  # share of rows that are not the first key
    p2 = (n2 - cc[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def default_method(ref: Sample, cur: Sample, distinct_both: int | None = None) -> str:
    """The test Evidently picks for this pair (see the module's docstring)."""
    numeric = isinstance(ref, NumericSample)
    if distinct_both is None:
        distinct_both = _distinct_both(ref, cur, None)
    if ref.total <= SMALL_REFERENCE:
        if numeric and distinct_both > 5:
            return "ks"
        return "chisquare" if distinct_both > 2 else "z"
    if numeric and distinct_both > 5:
        return "wasserstein"
    return "jensenshannon"


def _distinct_both(ref: Sample, cur: Sample, both: _Merged | None) -> int:
    if isinstance(ref, NumericSample):
        if both is None:
            both = _merged(ref, cur)  # type: ignore[arg-type]
        return len(both.v)
    assert isinstance(cur, CategoricalSample)
    return len(set(ref.counts) | set(cur.counts))


@dataclass
class ColumnDrift:
    """The verdict on one column.

    Attributes:
        method: the test that decided ``drifted`` (``ks``, ``wasserstein``, ...).
        score: its p-value (ks, chisquare, z: drift below the threshold) or distance (drift at or above).
        distance: Model Monitor's distance (largest CDF / share gap), always computed.
        baseline_drift: ``distance`` above ``distance_threshold`` (Model Monitor's baseline_drift_check).
    """

    name: str
    kind: str  # numerical | categorical
    method: str
    score: float
    threshold: float
    drifted: bool
    distance: float
    distance_threshold: float
    baseline_drift: bool
    reference_rows: float
    current_rows: float
    extra: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, Any] | None = None  # for the report, of drifted columns only

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"name": self.name, "kind": self.kind, "method": self.method, "score": clean(self.score), "threshold": self.threshold,
                "drifted": self.drifted, "distance": clean(self.distance), "distance_threshold": self.distance_threshold,
                "baseline_drift": self.baseline_drift, "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                **{k: clean(v) for k, v in self.extra.items()}, **({"histogram": self.histogram} if self.histogram else {})}


def histogram(ref: Sample, cur: Sample, *, bins: int = 20) -> dict[str, Any]:
    """Both samples' shares over ``bins`` equal-width bins (numbers) or the top categories,
    small enough for a report."""
    if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
        lo = min(ref.x[0], cur.x[0]) if len(ref.x) and len(cur.x) else 0.0
        hi = max(ref.x[-1], cur.x[-1]) if len(ref.x) and len(cur.x) else 1.0
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)

        def shares(s: NumericSample) -> list[float]:
            at = s.cdf_counts(edges, "left")
            at[-1] = s.total
            return [round(float(v), 6) for v in np.diff(at) / s.total]

        return {"edges": [float(e) for e in edges], "reference": shares(ref), "current": shares(cur)}
    assert isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample)
    keys = sorted(set(ref.counts) | set(cur.counts), key=lambda k: -(ref.counts.get(k, 0.0) + cur.counts.get(k, 0.0)))[:bins]
    return {"labels": [str(k)[:40] for k in keys], "reference": [round(ref.counts.get(k, 0.0) / ref.total, 6) for k in keys],
            "current": [round(cur.counts.get(k, 0.0) / cur.total, 6) for k in keys]}


def column_drift(name: str, ref: Sample, cur: Sample, *, method: str | None = None, threshold: float | None = None,
                 distance_threshold: float = MODEL_MONITOR_THRESHOLD, psi: bool = False) -> ColumnDrift:
    """Compare one column's current sample with its reference sample.

    Args:
        name: the column.
        ref: the reference sample (data, or a baseline's sketch).
        cur: the current sample.
        method: one of :data:`METHODS` (default: Evidently's pick).
        threshold: the method's threshold (default: Evidently's for that method).
        distance_threshold: Model Monitor's ``comparison_threshold`` for the distance.
        psi: also report the PSI (``extra["psi"]``).

    Raises:
        InvalidArgument: an unknown method, or one that does not fit the column.
    """
    numeric = isinstance(ref, NumericSample)
    if numeric != isinstance(cur, NumericSample):
        raise InvalidArgument(f"column {name!r} is numeric on one side and categorical on the other")
    kind = "numerical" if numeric else "categorical"
    if not ref.total or not cur.total:
        # Nothing to compare on one side (all missing): no verdict; completeness checks report it.
        return ColumnDrift(name, kind, "none", float("nan"), threshold or 0.0, False, float("nan"), distance_threshold, False, ref.total, cur.total)
    both = _merged(ref, cur) if numeric else None  # type: ignore[arg-type]
    chosen = method or default_method(ref, cur, _distinct_both(ref, cur, both))
    if chosen not in METHODS:
        raise InvalidArgument(f"unknown drift method {chosen!r} for column {name!r}; use one of {', '.join(METHODS)}")
    if chosen in ("ks", "wasserstein") and not numeric:
        raise InvalidArgument(f"drift method {chosen!r} needs a numeric column; {name!r} is categorical (use chisquare, z, jensenshannon, psi or linf)")
    limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else float(threshold)
    gap_wd = _gap_and_wasserstein(ref, cur, both) if numeric else None  # type: ignore[arg-type]
    distance = gap_wd[0] if gap_wd is not None else _linf(ref, cur, both)
    if chosen == "ks":
        score = _ks(ref, cur, both)  # type: ignore[arg-type]
    elif chosen == "chisquare":
        score = _chisquare(ref, cur)
    elif chosen == "z":
        score = _z(ref, cur)
    elif chosen == "wasserstein":
        assert gap_wd is not None
        wd = gap_wd[1]
        score = wd / max(ref.std(), 0.001)  # type: ignore[union-attr]
    elif chosen == "jensenshannon":
        from scipy.spatial import distance as sd

        rp, cp = _binned(ref, cur, both, fill_zeroes=False)
        score = float(sd.jensenshannon(rp, cp))
    elif chosen == "psi":
        score = _psi(ref, cur, both)
    else:
        score = distance
    drifted = bool(score < limit) if chosen in P_VALUE_METHODS else bool(score >= limit)
    extra = {"psi": _psi(ref, cur, both)} if psi and chosen != "psi" else {}
    return ColumnDrift(name, kind, chosen, float(score), limit, drifted, distance, distance_threshold,
                       bool(distance > distance_threshold), ref.total, cur.total, extra)


def _psi(ref: Sample, cur: Sample, both: _Merged | None) -> float:
    rp, cp = _binned(ref, cur, both, fill_zeroes=True)
    return float(np.sum((rp - cp) * np.log(rp / cp)))


@dataclass(frozen=True)
class DriftOptions:
    """How a table is compared.

    Attributes:
        methods: per column, or ``"*"`` for all: a method of :data:`METHODS`.
        thresholds: per column (or ``"*"``): the method's threshold.
        drift_share: the share of drifted columns at which the table drifts.
        comparison_threshold: Model Monitor's distance threshold for numbers.
        categorical_comparison_threshold: ... and for categories.
        psi: also report each column's PSI.
    """

    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    comparison_threshold: float = MODEL_MONITOR_THRESHOLD
    categorical_comparison_threshold: float = MODEL_MONITOR_THRESHOLD
    psi: bool = False

    def __post_init__(self) -> None:
        for col, m in self.methods.items():
            if m not in METHODS:
                raise InvalidArgument(f"unknown drift method {m!r} for {col!r}; use one of {', '.join(METHODS)}")
        for col, v in self.thresholds.items():
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise InvalidArgument(f"the drift threshold of {col!r} must be a number >= 0, not {v!r}")
        if not 0 < self.drift_share <= 1:
            raise InvalidArgument(f"drift_share must be in (0, 1], not {self.drift_share}")

    def method_for(self, column: str) -> str | None:
        return self.methods.get(column, self.methods.get("*"))

    def threshold_for(self, column: str) -> float | None:
        return self.thresholds.get(column, self.thresholds.get("*"))


def table_drift(reference: Mapping[str, Any], current: Mapping[str, Any], *, options: DriftOptions | None = None,
                max_workers: int = 2) -> dict[str, Any]:
    """Drift of every column both sides have, and the dataset-level verdict.

    Args:
        reference: column -> a sample, an Arrow array, or a zero-argument callable returning
            either (read lazily, so only the columns in flight are in memory).
        current: the same for the current data.
        options: methods and thresholds.
        max_workers: columns compared at once (numpy sorts release the GIL).

    Returns:
        ``{"columns": [ColumnDrift.to_dict()...], "dataset_drift": {...}}``.
    """
    opts = options or DriftOptions()
    names = [n for n in reference if n in current]

    def load(src: Any, categorical: bool | None = None) -> Sample:
        v = src() if callable(src) else src
        return v if isinstance(v, NumericSample | CategoricalSample) else sample_of(v, categorical=categorical)

    def one(name: str) -> ColumnDrift | dict[str, Any]:
        try:
            ref = load(reference[name])
            cur = load(current[name], categorical=isinstance(ref, CategoricalSample))
        except InvalidArgument as exc:
            return {"name": name, "error": exc.message}
        dt = opts.categorical_comparison_threshold if isinstance(ref, CategoricalSample) else opts.comparison_threshold
        drift = column_drift(name, ref, cur, method=opts.method_for(name), threshold=opts.threshold_for(name), distance_threshold=dt, psi=opts.psi)
        if drift.drifted or drift.baseline_drift:
            drift.histogram = histogram(ref, cur)
        return drift

    if max_workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers) as pool:
            results = list(pool.map(one, names))
    else:
        results = [one(n) for n in names]
    cols = [r.to_dict() if isinstance(r, ColumnDrift) else r for r in results if r is not None]
    judged = [c for c in cols if "drifted" in c and c["method"] != "none"]
    drifted = sum(1 for c in judged if c["drifted"])
    share = drifted / len(judged) if judged else 0.0
    return {"columns": cols, "dataset_drift": {"columns": len(judged), "drifted_columns": drifted, "share": share,
                                               "threshold": opts.drift_share, "drift": bool(judged) and share >= opts.drift_share}}
