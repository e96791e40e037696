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
from kiln.prep.stats._types import ColumnKind, canonical_type, infer_kind, normalize_array
from kiln.prep.stats._values import ValueCounter, default_max_exact

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

    While the value counter is exact, its counts are the distribution:
    quantiles and histograms are read from them exactly, and :attr:`kll` is
    built from them only when asked for. Values go into the sketch itself
    once the counter has switched to sketching, which is when a column has
    too many distinct values for counts to be cheaper than the sketch.

    ``missing`` counts nulls plus NaNs; ``present`` is ``count - missing``.
    Min and max are over finite values; infinities are counted apart.

    Args:
        name: the column's name.
        kind: the column's kind.
        kll_k: the KLL sketch's k (accuracy; 2048 is Model Monitor's).
        max_exact: distinct values counted exactly before sketching (default:
            10,000 for numbers, 65,536 for strings).
        tz: the timezone of a datetime column.
    """

    def __init__(self, name: str, kind: ColumnKind, *, kll_k: int = DEFAULT_KLL_K,
                 max_exact: int | None = None, tz: str | None = None) -> None:
        self.name = name
        self.kind = ColumnKind(kind)
        self.kll_k = kll_k
        vtype = canonical_type(self.kind, tz)
        self.max_exact = default_max_exact(vtype) if max_exact is None else max_exact
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
        # Values seen since the counter stopped being exact (all of them once it has).
        self.kll_: ds.kll_doubles_sketch | None = ds.kll_doubles_sketch(kll_k) if has_sketch \
            else None
        self.kll_cache_: ds.kll_doubles_sketch | None = None  # built from exact counts
        self.values: ValueCounter | None = ValueCounter(vtype, max_exact=self.max_exact) \
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

    @property
    def kll(self) -> ds.kll_doubles_sketch | None:
        """A KLL sketch of every finite value (None for kinds without one).

        Built from the exact counts on first use while the counter is exact
        (treat it as read-only); the live sketch once it is not.
        """
        if self.kll_ is None or not self._counts_exact:
            return self.kll_
        if self.kll_cache_ is None:
            sketch = ds.kll_doubles_sketch(self.kll_k)
            x, counts = self._exact_numbers()
            _update_repeated(sketch, x, counts)
            self.kll_cache_ = sketch
        return self.kll_cache_

    @property
    def _counts_exact(self) -> bool:
        return self.values is not None and self.values.exact

    def _exact_numbers(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact counter's finite values as sketched numbers, sorted, with counts."""
        keys, counts = self.values.items()
        x = _sketch_numbers(keys)
        keep = np.isfinite(x)
        x, counts = x[keep], counts[keep]
        order = np.argsort(x, kind="stable")
        return x[order], counts[order]

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> dict[float, float] | None:
        """Quantiles: exact while the counter is, else from the KLL sketch.

        Sketched quantiles are within ``kll.normalized_rank_error(False)`` in rank.
        Exact ones are the smallest value whose cumulative share reaches q.
        """
        if self.kll_ is None:
            return None
        if self._counts_exact:
            x, counts = self._exact_numbers()
            if x.size == 0:
                return None
            cum = np.cumsum(counts)
            idx = np.searchsorted(cum, np.asarray(qs) * cum[-1], side="left")
            return {q: float(x[min(i, x.size - 1)]) for q, i in zip(qs, idx, strict=True)}
        if self.kll_.is_empty():
            return None
        return dict(zip(qs, self.kll_.get_quantiles(list(qs)), strict=True))

    def histogram(self, bins: int = 20) -> tuple[list[float], list[float]] | None:
        """Equal-width histogram between min and max: (edges, counts).

        Exact from the value counts while the column has few distinct values;
        otherwise derived from the KLL sketch's CDF, so counts are within its
        rank error and histograms of merged chunks are still consistent
        (bins come from the merged min/max, not from any chunk). Datetimes are
        binned in epoch seconds.
        """
        if self.kll_ is None:
            return None
        if self._counts_exact:
            x, weights = self._exact_numbers()
            if x.size == 0:
                return None
            lo, hi, n = float(x[0]), float(x[-1]), int(weights.sum())
        else:
            if self.kll_.is_empty():
                return None
            lo, hi, n = self.kll_.get_min_value(), self.kll_.get_max_value(), self.kll_.n
        if hi <= lo:
            return [lo, hi], [float(n)]
        edges = np.linspace(lo, hi, bins + 1)
        if self._counts_exact:
            counts, _ = np.histogram(x, bins=edges, weights=weights)
        else:
            # Ranks rounded to whole values, so bin counts are integers summing to n.
            ranks = np.round(np.asarray(self.kll_.get_cdf(edges[1:-1].tolist()))[:-1] * n)
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
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if self.kind is ColumnKind.STRING and pa.types.is_dictionary(arr.type) and \
                infer_kind(arr.type) is ColumnKind.STRING:
            self._update_dictionary(arr)
            return
        kind, arr, tz = normalize_array(arr)
        if kind is not self.kind or tz != self.tz:
            other = ColumnStatistics(self.name, kind, kll_k=self.kll_k,
                                     max_exact=self._max_exact_arg(), tz=tz)
            other.update(arr)
            self._absorb(self.merge(other))
            return
        self.count += len(arr)
        self.null_count += arr.null_count
        if self.kind is ColumnKind.OTHER:
            return
        valid = arr.drop_null() if arr.null_count else arr
        sketched = None
        if self.kind is ColumnKind.STRING:
            self._update_strings(valid)
        elif self.kind is ColumnKind.DATETIME:
            sketched = self._update_datetimes(valid)
        else:
            valid, sketched = self._update_numbers(valid)
        if sketched is None or not self._counts_exact:
            self.values.update(valid)
            self._sketch(sketched)
            return
        before = self.values.items()
        self.values.update(valid)
        self.kll_cache_ = None
        if not self.values.exact:  # just switched: the sketch takes what the counts held
            x = _sketch_numbers(before[0])
            keep = np.isfinite(x)
            _update_repeated(self.kll_, x[keep], before[1][keep])
            self._sketch(sketched)

    def _sketch(self, x: np.ndarray | None) -> None:
        """Add finite numbers to the KLL sketch; sorted first, which it takes ~3x faster."""
        if x is not None and x.size:
            self.kll_.update(np.sort(x))

    def _update_numbers(self, valid: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
        """Exact figures of a batch; returns (values to count, finite floats to sketch)."""
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
            return valid, None
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
        return valid, xf

    def _update_strings(self, valid: pa.Array) -> None:
        if len(valid) == 0:
            return
        lengths = pc.utf8_length(valid)
        mm = pc.min_max(lengths).as_py()
        self.length_min = _min(self.length_min, mm["min"])
        self.length_max = _max(self.length_max, mm["max"])
        self.length_sum += int(pc.sum(lengths).as_py())

    def _update_dictionary(self, arr: pa.DictionaryArray) -> None:
        """Strings as a dictionary and indices: counted by index, never decoded."""
        self.count += len(arr)
        self.null_count += arr.null_count
        indices = arr.indices.drop_null() if arr.null_count else arr.indices
        if len(indices) == 0:
            return
        counts = np.bincount(indices.to_numpy(), minlength=len(arr.dictionary))
        used = np.flatnonzero(counts)
        keys = arr.dictionary.take(pa.array(used)).cast(pa.string())
        counts = counts[used]
        lengths = pc.utf8_length(keys).to_numpy()
        self.length_min = _min(self.length_min, int(lengths.min()))
        self.length_max = _max(self.length_max, int(lengths.max()))
        self.length_sum += int(np.dot(lengths, counts))
        self.values.update_counts(keys, counts)

    def _update_datetimes(self, valid: pa.Array) -> np.ndarray | None:
        """Min and max of a batch; returns its epoch seconds to sketch."""
        if len(valid) == 0:
            return None
        micros = valid.cast(pa.int64()).to_numpy()
        self.min, self.max = _min(self.min, int(micros.min())), _max(self.max, int(micros.max()))
        return micros.astype(np.float64) / _MICROS

    # -- merging ---------------------------------------------------------------
    def merge(self, other: ColumnStatistics) -> ColumnStatistics:
        """A new :class:`ColumnStatistics` of both columns' values.

        An integer column merges with a float one as float; a column with no
        present values takes the other's kind.

        Raises:
            InvalidArgument: when the kinds cannot be combined.
        """
        kind, tz = self._merged_kind(other)
        out = ColumnStatistics(self.name, kind, kll_k=self.kll_k, max_exact=self._max_exact_arg(),
                               tz=tz)
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
            if src.values is not None and out.values is not None:
                out.values = out.values.merge(src.values)
        if out.kll_ is not None and not out._counts_exact:  # exact counts carry it all
            for src in (self, other):
                sketch = src.kll
                if sketch is not None and not sketch.is_empty():
                    out.kll_.merge(sketch)
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

    def _max_exact_arg(self) -> int | None:
        """``max_exact`` for a column of another kind: a default stays a default."""
        default = default_max_exact(canonical_type(self.kind, self.tz))
        return None if self.max_exact == default else self.max_exact

    def _absorb(self, other: ColumnStatistics) -> None:
        self.__dict__.update(other.__dict__)

    # -- serialising -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, sketches included (base64), that :meth:`from_dict` reads back."""
        kll = None
        if self.kll_ is not None and not self._counts_exact:  # exact counts rebuild it
            kll = base64.b64encode(self.kll_.serialize()).decode("ascii")
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
        if d.get("values") is not None and out.values is not None:
            out.values = ValueCounter.from_dict(d["values"], out.values.value_type,
                                                max_exact=out.max_exact)
        if d.get("kll") and not out._counts_exact:  # with exact counts, they are the data
            out.kll_ = ds.kll_doubles_sketch.deserialize(base64.b64decode(d["kll"]))
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


def _sketch_numbers(values: pa.Array) -> np.ndarray:
    """Counted values as the KLL sketch takes them: floats, bools as 0/1, datetimes in s."""
    if pa.types.is_timestamp(values.type):
        return values.cast(pa.int64()).to_numpy().astype(np.float64) / _MICROS
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8())
    return values.to_numpy(zero_copy_only=False).astype(np.float64)


_REPEAT_CHUNK = 1 << 20


def _update_repeated(sketch: ds.kll_doubles_sketch, x: np.ndarray, counts: np.ndarray) -> None:
    """Add each ``x[i]`` ``counts[i]`` times, in sorted runs of at most ~1M values."""
    order = np.argsort(x, kind="stable")
    x, cum = x[order], np.cumsum(counts[order])
    total = int(cum[-1]) if cum.size else 0
    for start in range(0, total, _REPEAT_CHUNK):
        pos = np.arange(start, min(start + _REPEAT_CHUNK, total))
        sketch.update(x[np.searchsorted(cum, pos, side="right")])


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
