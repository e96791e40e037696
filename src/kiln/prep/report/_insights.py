"""Target insights: problem type, a quick model, per-feature power, leakage, outliers, anomalies."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kiln.core.errors import InvalidArgument
from kiln.prep.stats import ColumnKind, DatasetStatistics

__all__ = ["CLASSIFICATION_MAX_CLASSES", "LEAKAGE_POWER", "target_insights"]

CLASSIFICATION_MAX_CLASSES = 20
LEAKAGE_POWER = 0.95  # a feature that alone explains this much of the target
MODEL_ROWS = 100_000
POWER_ROWS = 20_000
ANOMALY_ROWS = 20_000
MAX_STRING_CATEGORIES = 200  # string features with more distinct values are ids, not signal


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "target insights train a LightGBM model; install it with: pip install 'kiln[ml]'"
        ) from exc
    return lightgbm


def problem_type(stats: DatasetStatistics, target: str) -> str:
    """``classification`` for non-numeric targets or numbers with few distinct values, else
    ``regression`` (an integer count with hundreds of values is a regression target)."""
    col = stats[target]
    if col.kind in (ColumnKind.STRING, ColumnKind.BOOL):
        return "classification"
    if col.kind.is_numeric:
        distinct = col.distinct or 0
        return "classification" if distinct <= CLASSIFICATION_MAX_CLASSES else "regression"
    raise InvalidArgument(f"target {target!r} is {col.kind.value}; a target must be a number, "
                          "a bool or a string")


def _features(frame: pd.DataFrame, stats: DatasetStatistics, target: str) -> pd.DataFrame:
    """Model-ready features: numbers as float, datetimes as epoch seconds, strings as category."""
    out = {}
    for name in frame.columns:
        if name == target:
            continue
        kind = stats[name].kind
        s = frame[name]
        if kind.is_numeric or kind is ColumnKind.BOOL:
            out[name] = pd.to_numeric(s, errors="coerce").astype("float64") \
                .replace([np.inf, -np.inf], np.nan)
        elif kind is ColumnKind.DATETIME:
            out[name] = pd.to_datetime(s, utc=True).astype("int64").where(s.notna()) / 1e9
        elif kind is ColumnKind.STRING and s.nunique() <= MAX_STRING_CATEGORIES:
            out[name] = s.astype("category")
    return pd.DataFrame(out, index=frame.index)


def _split(n: int, y: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    strat = None
    if y is not None:
        _, counts = np.unique(y, return_counts=True)
        strat = y if counts.min() >= 2 and len(counts) > 1 else None
    return train_test_split(idx, test_size=0.2, random_state=seed, stratify=strat)


def _score(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    if kind == "classification":
        return {"accuracy": float(accuracy_score(y_true, y_pred)),
                "f1_macro": float(f1_score(y_true, y_pred, average="macro"))}
    return {"r2": float(r2_score(y_true, y_pred))}


def _model(kind: str, seed: int, rows: int, **params: Any) -> Any:
    lgb = _lightgbm()
    cls = lgb.LGBMClassifier if kind == "classification" else lgb.LGBMRegressor
    # OpenMP threads only pay off on larger data; on small data (and on busy
    # machines, where idle threads spin) one thread is several times faster.
    return cls(random_state=seed, verbose=-1, n_jobs=2 if rows > 50_000 else 1, **params)


def _power(kind: str, score: dict[str, float], baseline: float) -> float:
    """A score normalised to 0..1: accuracy above the majority class, or R²."""
    if kind == "classification":
        gain = (score["accuracy"] - baseline) / (1.0 - baseline) if baseline < 1 else 0.0
        return float(min(max(gain, 0.0), 1.0))
    return float(min(max(score["r2"], 0.0), 1.0))


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _clean(v.item())
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def target_insights(stats: DatasetStatistics, sample: pa.Table, target: str, *,
                    seed: int = 0) -> dict[str, Any]:
    """Everything the profile says about ``target`` (see :func:`kiln.prep.report.profile`)."""
    kind = problem_type(stats, target)
    col = stats[target]
    frame = sample.to_pandas()
    frame = frame[frame[target].notna()]
    if kind == "regression":
        frame = frame[np.isfinite(frame[target].astype("float64"))]
    if len(frame) > MODEL_ROWS:
        frame = frame.sample(MODEL_ROWS, random_state=seed)
    frame = frame.reset_index(drop=True)
    if kind == "classification":
        y, classes = pd.factorize(frame[target], sort=True)
        dist: dict[str, Any] = {"kind": "categorical",
                                "values": [[_clean(v), c] for v, c in col.top_values(20)]}
    else:
        y, classes = frame[target].to_numpy(dtype=np.float64), None
        edges, counts = col.histogram(20) or ([], [])
        dist = {"kind": "histogram", "edges": edges, "counts": counts}
    x = _features(frame, stats, target)
    out: dict[str, Any] = {"target": target, "problem_type": kind, "distribution": dist,
                           "rows_used": int(len(frame)), "model": None, "feature_power": [],
                           "leakage": []}
    if len(frame) >= 20 and x.shape[1] and len(np.unique(y)) > 1:
        out.update(_modelling(kind, x, y, seed, classes))
    out["outliers"] = _outliers(frame, stats, target)
    out["anomalies"] = _anomalies(x, frame, seed)
    return out


def _modelling(kind: str, x: pd.DataFrame, y: np.ndarray, seed: int,
               classes: Any) -> dict[str, Any]:
    train, test = _split(len(x), y if kind == "classification" else None, seed)
    model = _model(kind, seed, len(train), n_estimators=100, learning_rate=0.1, num_leaves=31)
    model.fit(x.iloc[train], y[train])
    score = _score(kind, y[test], model.predict(x.iloc[test]))
    baseline = float(np.bincount(y[test]).max() / len(test)) if kind == "classification" else 0.0
    report: dict[str, Any] = {"model": {
        "algorithm": "lightgbm", "train_rows": int(len(train)), "test_rows": int(len(test)),
        "metrics": score, "majority_baseline": baseline if kind == "classification" else None,
        "classes": [str(c) for c in classes] if classes is not None else None,
    }}
    # Each feature alone, on a smaller sample: a shallow model is enough to tell
    # "explains the target by itself" (leakage) from "helps".
    n_power = min(len(x), POWER_ROWS)
    sub = np.random.default_rng(seed).permutation(len(x))[:n_power]
    ptrain, ptest = _split(n_power, y[sub] if kind == "classification" else None, seed)
    ptrain, ptest = sub[ptrain], sub[ptest]
    pbase = float(np.bincount(y[ptest]).max() / len(ptest)) if kind == "classification" else 0.0
    powers = []
    for name in x.columns:
        single = x[[name]]
        if single[name].notna().sum() < 10:
            continue
        m = _model(kind, seed, len(ptrain), n_estimators=30, learning_rate=0.2, num_leaves=8,
                   max_depth=3)
        m.fit(single.iloc[ptrain], y[ptrain])
        p = _power(kind, _score(kind, y[ptest], m.predict(single.iloc[ptest])), pbase)
        powers.append({"column": name, "power": round(p, 4), "leakage": p >= LEAKAGE_POWER})
    powers.sort(key=lambda d: -d["power"])
    report["feature_power"] = powers
    report["leakage"] = [p["column"] for p in powers if p["leakage"]]
    return report


def _outliers(frame: pd.DataFrame, stats: DatasetStatistics, target: str) -> list[dict[str, Any]]:
    """Values beyond median ± 5 robust std (1.4826 · MAD), per numeric column, on the sample."""
    out = []
    for name in frame.columns:
        if not stats[name].kind.is_numeric:
            continue
        x = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        x = x[np.isfinite(x)]
        if x.size < 10:
            continue
        med = float(np.median(x))
        rstd = 1.4826 * float(np.median(np.abs(x - med)))
        if rstd == 0:
            continue
        lo, hi = med - 5 * rstd, med + 5 * rstd
        n = int(np.count_nonzero((x < lo) | (x > hi)))
        if n:
            out.append({"column": name, "count": n, "share": n / x.size, "median": med,
                        "robust_std": rstd, "low": lo, "high": hi})
    out.sort(key=lambda d: -d["share"])
    return out


def _anomalies(x: pd.DataFrame, frame: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Rows an IsolationForest isolates quickly, on numeric features of the sample."""
    from sklearn.ensemble import IsolationForest

    num = x.select_dtypes("number")
    if num.shape[1] == 0 or len(num) < 50:
        return {"count": 0, "share": 0.0, "rows_checked": 0, "examples": []}
    if len(num) > ANOMALY_ROWS:
        num = num.sample(ANOMALY_ROWS, random_state=seed)
    filled = num.fillna(num.median()).fillna(0.0).to_numpy()
    forest = IsolationForest(n_estimators=100, random_state=seed, n_jobs=1).fit(filled)
    scores = forest.score_samples(filled)
    flagged = forest.predict(filled) == -1
    worst = np.argsort(scores)[: min(5, int(flagged.sum()))]
    examples = [{"row": {k: _clean(v) for k, v in frame.loc[num.index[i]].items()},
                 "score": float(-scores[i])} for i in worst]
    return {"count": int(flagged.sum()), "share": float(flagged.mean()),
            "rows_checked": int(len(num)), "examples": examples}
