"""Mergeable central moments (Chan et al. / Pébay), so chunk statistics combine exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Moments"]


@dataclass(frozen=True)
class Moments:
    """Count, mean and the 2nd-4th central moment sums of a set of finite numbers.

    Merging two ``Moments`` gives what one pass over both sets would, up to
    rounding; this is what makes statistics of chunks combine.
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """Moments of a float64 array of finite values."""
        n = int(x.size)
        if n == 0:
            return cls()
        mean = float(x.mean())
        d = x - mean
        d2 = d * d
        return cls(n, mean, float(d2.sum()), float((d2 * d).sum()), float((d2 * d2).sum()))

    def merge(self, other: Moments) -> Moments:
        """Combine with another set's moments (Pébay 2008, eqs. 2.1-2.3)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        na, nb = float(self.n), float(other.n)
        n = na + nb
        d = other.mean - self.mean
        d_n = d / n
        mean = self.mean + d_n * nb
        m2 = self.m2 + other.m2 + d * d_n * na * nb
        m3 = (
            self.m3 + other.m3
            + d * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4 + other.m4
            + d * d_n ** 3 * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * d_n * (na * other.m3 - nb * self.m3)
        )
        return Moments(self.n + other.n, mean, m2, m3, m4)

    def variance(self, ddof: int = 1) -> float | None:
        """Variance with ``ddof`` delta degrees of freedom; None when undefined."""
        if self.n - ddof <= 0:
            return None
        return max(self.m2, 0.0) / (self.n - ddof)

    def std(self, ddof: int = 1) -> float | None:
        var = self.variance(ddof)
        return None if var is None else math.sqrt(var)

    @property
    def skewness(self) -> float | None:
        """Bias-adjusted sample skewness (G1), as pandas' ``Series.skew``."""
        n = self.n
        if n < 3 or self.m2 <= 0.0:
            return None
        g1 = math.sqrt(n) * self.m3 / self.m2 ** 1.5
        return g1 * math.sqrt(n * (n - 1)) / (n - 2)

    @property
    def kurtosis(self) -> float | None:
        """Bias-adjusted excess kurtosis (G2), as pandas' ``Series.kurt``."""
        n = self.n
        if n < 4 or self.m2 <= 0.0:
            return None
        g2 = n * self.m4 / (self.m2 * self.m2) - 3.0
        return (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2, "m3": self.m3, "m4": self.m4}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Moments:
        return cls(int(d["n"]), float(d["mean"]), float(d["m2"]), float(d["m3"]), float(d["m4"]))
