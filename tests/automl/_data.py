"""Small datasets with every kind of column AutoML types (numbers, categories of low and
high cardinality with missing values, dates, free text, an all-null column)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixed(n: int = 240, *, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    city = np.array([f"city{i % 45}" for i in rng.integers(0, 1000, size=n)], dtype=object)
    words = np.array(["great", "poor", "fine", "broken", "lovely", "awful", "quick", "slow"])
    text = [" ".join(rng.choice(words, size=6)) for _ in range(n)]
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, size=n), unit="h")
    signal = 1.5 * x + (color == "red") * 1.2 + np.array(["great" in t for t in text]) * 1.0 + 0.2 * rng.normal(size=n)
    frame = pd.DataFrame({
        "x": x, "color": color, "city": city, "review": text, "when": when.astype(str), "empty": [None] * n,
        "count": rng.integers(0, 5, size=n),
    })
    frame.loc[rng.choice(n, size=n // 10, replace=False), "color"] = None
    frame.loc[rng.choice(n, size=n // 10, replace=False), "x"] = np.nan
    if task == "binary":
        frame["label"] = np.where(signal > np.median(signal), "yes", "no")
    elif task == "multiclass":
        frame["label"] = pd.cut(signal, 3, labels=["low", "mid", "high"]).astype(str)
    else:
        frame["label"] = signal * 10 + 3
    return frame
