"""Per-call latency of Servable.invoke() on one CSV row: the framework's predict vs the fast path.

Not part of `make test`. For LogisticRegression, a 100-tree RandomForest and LightGBM (100
trees) on 20 generated features, prints the median and p99 of invoke() in microseconds with
fast_path=False and True, beside the bare in-process predict on one numpy row.

    .venv/bin/python benchmarks/serving_runtime.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def timings(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    for _ in range(min(200, calls)):
        fn()
    samples = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    return statistics.median(samples) / 1e3, samples[int(len(samples) * 0.99)] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    import lightgbm as lgb
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from kiln.registry import package_model
    from kiln.serving._runtime import Servable

    X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    models = {
        "LogisticRegression": LogisticRegression(max_iter=1000).fit(X, y),
        "RandomForest(100)": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y),
        "LightGBM(100)": lgb.LGBMClassifier(n_estimators=100, verbose=-1).fit(X, y),
    }
    row = X[7:8]
    body = ",".join(repr(float(v)) for v in row[0]).encode()
    print(f"{'model':<20} {'predict p50':>12} {'framework p50/p99':>20} {'fast p50/p99':>16}  fast path")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            folder = Path(tmp) / name
            package_model(model, folder, sample_input=X[:5])
            slow = Servable.load(folder, trusted=False, fast_path=False)
            fast = Servable.load(folder, trusted=False)
            assert fast.invoke(body, "text/csv", None).body == slow.invoke(body, "text/csv", None).body
            calls = args.calls if name != "RandomForest(100)" else max(50, args.calls // 20)
            bare, _ = timings(lambda m=model: m.predict(row), calls)
            s50, s99 = timings(lambda s=slow: s.invoke(body, "text/csv", None), calls)
            f50, f99 = timings(lambda s=fast: s.invoke(body, "text/csv", None), args.calls)
            print(f"{name:<20} {bare:>10.1f}µs {s50:>9.1f}/{s99:<8.1f}µs {f50:>7.1f}/{f99:<7.1f}µs  {fast.fast_path}")
    print(f"numpy: {np.__version__}")


if __name__ == "__main__":
    main()
