"""Target insights: problem type, a quick model, per-feature power, leakage, outliers, anomalies.

All in NumPy (the quick model and the isolation forest in :mod:`._trees`): importing
LightGBM and scikit-learn for them took longer than the profile's whole pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kiln.core.errors import InvalidArgument
from kiln.core.progress import Progress
from kiln.prep.report._trees import BoostedTrees, isolation_scores
from kiln.prep.stats import ColumnKind, DatasetStatistics

__all__ = ["CLASSIFICATION_MAX_CLASSES", "LEAKAGE_POWER", "target_insights"]

CLASSIFICATION_MAX_CLASSES = 20
LEAKAGE_POWER = 0.95  # a feature that alone predicts the class this well (gain over majority)
LEAKAGE_R2 = 0.8  # a feature that alone explains this share of a numeric target's variance
MODEL_ROWS = 20_000
POWER_ROWS = 50_000
POWER_BINS = 64
ANOMALY_ROWS = 20_000
ANOMALY_TREES = 200  # twice scikit-learn's default: the share beyond the fence varies less from seed to seed
ANOMALY_FENCE = 3.0  # rows whose anomaly score lies beyond Q3 + 3 IQR of all scores
MAX_STRING_CATEGORIES = 200  # string features with more distinct values are ids, not signal


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
    """80/20 train/test positions, stratified by class when ``y`` is given."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    train, test = [], []
    for rows in groups:
        rows = rng.permutation(rows)
        cut = int(round(len(rows) * 0.2)) if len(rows) > 1 else 0
        test.append(rows[:cut])
        train.append(rows[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _score(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (over the classes in either array), or R², as scikit-learn
    computes them."""
    if kind == "classification":
        labels = np.union1d(y_true, y_pred)
        hit = y_true == y_pred
        tp = np.array([np.count_nonzero(hit & (y_true == c)) for c in labels], dtype=np.float64)
        true_n = np.array([np.count_nonzero(y_true == c) for c in labels], dtype=np.float64)
        pred_n = np.array([np.count_nonzero(y_pred == c) for c in labels], dtype=np.float64)
        f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros_like(tp), where=true_n + pred_n > 0)
        return {"accuracy": float(hit.mean()), "f1_macro": float(f1.mean())}
    residual = float(np.sum((y_true - y_pred) ** 2))
    spread = float(np.sum((y_true - y_true.mean()) ** 2))
    return {"r2": 1.0 - residual / spread if spread > 0 else (1.0 if residual == 0 else 0.0)}


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
                    seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Everything the profile says about ``target`` (see :func:`kiln.prep.report.profile`)."""
    progress = progress or Progress(listener=None)
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
    progress.update(0.6)
    out["outliers"] = _outliers(frame, stats, target)
    out["anomalies"] = _anomalies(x, frame, seed)
    progress.finish()
    return out


def _modelling(kind: str, x: pd.DataFrame, y: np.ndarray, seed: int,
               classes: Any) -> dict[str, Any]:
    train, test = _split(len(x), y if kind == "classification" else None, seed)
    codes = np.column_stack([_bins(x[name]) for name in x.columns])
    model = BoostedTrees(kind).fit(codes[train], y[train])
    score = _score(kind, y[test], model.predict(codes[test]))
    baseline = float(np.bincount(y[test]).max() / len(test)) if kind == "classification" else 0.0
    report: dict[str, Any] = {"model": {
        "algorithm": "gradient-boosted trees", "params": {"rounds": model.rounds, "depth": model.depth, "learning_rate": model.learning_rate, "bins": POWER_BINS},
        "train_rows": int(len(train)), "test_rows": int(len(test)),
        "metrics": score, "majority_baseline": baseline if kind == "classification" else None,
        "classes": [str(c) for c in classes] if classes is not None else None,
    }}
    # Each feature alone: the target predicted by the feature's bin (quantile bins of a
    # number, categories of a category) as learnt on the train rows, scored on the test
    # rows -- an out-of-sample correlation ratio, cheap enough for every column.
    n_power = min(len(x), POWER_ROWS)
    sub = np.random.default_rng(seed).permutation(len(x))[:n_power]
    ptrain, ptest = _split(n_power, y[sub] if kind == "classification" else None, seed)
    ptrain, ptest = sub[ptrain], sub[ptest]
    pbase = float(np.bincount(y[ptest]).max() / len(ptest)) if kind == "classification" else 0.0
    powers = []
    for j, name in enumerate(x.columns):
        if x[name].notna().sum() < 10:
            continue
        p = _single_power(kind, codes[ptrain, j], y[ptrain], codes[ptest, j], y[ptest], pbase)
        if kind == "regression" and not isinstance(x[name].dtype, pd.CategoricalDtype):
            p = max(p, _linear_power(x[name], y, ptrain, ptest))
        limit = LEAKAGE_POWER if kind == "classification" else LEAKAGE_R2
        powers.append({"column": name, "power": round(p, 4), "leakage": p >= limit})
    powers.sort(key=lambda d: -d["power"])
    report["feature_power"] = powers
    report["leakage"] = [p["column"] for p in powers if p["leakage"]]
    return report


def _bins(col: pd.Series) -> np.ndarray:
    """Small integer codes: a category's code, or a number's quantile bin; missing is 0."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(dtype=np.int64) + 1
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros(len(x), dtype=np.int64)
    edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, POWER_BINS + 1)[1:-1]))
    codes = np.searchsorted(edges, x, side="right") + 1
    return np.where(ok, codes, 0).astype(np.int64)


def _single_power(kind: str, c_train: np.ndarray, y_train: np.ndarray, c_test: np.ndarray,
                  y_test: np.ndarray, baseline: float) -> float:
    """How well one binned feature predicts the target, as :func:`_power` (R² or accuracy gain)."""
    k = int(max(c_train.max(initial=0), c_test.max(initial=0))) + 1
    if kind == "classification":
        table = np.zeros((k, int(max(y_train.max(), y_test.max())) + 1))
        np.add.at(table, (c_train, y_train), 1)
        majority = int(np.bincount(y_train).argmax())
        guess = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), majority)
        return _power(kind, _score(kind, y_test, guess[c_test]), baseline)
    counts = np.bincount(c_train, minlength=k)
    sums = np.bincount(c_train, weights=y_train, minlength=k)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), float(y_train.mean()))
    return _power(kind, _score(kind, y_test, means[c_test]), baseline)


def _linear_power(col: pd.Series, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Test R² of a straight line fitted on the train rows (bins blur heavy tails)."""
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    ok_train, ok_test = train[np.isfinite(x[train])], test[np.isfinite(x[test])]
    if len(ok_train) < 10 or len(ok_test) < 10 or np.ptp(x[ok_train]) == 0:
        return 0.0
    slope, intercept = np.polyfit(x[ok_train], y[ok_train], 1)
    pred = np.where(np.isfinite(x[test]), slope * np.nan_to_num(x[test]) + intercept,
                    float(y[train].mean()))
    return _power("regression", _score("regression", y[test], pred), 0.0)


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
    """Rows an isolation forest isolates quickly, on numeric features of the sample."""
    num = x.select_dtypes("number")
    if num.shape[1] == 0 or len(num) < 50:
        return {"count": 0, "share": 0.0, "rows_checked": 0, "examples": []}
    if len(num) > ANOMALY_ROWS:
        num = num.sample(ANOMALY_ROWS, random_state=seed)
    filled = num.fillna(num.median()).fillna(0.0).to_numpy()
    scores = isolation_scores(filled, trees=ANOMALY_TREES, seed=seed)  # higher: isolated sooner
    # The usual cut (scikit-learn's contamination="auto", score > 0.5) flags a third of
    # the rows of data with discrete columns; flag instead the rows whose score lies
    # far above the bulk's (Tukey's far-out fence on the scores): on ordinary data a
    # small share, on data with injected outliers those rows.
    q1, q3 = np.quantile(scores, [0.25, 0.75])
    threshold = float(q3 + ANOMALY_FENCE * (q3 - q1))
    flagged = scores > threshold
    scores = -scores
    worst = np.argsort(scores)[: min(5, int(flagged.sum()))]
    examples = [{"row": {k: _clean(v) for k, v in frame.loc[num.index[i]].items()},
                 "score": float(-scores[i])} for i in worst]
    return {"count": int(flagged.sum()), "share": float(flagged.mean()),
            "rows_checked": int(len(num)), "threshold": threshold,
            "rule": f"anomaly score above Q3 + {ANOMALY_FENCE:g} IQR of the scores",
            "examples": examples}
