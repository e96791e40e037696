"""Helpers shared by the benchmark scripts (not part of Kiln)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kiln
from kiln.core.config import load_settings


def timed(fn: Callable[[], Any], *, repeat: int = 3) -> tuple[float, list[float]]:
    """Median wall time of ``repeat`` runs (and all of them, to show the noise)."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs


def compare(a: Callable[[], Any], b: Callable[[], Any], *, repeat: int = 5) -> tuple[tuple[float, list[float]], tuple[float, list[float]]]:
    """Time ``a`` and ``b`` alternately (a b b a a b ...) so machine noise hits both alike."""
    runs_a: list[float] = []
    runs_b: list[float] = []
    for i in range(repeat):
        order = [(a, runs_a), (b, runs_b)] if i % 2 == 0 else [(b, runs_b), (a, runs_a)]
        for fn, runs in order:
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
    return (statistics.median(runs_a), runs_a), (statistics.median(runs_b), runs_b)


def fresh_client() -> kiln.Client:
    home = Path(tempfile.mkdtemp(prefix="kiln-bench-"))
    return kiln.Client(settings=load_settings(home=str(home)))


def show(label: str, seconds: float, runs: list[float], extra: str = "") -> None:
    spread = ", ".join(f"{r:.3f}" for r in runs)
    print(f"{label:<44} {seconds:8.3f} s  [{spread}] {extra}")
