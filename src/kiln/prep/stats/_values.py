"""Distinct counts and top values: exact while few, sketched past a limit."""

from __future__ import annotations

import base64
from typing import Any

import datasketches as ds
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kiln.prep.stats._hll import registers, sketch_from_registers

__all__ = ["ValueCounter", "default_max_exact"]

DEFAULT_MAX_EXACT = 10_000  # numbers: sketching them is cheap (vectorised hashes, KLL)
DEFAULT_MAX_EXACT_STRINGS = 65_536  # strings go through the sketches one by one
HLL_LG_K = 14  # ~0.8% relative standard error; 8-16 KiB per high-cardinality column
FREQUENT_LG_MAX_MAP = 10  # tracks ~768 heavy hitters per string column
_PROBE = 4096  # values looked at before paying for a batch's distinct count


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _numbers(values: pa.Array) -> np.ndarray:
    """Numbers as DataSketches hashes them (datetimes as int64 micros, bools as 0/1)."""
    if pa.types.is_timestamp(values.type) or pa.types.is_boolean(values.type):
        values = values.cast(pa.int64())
    return values.to_numpy(zero_copy_only=False)


def _py(values: pa.Array) -> list[Any]:
    """Python values as sketches hash them: datetimes as int64 micros, so both sides agree."""
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.int64())
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return values.to_numpy(zero_copy_only=False).tolist()
    if pa.types.is_boolean(values.type):
        return [int(v) for v in values.to_pylist()]
    return values.to_pylist()


def default_max_exact(value_type: pa.DataType | None) -> int:
    """Distinct values counted exactly by default: more for strings, whose sketches cost more."""
    return DEFAULT_MAX_EXACT_STRINGS if value_type is not None and pa.types.is_string(value_type) \
        else DEFAULT_MAX_EXACT


class ValueCounter:
    """Counts of each value while there are at most ``max_exact`` distinct values.

    Past that it switches, once and for good, to an HLL sketch for the distinct
    count and (for strings) a frequent-items sketch for the top values. Both
    modes merge with each other; :attr:`exact` says which one holds. Numbers
    update HLL registers a whole array at a time (see ``_hll``); strings go
    through DataSketches item by item.

    Args:
        value_type: the canonical Arrow type of the values counted.
        max_exact: how many distinct values are counted exactly.
    """

    def __init__(self, value_type: pa.DataType, *, max_exact: int = DEFAULT_MAX_EXACT) -> None:
        self.value_type = value_type
        self.max_exact = max_exact
        self.values_: pa.Array | None = pa.array([], type=value_type)
        self.counts_: np.ndarray | None = np.zeros(0, dtype=np.int64)
        self.hll_: ds.hll_sketch | None = None
        self.regs_: np.ndarray | None = None  # numbers: registers not yet folded into hll_
        self.frequent_: ds.frequent_strings_sketch | None = None

    @property
    def exact(self) -> bool:
        return self.values_ is not None

    @property
    def _is_string(self) -> bool:
        return pa.types.is_string(self.value_type)

    # -- building --------------------------------------------------------------
    def update(self, values: pa.Array) -> None:
        """Count an array of non-null values of ``value_type``."""
        if len(values) == 0:
            return
        if not self.exact and not self._is_string:
            self._add_sketch(values, None)  # registers take every value; no dedup needed
            return
        if not self._is_string and len(values) > self.max_exact:
            regs = self._registers_if_distinct(values)
            if regs is not None:
                # The batch alone has too many distinct numbers: sketch from here on,
                # starting from the registers that told so.
                self._to_sketch()
                self.regs_ = regs if self.regs_ is None else np.maximum(self.regs_, regs)
                return
        vc = pc.value_counts(values)
        keys, counts = vc.field("values"), vc.field("counts").to_numpy().astype(np.int64)
        if self.exact:
            self._add_exact(keys, counts)
        else:
            self._add_sketch(keys, counts)

    def update_counts(self, keys: pa.Array, counts: np.ndarray) -> None:
        """Count values already counted: ``counts[i]`` occurrences of ``keys[i]``."""
        if len(keys) == 0:
            return
        if keys.type != self.value_type:
            keys = keys.cast(self.value_type)
        if self.exact:
            self._add_exact(keys, np.asarray(counts, dtype=np.int64))
        else:
            self._add_sketch(keys, np.asarray(counts, dtype=np.int64))

    def _registers_if_distinct(self, values: pa.Array) -> np.ndarray | None:
        """The batch's HLL registers when it surely holds over ``max_exact`` distinct numbers.

        A distinct count of a small slice says whether to look (cheap); if so,
        the registers' estimate decides, with a 20% margin (~25 standard errors).
        """
        if pc.count_distinct(values.slice(0, _PROBE)).as_py() <= _PROBE // 2:
            return None
        regs = registers(_numbers(values), HLL_LG_K)
        if sketch_from_registers(regs, HLL_LG_K).get_estimate() <= 1.2 * self.max_exact:
            return None
        return regs

    def _add_exact(self, keys: pa.Array, counts: np.ndarray) -> None:
        assert self.values_ is not None and self.counts_ is not None
        if len(self.values_):
            # Encode both key sets into one dictionary and add counts by index: far
            # cheaper than a group-by plan for the few thousand keys kept here.
            both = pc.dictionary_encode(pa.concat_arrays([self.values_, keys]))
            summed = np.bincount(both.indices.to_numpy(),
                                 weights=np.concatenate([self.counts_, counts]),
                                 minlength=len(both.dictionary))
            keys, counts = both.dictionary, summed.astype(np.int64)  # exact below 2**53
        self.values_, self.counts_ = keys, counts.astype(np.int64, copy=False)
        if len(keys) > self.max_exact:
            self._to_sketch()

    def _to_sketch(self) -> None:
        keys, counts = self.values_, self.counts_
        self.values_ = self.counts_ = None
        if self._is_string:
            self.hll_ = ds.hll_sketch(HLL_LG_K)
            self.frequent_ = ds.frequent_strings_sketch(FREQUENT_LG_MAX_MAP)
        self._add_sketch(keys, counts)

    def _add_sketch(self, keys: pa.Array | None, counts: np.ndarray | None) -> None:
        if keys is None or len(keys) == 0:
            return
        if not self._is_string:
            regs = registers(_numbers(keys), HLL_LG_K)
            self.regs_ = regs if self.regs_ is None else np.maximum(self.regs_, regs)
            return
        py = keys.to_pylist()
        # any(map(...)) runs the per-item calls in C; the updates return None.
        any(map(self.hll_.update, py))
        if counts is not None:
            any(map(self.frequent_.update, py, counts.tolist()))

    def hll(self) -> ds.hll_sketch | None:
        """The DataSketches HLL sketch of every value (None in exact mode)."""
        if self.exact:
            return None
        if self.regs_ is None:
            return self.hll_
        regs = sketch_from_registers(self.regs_, HLL_LG_K)
        if self.hll_ is None:
            return regs
        union = ds.hll_union(HLL_LG_K)
        union.update(self.hll_)
        union.update(regs)
        return union.get_result()

    # -- merging ---------------------------------------------------------------
    def merge(self, other: ValueCounter) -> ValueCounter:
        """A new counter holding both counters' values."""
        out = ValueCounter(self.value_type, max_exact=max(self.max_exact, other.max_exact))
        out.values_, out.counts_ = self.values_, self.counts_
        if not self.exact:
            out.hll_ = _copy_hll(self.hll_)
            out.regs_ = None if self.regs_ is None else self.regs_.copy()
            if self.frequent_ is not None:
                out.frequent_ = ds.frequent_strings_sketch.deserialize(self.frequent_.serialize())
        if other.exact:
            keys = other.values_.cast(self.value_type) if other.values_.type != self.value_type \
                else other.values_
            if out.exact:
                out._add_exact(keys, other.counts_)
            else:
                out._add_sketch(keys, other.counts_)
            return out
        if out.exact:
            out._to_sketch()
        if other.regs_ is not None:
            out.regs_ = other.regs_.copy() if out.regs_ is None else \
                np.maximum(out.regs_, other.regs_)
        if other.hll_ is not None:
            if out.hll_ is None:
                out.hll_ = _copy_hll(other.hll_)
            else:
                union = ds.hll_union(HLL_LG_K)
                union.update(out.hll_)
                union.update(other.hll_)
                out.hll_ = union.get_result()
        if out.frequent_ is not None and other.frequent_ is not None:
            out.frequent_.merge(other.frequent_)
        return out

    # -- reading ---------------------------------------------------------------
    @property
    def distinct(self) -> float:
        """Distinct values: exact in exact mode, the HLL estimate past it."""
        if self.exact:
            return float(len(self.values_))
        return float(self.hll().get_estimate())

    def top(self, n: int = 10) -> list[tuple[Any, int]]:
        """The ``n`` most frequent values with their counts, most frequent first.

        In sketch mode, only strings keep top values, and only those the
        frequent-items sketch is sure of (counts are estimates).
        """
        if self.exact:
            if not len(self.values_) or n <= 0:
                return []
            k = min(n, len(self.counts_))
            # Every value tied with the k-th count is a candidate; ties then go
            # by value, so the answer does not depend on how rows were batched.
            kth = np.partition(self.counts_, len(self.counts_) - k)[len(self.counts_) - k]
            cand = np.flatnonzero(self.counts_ >= kth)
            table = pa.table({"c": self.counts_[cand], "v": self.values_.take(pa.array(cand))})
            table = table.sort_by([("c", "descending"), ("v", "ascending")]).slice(0, k)
            return list(zip(table.column("v").to_pylist(), table.column("c").to_pylist(),
                            strict=True))
        if self.frequent_ is None:
            return []
        items = self.frequent_.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_POSITIVES)
        return [(item, int(est)) for item, est, *_ in items[:n]]

    def items(self) -> tuple[pa.Array, np.ndarray] | None:
        """All (values, counts) in exact mode, None past it."""
        if not self.exact:
            return None
        return self.values_, self.counts_

    # -- serialising -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if self.exact:
            return {"mode": "exact", "values": _py(self.values_) if not
                    pa.types.is_boolean(self.value_type) else self.values_.to_pylist(),
                    "counts": self.counts_.tolist()}
        out = {"mode": "sketch", "hll": _b64(self.hll().serialize_compact())}
        if self.frequent_ is not None:
            out["frequent"] = _b64(self.frequent_.serialize())
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], value_type: pa.DataType, *,
                  max_exact: int = DEFAULT_MAX_EXACT) -> ValueCounter:
        out = cls(value_type, max_exact=max_exact)
        if d["mode"] == "exact":
            raw = pa.array(d["values"], type=pa.int64() if pa.types.is_timestamp(value_type)
                           else value_type)
            out.values_ = raw.cast(value_type)
            out.counts_ = np.asarray(d["counts"], dtype=np.int64)
            return out
        out.values_ = out.counts_ = None
        out.hll_ = ds.hll_sketch.deserialize(_unb64(d["hll"]))
        if "frequent" in d:
            out.frequent_ = ds.frequent_strings_sketch.deserialize(_unb64(d["frequent"]))
        return out


def _copy_hll(sketch: ds.hll_sketch | None) -> ds.hll_sketch | None:
    return None if sketch is None else ds.hll_sketch.deserialize(sketch.serialize_compact())
