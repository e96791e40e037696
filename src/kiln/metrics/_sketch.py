"""A small mergeable quantile sketch with relative accuracy (the DDSketch algorithm).

A value ``v`` is counted in the log-spaced bucket ``ceil(log_gamma(|v|))`` with
``gamma = (1 + a) / (1 - a)``; any quantile read back is within ``a`` (1%) of the true
value's magnitude, whatever the distribution, and two sketches merge exactly by adding
their bucket counts. That is what a latency p99 needs (a rank-error sketch such as KLL may
answer p97.5 for p99 on a heavy tail). Stored as compact JSON in the metadata database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["ACCURACY", "Sketch"]

ACCURACY = 0.01
_GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_TINY = 1e-9  # magnitudes below this count as zero
_MAX_BINS = 2048  # per sign; beyond it the buckets nearest zero are folded together


class Sketch:
    """Counts per log bucket, for positive and negative values, plus a zero count."""

    __slots__ = ("neg", "pos", "zero")

    def __init__(self) -> None:
        self.pos: dict[int, float] = {}
        self.neg: dict[int, float] = {}
        self.zero = 0.0

    def add(self, value: float, count: float = 1.0) -> None:
        mag = abs(value)
        if mag < _TINY:
            self.zero += count
            return
        key = math.ceil(math.log(mag) / _LOG_GAMMA)
        bins = self.pos if value > 0 else self.neg
        bins[key] = bins.get(key, 0.0) + count
        if len(bins) > _MAX_BINS:
            _collapse(bins)

    def merge(self, other: Sketch) -> Sketch:
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for k, c in theirs.items():
                mine[k] = mine.get(k, 0.0) + c
            if len(mine) > _MAX_BINS:
                _collapse(mine)
        self.zero += other.zero
        return self

    @property
    def count(self) -> float:
        return self.zero + sum(self.pos.values()) + sum(self.neg.values())

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1) by the nearest-rank definition (the smallest value
        with at least ``q`` of the count at or below it; numpy's ``inverted_cdf``), within
        :data:`ACCURACY`; None when empty."""
        total = self.count
        if total <= 0:
            return None
        rank = max(math.ceil(q * total - 1e-9), 1e-12)
        seen = 0.0
        for key in sorted(self.neg, reverse=True):  # most negative first
            seen += self.neg[key]
            if seen >= rank:
                return -_value(key)
        seen += self.zero
        if seen >= rank:
            return 0.0
        for key in sorted(self.pos):
            seen += self.pos[key]
            if seen >= rank:
                return _value(key)
        return _value(max(self.pos)) if self.pos else (0.0 if self.zero else -_value(min(self.neg)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pos:
            out["p"] = [[k, c] for k, c in self.pos.items()]
        if self.neg:
            out["n"] = [[k, c] for k, c in self.neg.items()]
        if self.zero:
            out["z"] = self.zero
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Sketch:
        sk = cls()
        if data:
            sk.pos = {int(k): float(c) for k, c in data.get("p", ())}
            sk.neg = {int(k): float(c) for k, c in data.get("n", ())}
            sk.zero = float(data.get("z", 0.0))
        return sk

    @classmethod
    def of(cls, values: Iterable[tuple[float, float]]) -> Sketch:
        sk = cls()
        for v, c in values:
            sk.add(v, c)
        return sk


def _value(key: int) -> float:
    """The bucket's representative: within ACCURACY of every value the bucket holds."""
    return 2.0 * _GAMMA**key / (_GAMMA + 1.0)


def _collapse(bins: dict[int, float]) -> None:
    keys = sorted(bins)
    extra = len(keys) - _MAX_BINS + 1
    folded = sum(bins.pop(k) for k in keys[:extra])
    top = keys[extra]
    bins[top] = bins.get(top, 0.0) + folded
