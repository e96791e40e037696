"""Statistics of one column, built batch by batch and mergeable."""

from __future__ import annotations

import base64
import datetime as dt
import math
from typing import Any

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kiln.core.errors import InvalidArgument
from kiln.prep.stats._moments import Moments
from kiln.prep.stats._types import ColumnKind, canonical_type, normalize_array
from kiln.prep.stats._values import DEFAULT_MAX_EXACT, ValueCounter

__all__ = ["ColumnStatistics", "DEFAULT_KLL_K", "QUANTILES"]

DEFAULT_KLL_K = 2048
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_MICROS = 1_000_000


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


class ColumnStatistics:
    """Mergeable statistics of one column.

    Numbers (integers, floats, and bools as 0/1) keep exact moments of their
    finite values (count, mean, M2..M4), min, max, sum, zeros, negatives and
    infinities, and a KLL sketch for quantiles and histograms. Datetimes keep
    min/max and a KLL sketch of epoch seconds. Every kind but ``other`` keeps
    a :class:`ValueCounter` (exact counts up to ``max_exact`` distinct values,
    HLL + frequent items past that). Strings keep length min/mean/max.

    ``missing`` counts nulls plus NaNs; ``present`` is ``count - missing``.
    Min and max are over finite values; infinities are counted apart.

    Args:
        name: the column's name.
        kind: the column's kind.
        kll_k: the KLL sketch's k (accuracy; 2048 is Model Monitor's).
        max_exact: distinct values counted exactly before sketching.
        tz: the timezone of a datetime column.
    """

    def __init__(self, name: str, kind: ColumnKind, *, kll_k: int = DEFAULT_KLL_K,
                 max_exact: int = DEFAULT_MAX_EXACT, tz: str | None = None) -> None:
        self.name = name
        self.kind = ColumnKind(kind)
        self.kll_k = kll_k
        self.max_exact = max_exact
        self.tz = tz
        self.count = 0
        self.null_count = 0
        self.nan_count = 0
        self.infinite = 0
        self.zeros = 0
        self.negatives = 0
        self.sum: float | int = 0
        self.min: Any = None  # float for numbers, epoch micros for datetimes
        self.max: Any = None
        self.moments = Moments()
        self.length_min: int | None = None
        self.length_max: int | None = None
        self.length_sum = 0
        has_sketch = self.kind.is_numeric or self.kind in (ColumnKind.BOOL, ColumnKind.DATETIME)
        self.kll: ds.kll_doubles_sketch | None = ds.kll_doubles_sketch(kll_k) if has_sketch \
            else None
        vtype = canonical_type(self.kind, tz)
        self.values: ValueCounter | None = ValueCounter(vtype, max_exact=max_exact) \
            if vtype is not None else None

    # -- derived figures -------------------------------------------------------
    @property
    def missing(self) -> int:
        return self.null_count + self.nan_count

    @property
    def present(self) -> int:
        return self.count - self.missing

    @property
    def distinct(self) -> float | None:
        """Distinct present values (an HLL estimate when not :attr:`distinct_exact`)."""
        return None if self.values is None else self.values.distinct

    @property
    def distinct_exact(self) -> bool:
        return self.values is not None and self.values.exact

    @property
    def mean(self) -> float | None:
        return self.moments.mean if self.moments.n else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1) of the finite values."""
        return self.moments.std(1)

    @property
    def skewness(self) -> float | None:
        return self.moments.skewness

    @property
    def kurtosis(self) -> float | None:
        return self.moments.kurtosis

    @property
    def length_mean(self) -> float | None:
        n = self.present
        return self.length_sum / n if self.kind is ColumnKind.STRING and n else None

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> dict[float, float] | None:
        """Quantiles from the KLL sketch (within ``kll.normalized_rank_error(False)`` in rank)."""
        if self.kll is None or self.kll.is_empty():
            return None
        return dict(zip(qs, self.kll.get_quantiles(list(qs)), strict=True))

    def histogram(self, bins: int = 20) -> tuple[list[float], list[float]] | None:
        """Equal-width histogram between min and max: (edges, counts).

        Exact from the value counts while the column has few distinct values;
        otherwise derived from the KLL sketch's CDF, so counts are within its
        rank error and histograms of merged chunks are still consistent
        (bins come from the merged min/max, not from any chunk). Datetimes are
        binned in epoch seconds.
        """
        if self.kll is None or self.kll.is_empty():
            return None
        lo, hi = self.kll.get_min_value(), self.kll.get_max_value()
        n = self.kll.n
        if hi <= lo:
            return [lo, hi], [float(n)]
        edges = np.linspace(lo, hi, bins + 1)
        exact = self.values.items() if self.values is not None else None
        if exact is not None and self.kind is not ColumnKind.DATETIME:
            vals = exact[0].to_numpy(zero_copy_only=False).astype(np.float64)
            keep = np.isfinite(vals)
            counts, _ = np.histogram(vals[keep], bins=edges, weights=exact[1][keep])
        else:
            # Ranks rounded to whole values, so bin counts are integers summing to n.
            ranks = np.round(np.asarray(self.kll.get_cdf(edges[1:-1].tolist()))[:-1] * n)
            counts = np.diff(np.concatenate([[0.0], ranks, [float(n)]]))
        return edges.tolist(), [float(c) for c in counts]

    def top_values(self, n: int = 10) -> list[tuple[Any, int]]:
        """Most frequent present values with counts (datetimes as ``datetime``)."""
        return [] if self.values is None else self.values.top(n)

    def datetime_min(self) -> dt.datetime | None:
        return self._as_datetime(self.min)

    def datetime_max(self) -> dt.datetime | None:
        return self._as_datetime(self.max)

    def _as_datetime(self, micros: int | None) -> dt.datetime | None:
        if self.kind is not ColumnKind.DATETIME or micros is None:
            return None
        return pa.scalar(micros, pa.timestamp("us", tz=self.tz)).as_py()

    # -- building --------------------------------------------------------------
    def update(self, arr: pa.Array | pa.ChunkedArray) -> None:
        """Add one batch of the column's values."""
        kind, arr, tz = normalize_array(arr)
        if kind is not self.kind or tz != self.tz:
            other = ColumnStatistics(self.name, kind, kll_k=self.kll_k,
                                     max_exact=self.max_exact, tz=tz)
            other.update(arr)
            self._absorb(self.merge(other))
            return
        self.count += len(arr)
        self.null_count += arr.null_count
        if self.kind is ColumnKind.OTHER:
            return
        valid = arr.drop_null() if arr.null_count else arr
        if self.kind is ColumnKind.STRING:
            self._update_strings(valid)
        elif self.kind is ColumnKind.DATETIME:
            self._update_datetimes(valid)
        else:
            valid = self._update_numbers(valid)
        self.values.update(valid)

    def _update_numbers(self, valid: pa.Array) -> pa.Array:
        x = valid.to_numpy(zero_copy_only=False)
        if self.kind is ColumnKind.FLOAT:
            nan = np.isnan(x)
            n_nan = int(np.count_nonzero(nan))
            if n_nan:
                self.nan_count += n_nan
                x = x[~nan]
                valid = pa.array(x)  # the counter never sees NaN (it counts as missing)
            finite = np.isfinite(x)
            n_inf = x.size - int(np.count_nonzero(finite))
            if n_inf:
                self.infinite += n_inf
                x = x[finite]
        if x.size == 0:
            return valid
        xf = x.astype(np.float64, copy=False)
        self.moments = self.moments.merge(Moments.of(xf))
        if self.kind is ColumnKind.INTEGER:
            self.sum += int(x.sum())
            lo, hi = int(x.min()), int(x.max())
        else:
            self.sum += float(xf.sum())
            lo, hi = float(xf.min()), float(xf.max())
        self.min, self.max = _min(self.min, lo), _max(self.max, hi)
        self.zeros += int(np.count_nonzero(xf == 0))
        self.negatives += int(np.count_nonzero(xf < 0))
        # The KLL binding refuses read-only arrays (zero-copy Arrow buffers).
        self.kll.update(xf if xf.flags.writeable else xf.copy())
        return valid

    def _update_strings(self, valid: pa.Array) -> None:
        if len(valid) == 0:
            return
        lengths = pc.utf8_length(valid)
        mm = pc.min_max(lengths).as_py()
        self.length_min = _min(self.length_min, mm["min"])
        self.length_max = _max(self.length_max, mm["max"])
        self.length_sum += int(pc.sum(lengths).as_py())

    def _update_datetimes(self, valid: pa.Array) -> None:
        if len(valid) == 0:
            return
        micros = valid.cast(pa.int64()).to_numpy()
        self.min, self.max = _min(self.min, int(micros.min())), _max(self.max, int(micros.max()))
        self.kll.update(micros.astype(np.float64) / _MICROS)

    # -- merging ---------------------------------------------------------------
    def merge(self, other: ColumnStatistics) -> ColumnStatistics:
        """A new :class:`ColumnStatistics` of both columns' values.

        An integer column merges with a float one as float; a column with no
        present values takes the other's kind.

        Raises:
            InvalidArgument: when the kinds cannot be combined.
        """
        kind, tz = self._merged_kind(other)
        out = ColumnStatistics(self.name, kind, kll_k=self.kll_k, max_exact=self.max_exact, tz=tz)
        for src in (self, other):
            out.count += src.count
            out.null_count += src.null_count
            out.nan_count += src.nan_count
            out.infinite += src.infinite
            out.zeros += src.zeros
            out.negatives += src.negatives
            out.length_sum += src.length_sum
            out.length_min = _min(out.length_min, src.length_min)
            out.length_max = _max(out.length_max, src.length_max)
            out.min, out.max = _min(out.min, src.min), _max(out.max, src.max)
            out.moments = out.moments.merge(src.moments)
            if src.kll is not None and out.kll is not None and not src.kll.is_empty():
                out.kll.merge(src.kll)
            if src.values is not None and out.values is not None:
                out.values = out.values.merge(src.values)
        if kind is ColumnKind.FLOAT:
            out.sum = float(self.sum) + float(other.sum)
            out.min = None if out.min is None else float(out.min)
            out.max = None if out.max is None else float(out.max)
        else:
            out.sum = self.sum + other.sum
        return out

    def _merged_kind(self, other: ColumnStatistics) -> tuple[ColumnKind, str | None]:
        if self.kind is other.kind and self.tz == other.tz:
            return self.kind, self.tz
        if self.present == 0 and self.kind is ColumnKind.OTHER:
            return other.kind, other.tz
        if other.present == 0 and other.kind is ColumnKind.OTHER:
            return self.kind, self.tz
        if {self.kind, other.kind} == {ColumnKind.INTEGER, ColumnKind.FLOAT}:
            return ColumnKind.FLOAT, None
        raise InvalidArgument(
            f"column {self.name!r} is {self.kind.value} in one part and "
            f"{other.kind.value} in the other; cast it to one type before computing statistics"
        )

    def _absorb(self, other: ColumnStatistics) -> None:
        self.__dict__.update(other.__dict__)

    # -- serialising -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, sketches included (base64), that :meth:`from_dict` reads back."""
        kll = None
        if self.kll is not None:
            kll = base64.b64encode(self.kll.serialize()).decode("ascii")
        return {
            "name": self.name, "kind": self.kind.value, "tz": self.tz,
            "kll_k": self.kll_k, "max_exact": self.max_exact,
            "count": self.count, "null_count": self.null_count, "nan_count": self.nan_count,
            "infinite": self.infinite, "zeros": self.zeros, "negatives": self.negatives,
            "sum": self.sum, "min": self.min, "max": self.max,
            "moments": self.moments.to_dict(),
            "length": {"min": self.length_min, "max": self.length_max, "sum": self.length_sum},
            "kll": kll,
            "values": None if self.values is None else self.values.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnStatistics:
        out = cls(d["name"], ColumnKind(d["kind"]), kll_k=int(d["kll_k"]),
                  max_exact=int(d["max_exact"]), tz=d.get("tz"))
        for key in ("count", "null_count", "nan_count", "infinite", "zeros", "negatives",
                    "sum", "min", "max"):
            setattr(out, key, d[key])
        out.moments = Moments.from_dict(d["moments"])
        out.length_min, out.length_max = d["length"]["min"], d["length"]["max"]
        out.length_sum = d["length"]["sum"]
        if d.get("kll"):
            out.kll = ds.kll_doubles_sketch.deserialize(base64.b64decode(d["kll"]))
        if d.get("values") is not None and out.values is not None:
            out.values = ValueCounter.from_dict(d["values"], out.values.value_type,
                                                max_exact=out.max_exact)
        return out

    def summary(self) -> dict[str, Any]:
        """Human-facing figures (no sketches): what a report or API shows."""
        present = self.present
        out: dict[str, Any] = {
            "name": self.name, "kind": self.kind.value, "count": self.count,
            "missing": self.missing, "missing_share": self.missing / self.count if self.count else 0.0,
            "distinct": self.distinct, "distinct_exact": self.distinct_exact,
        }
        if self.kind.is_numeric or self.kind is ColumnKind.BOOL:
            out.update(
                mean=self.mean, std=self.std, min=self.min, max=self.max, sum=self.sum,
                skewness=self.skewness, kurtosis=self.kurtosis, zeros=self.zeros,
                negatives=self.negatives, infinite=self.infinite,
                zeros_share=self.zeros / present if present else 0.0,
            )
            qs = self.quantiles()
            if qs is not None:
                out["quantiles"] = {f"p{round(q * 100)}": v for q, v in qs.items()}
        if self.kind is ColumnKind.STRING:
            out.update(length_min=self.length_min, length_mean=self.length_mean,
                       length_max=self.length_max)
        if self.kind is ColumnKind.DATETIME:
            lo, hi = self.datetime_min(), self.datetime_max()
            out.update(min=lo.isoformat() if lo else None, max=hi.isoformat() if hi else None)
        if self.values is not None:
            out["top_values"] = [[_jsonable(v), c] for v, c in self.top_values(10)]
        return {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in out.items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
