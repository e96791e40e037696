"""Benchmark: a 10-step Kiln recipe against the same steps hand-written in pandas.

    python benchmarks/recipes.py                 # 1,000,000 rows, 9 interleaved runs each
    python benchmarks/recipes.py --rows 200000 --repeat 15

One generated table (fixed seed) is handed to both as an in-memory frame
(polars for Kiln, pandas for pandas; conversion not timed). Both fit and
apply in the same call: medians, quantiles, categories, means and bin edges
are learned from the data, then applied. Also timed: Kiln applying an
already fitted recipe. The outputs are compared, so both do the same work.
Target: Kiln at least as fast as pandas (ratio pandas / Kiln >= 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from kiln.prep.recipes import Recipe

STEPS: list[dict[str, Any]] = [
    {"op": "fill_missing", "params": {"columns": ["income", "age"], "strategy": "median"}},
    {"op": "clip_quantiles", "params": {"columns": ["income"], "lower": 0.01, "upper": 0.99}},
    {"op": "str_lower", "params": {"columns": ["city"]}},
    {"op": "one_hot", "params": {"columns": ["city"]}},
    {"op": "standard_scale", "params": {"columns": ["income", "score"]}},
    {"op": "log_transform", "params": {"columns": ["amount"], "offset": 1}},
    {"op": "date_parts", "params": {"column": "ts", "parts": ["year", "month", "weekday", "hour"]}},
    {"op": "filter", "params": {"condition": "age >= 21"}},
    {"op": "formula", "params": {"output": "ratio", "expr": "amount / (age + 1)"}},
    {"op": "bin_quantile", "params": {"columns": ["age"], "bins": 5}},
]


def make_data(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cities = np.array(["Paris", "LYON", "Nice", "lille", "Nantes", "BREST", "Metz", "Dijon"])
    income = rng.lognormal(10, 1, rows)
    income[rng.random(rows) < 0.05] = np.nan
    age = rng.integers(16, 90, rows).astype(np.float64)
    age[rng.random(rows) < 0.03] = np.nan
    return {
        "id": np.arange(rows),
        "age": age,
        "income": income,
        "score": rng.normal(50, 15, rows),
        "amount": rng.exponential(100, rows),
        "city": cities[rng.integers(0, len(cities), rows)],
        "ts": np.datetime64("2020-01-01T00:00:00", "us")
        + rng.integers(0, 4 * 365 * 86400, rows).astype("timedelta64[s]"),
    }


def pandas_recipe(df: pd.DataFrame) -> pd.DataFrame:
    """The same ten steps, as a pandas user would write them."""
    df = df.assign(
        income=df["income"].fillna(df["income"].median()), age=df["age"].fillna(df["age"].median())
    )
    low, high = df["income"].quantile([0.01, 0.99])
    df["income"] = df["income"].clip(low, high)
    df["city"] = df["city"].str.lower()
    df = pd.concat(
        [df.drop(columns="city"), pd.get_dummies(df["city"], prefix="city", dtype="int8")], axis=1
    )
    for col in ("income", "score"):
        df[col] = (df[col] - df[col].mean()) / df[col].std(ddof=0)
    df["amount"] = np.log(df["amount"] + 1)
    ts = df["ts"].dt
    df["ts_year"], df["ts_month"] = ts.year, ts.month
    df["ts_weekday"], df["ts_hour"] = ts.day_of_week + 1, ts.hour
    df = df[df["age"] >= 21]
    df["ratio"] = df["amount"] / (df["age"] + 1)
    edges = df["age"].quantile(np.linspace(0, 1, 6)).to_numpy()
    df["age_bin"] = np.searchsorted(edges[1:-1], df["age"].to_numpy(), side="right")
    return df


def timed(repeat: int, **runs: Callable[[], Any]) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall times of each run, interleaved so that all share the machine's moods."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    last: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            start = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, last


def check_same(kiln_out: pl.DataFrame, pandas_out: pd.DataFrame) -> None:
    assert kiln_out.height == len(pandas_out), (kiln_out.height, len(pandas_out))
    for col in ("income", "score", "amount", "ratio", "city_paris", "ts_weekday", "age_bin"):
        np.testing.assert_allclose(
            kiln_out[col].to_numpy().astype(float),
            pandas_out[col].to_numpy().astype(float),
            rtol=1e-9,
            atol=1e-9,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    data = make_data(args.rows)
    frame_pl = pl.DataFrame(data).with_columns(
        pl.col("age").fill_nan(None).cast(pl.Int64), pl.col("income").fill_nan(None)
    )
    frame_pd = pd.DataFrame(data)
    recipe = Recipe(STEPS)
    recipe.validate(frame_pl.schema)

    fitted = recipe.fit(frame_pl)
    times, last = timed(
        args.repeat,
        kiln=lambda: recipe.fit_apply(frame_pl),
        pandas=lambda: pandas_recipe(frame_pd),
        apply=lambda: fitted.apply(frame_pl),
    )
    check_same(last["kiln"][1], last["pandas"])

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"rows: {args.rows:,}   steps: {len(STEPS)}   runs: {args.repeat} (interleaved)   "
        f"cores: {os.cpu_count()}   polars threads: {pl.thread_pool_size()}   load: {load}"
    )
    rows = [
        ("pandas " + pd.__version__ + " fit+apply", "pandas"),
        ("kiln fit+apply (polars " + pl.__version__ + ")", "kiln"),
        ("kiln apply (already fitted)", "apply"),
    ]
    print(f"{'':36s} {'best':>8s} {'median':>8s}")
    for label, key in rows:
        print(f"{label:36s} {min(times[key]):7.3f}s {statistics.median(times[key]):7.3f}s")
    for label, key in (("fit+apply", "kiln"), ("apply", "apply")):
        best = min(times["pandas"]) / min(times[key])
        med = statistics.median(times["pandas"]) / statistics.median(times[key])
        print(f"ratio pandas / kiln {label:16s} {best:7.2f}x {med:7.2f}x   (target >= 1)")


if __name__ == "__main__":
    main()
