"""The AutoML search: problem inference, cross-validated candidates under a time budget,
tuning of the best families, and greedy ensemble selection (Caruana et al., 2004) on the
out-of-fold predictions.

Every candidate is fitted on the same folds; its model is the average of its fold
models (bagging, as AutoGluon does), so nothing is refitted after the search and the
time budget holds. Runs in the job's engine process (:mod:`kiln.automl._engine`), never
in the API process.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kiln.automl._base import METRICS, Metric, default_metric
from kiln.automl._frame import infer_schema, prepare, prepared_columns
from kiln.automl._space import HIGH_CARDINALITY, families_available, fit_fold, initial_candidates, sample_params

__all__ = ["AutoMLInputError", "Candidate", "SearchConfig", "SearchResult", "infer_problem", "make_folds", "search"]

MIN_ROWS = 10
ENSEMBLE_ROUNDS = 40
ENSEMBLE_POOL = 12
ENSEMBLE_ROWS = 20_000
KEEP_MODELS = 16
PARALLEL_CELLS = 2_000_000
CANDIDATE_SHARE = 0.6


class AutoMLInputError(ValueError):
    """Input AutoML cannot learn from, with a message that says what to do."""


@dataclass
class SearchConfig:
    target: str
    problem_type: str | None = None
    metric: str | None = None
    deadline: float = 0.0  # time.time() when the search must end (the caller reserves what follows)
    mode: str = "Ensembling"
    n_jobs: int = 1
    seed: int = 0
    max_candidates: int | None = None


@dataclass
class Candidate:
    """One evaluated candidate: its definition, its cross-validated score and timings."""

    id: str
    family: str
    params: dict[str, Any]
    score: float = float("nan")
    fit_s: float = 0.0
    predict_s_per_1k: float = 0.0
    rounds: list[int] | None = None
    threads: int = 1
    save_s: float = 0.0
    status: str = "ok"
    note: str = ""
    oof: Any = None
    models: list[Any] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "family": self.family, "params": _jsonable(self.params), "score": _num(self.score),
                "fit_s": round(self.fit_s, 3), "predict_s_per_1k": round(self.predict_s_per_1k, 4), "rounds": self.rounds,
                "status": self.status, "note": self.note}


@dataclass
class SearchResult:
    problem_type: str
    metric: str
    classes: list[Any] | None
    schema: dict[str, Any]
    columns: dict[str, list[str]]
    folds: list[tuple[Any, Any]]
    candidates: list[Candidate]
    ensemble: dict[str, float]  # candidate id -> weight
    ensemble_score: float
    baseline_score: float
    n_rows: int
    n_jobs: int
    seed: int
    y: Any
    target_summary: dict[str, Any]

    def member(self, cid: str) -> Candidate:
        return next(c for c in self.candidates if c.id == cid)


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def infer_problem(y: Any) -> str:
    """Autopilot's inference: a numeric target with many distinct values is a regression;
    two values, binary; otherwise multiclass."""
    import pandas as pd

    values = pd.Series(y).dropna()
    unique = values.nunique()
    if unique == 2:
        return "BinaryClassification"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
        if not integral or unique > max(20, int(0.05 * len(values))):
            return "Regression"
    return "MulticlassClassification"


def _check_target(frame: Any, cfg: SearchConfig) -> tuple[Any, str, str]:
    import pandas as pd

    if cfg.target not in frame.columns:
        close = [c for c in frame.columns if str(c).lower() == cfg.target.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AutoMLInputError(f"the data has no column {cfg.target!r}{hint}; columns: {', '.join(map(str, list(frame.columns)[:20]))}")
    y = frame[cfg.target]
    labelled = int(y.notna().sum())
    if labelled == 0:
        raise AutoMLInputError(f"target column {cfg.target!r} has no values; pick the column to predict with --target")
    if labelled < MIN_ROWS:
        raise AutoMLInputError(f"only {labelled} rows have a value in {cfg.target!r}; AutoML needs at least {MIN_ROWS}")
    if y.dropna().nunique() < 2:
        only = y.dropna().iloc[0]
        raise AutoMLInputError(
            f"target column {cfg.target!r} has one value ({str(only)[:40]!r}) in every labelled row: there is nothing to learn; "
            "check the column, or add rows of the other classes"
        )
    problem = cfg.problem_type or infer_problem(y)
    if problem == "Regression" and not pd.api.types.is_numeric_dtype(y):
        converted = pd.to_numeric(y, errors="coerce")
        if converted.notna().sum() < labelled:
            raise AutoMLInputError(f"target column {cfg.target!r} is not numeric, so it cannot be a Regression; use a classification problem type")
    if problem == "BinaryClassification" and y.dropna().nunique() != 2:
        raise AutoMLInputError(f"target column {cfg.target!r} has {y.dropna().nunique()} classes, not 2; use MulticlassClassification or leave the problem type out")
    metric = cfg.metric or default_metric(problem)
    if problem not in METRICS[metric].problems:
        fits = [m for m, d in METRICS.items() if problem in d.problems]
        raise AutoMLInputError(f"metric {metric} does not fit a {problem} problem; use one of {', '.join(fits)}")
    return y, problem, metric


def make_folds(n, y, classify, seed):
    """The (train, validation) row indices every candidate is fitted on: 5-fold CV up to
    20,000 rows, 3-fold up to 100,000, one 80/20 holdout beyond (stratified for classes)."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if n > 100_000:
        idx = np.arange(n)
        strat = y if classify and np.bincount(y).min() >= 2 else None
        train, val = train_test_split(idx, test_size=0.2, random_state=seed, stratify=strat)
        return [(np.sort(train), np.sort(val))]
    k = 5 if n <= 20_000 else 3
    k = min(k, max(2, n // 5))
    if classify and np.bincount(y).min() >= k:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(k, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in splitter.split(np.zeros(n), y if classify else None)]


class _Clock:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def left(self) -> float:
        return self.deadline - time.time()


def _predict(model: Any, X: Any, classify: bool, n_classes: int) -> Any:
    if not classify:
        return np.asarray(model.predict(X), dtype=float)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    known = np.asarray(model.classes_, dtype=int)
    if proba.shape[1] == n_classes:
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, known] = proba  # a fold without some class predicts none of it
    return out


def search(frame: Any, cfg: SearchConfig, *, progress: Callable[[Candidate, list[Candidate]], None] | None = None,
           log: Callable[[str], None] = print) -> SearchResult:
    """Search candidates on ``frame`` until ``cfg.deadline`` and select an ensemble.

    Raises:
        AutoMLInputError: a missing target, too few rows, one class, no usable column.
    """
    import pandas as pd

    y_raw, problem, metric_name = _check_target(frame, cfg)
    metric = METRICS[metric_name]
    frame = frame[y_raw.notna().to_numpy()].reset_index(drop=True)
    y_raw = y_raw.dropna().reset_index(drop=True)
    classify = problem != "Regression"
    schema = infer_schema(frame, target=cfg.target)
    if not schema["columns"]:
        why = "; ".join(f"{k}: {v}" for k, v in list(schema["dropped"].items())[:6]) or "the data has only the target"
        raise AutoMLInputError(f"no column can be used as a feature ({why}); add feature columns besides {cfg.target!r}")
    columns = prepared_columns(schema)
    columns["high_cardinality"] = [c["name"] for c in schema["columns"] if c.get("cardinality", 0) > HIGH_CARDINALITY]
    X = prepare(frame, schema)
    classes: list[Any] | None = None
    if classify:
        codes, uniques = pd.factorize(y_raw, sort=True)
        y = codes.astype(int)
        classes = [v.item() if isinstance(v, np.generic) else v for v in uniques]
        summary = {"classes": {str(c): int(n) for c, n in zip(classes, np.bincount(y))}}
    else:
        y = pd.to_numeric(y_raw, errors="coerce").to_numpy(dtype=float)
        summary = {"mean": float(y.mean()), "std": float(y.std()), "min": float(y.min()), "max": float(y.max())}
    n_classes = len(classes or [])
    n = len(X)
    clock = _Clock(cfg.deadline)
    folds = make_folds(n, y, classify, cfg.seed)
    mask = np.zeros(n, dtype=bool)
    for _, va in folds:
        mask[va] = True
    scored = np.flatnonzero(mask)
    baseline = _baseline(y[scored], metric, classify, n_classes)
    log(f"{problem}, metric {metric_name}; {n:,} rows, {len(schema['columns'])} feature columns "
        f"({', '.join(f'{k} {len(v)}' for k, v in columns.items() if v and k != 'high_cardinality')}); "
        f"{'holdout' if len(folds) == 1 else f'{len(folds)}-fold CV'}; {max(clock.left(), 0):.0f} s to search")
    for name, why in schema["dropped"].items():
        log(f"column {name!r} dropped: {why}")

    families = families_available()
    _warm(families)
    if columns["text"]:
        families = [f for f in families if f != "hist_gb"]
    if n > 50_000:
        families = [f for f in families if f not in ("knn", "mlp")]
    rng = random.Random(cfg.seed)
    queue = initial_candidates("classification" if classify else "regression", n, families)
    if cfg.mode == "HyperparameterTuning":
        queue = [c for c in queue if c["family"] in ("lightgbm", "xgboost", "catboost", "linear", "extra_trees")]
    done: list[Candidate] = []
    cost: dict[str, float] = {}  # family -> seconds per fold per 1,000 training rows seen so far
    n_train = int(np.mean([len(tr) for tr, _ in folds]))
    tried = 0
    skipped_in_a_row = 0
    # The first candidate (LightGBM's defaults) runs whatever the clock says: a model late
    # by a few seconds beats no model.
    while not done or clock.left() - _reserve(done, metric) > 0.5:
        if cfg.max_candidates is not None and tried >= cfg.max_candidates:
            break
        spec = queue.pop(0) if queue else _next(done, rng, classify)
        if spec is None:
            break
        tried += 1
        cand = Candidate(id=f"c{tried:02d}-{spec['family'].replace('_', '-')}", family=spec["family"], params=dict(spec["params"]))
        per = cost.get(cand.family)
        if per is not None and cand.family not in ("lightgbm", "xgboost", "catboost"):
            need = per * n_train / 1000 * len(folds)
            if need > clock.left() * 0.9:
                # A forest grows until its deadline (fit_fold): it runs if 30 trees or more fit.
                forest = cand.family in ("extra_trees", "random_forest") and "n_estimators" in cand.params
                if not forest or cand.params["n_estimators"] * clock.left() * CANDIDATE_SHARE / max(need, 1e-9) < 30:
                    cand.status, cand.note = "skipped", f"would take about {need:.0f} s; {max(clock.left(), 0):.0f} s left"
                    done.append(cand)
                    if progress is not None:
                        progress(cand, done)
                    skipped_in_a_row += 1
                    if skipped_in_a_row >= 5:
                        break  # nothing that is left fits the time
                    continue
        skipped_in_a_row = 0
        cand_clock = _Clock(cfg.deadline - _reserve(done, metric))
        _evaluate(cand, X, y, folds, columns, cfg, classify, n_classes, metric, cand_clock, scored, first=tried == 1)
        if cand.status == "ok" and len(cand.models) < len(folds):
            # Out of time within the first candidate: it alone, on the folds it fitted.
            folds = folds[: len(cand.models)]
            scored = np.sort(np.concatenate([va for _, va in folds]))
            done.append(cand)
            if progress is not None:
                progress(cand, done)
            break
        if cand.status == "ok" and cand.fit_s > 0:
            cost[cand.family] = cand.fit_s / len(folds) / max(n_train / 1000, 1e-3)
        done.append(cand)
        _trim(done, metric)
        if progress is not None:
            progress(cand, done)
    ok = [c for c in done if c.status == "ok"]
    if not ok:
        raise AutoMLInputError("no candidate could be evaluated within the time budget; give a larger --time-budget")
    if cfg.mode == "HyperparameterTuning" or len(ok) == 1:
        best = max(ok, key=lambda c: metric.gain(c.score))
        ensemble, ens_score = {best.id: 1.0}, best.score
    else:
        ensemble, ens_score = _select(ok, y, scored, metric, classify, n_classes, cfg.seed)
    for c in done:
        if c.id not in ensemble:
            c.models = []
    return SearchResult(
        problem_type=problem, metric=metric_name, classes=classes, schema=schema, columns=columns, folds=folds,
        candidates=done, ensemble=ensemble, ensemble_score=ens_score, baseline_score=baseline, n_rows=n,
        n_jobs=cfg.n_jobs, seed=cfg.seed, y=y, target_summary=summary,
    )


def _save_cost(model: Any) -> float:
    """About how long writing this fitted pipeline as skops takes: timed on it, or on a
    few of its trees for a forest (whose trees cost alike)."""
    # The engine's one skops import (save_package needs it anyway): importing any part of
    # skops.io runs scikit-learn's all_estimators() for skops's default trusted types, which
    # imports every public scikit-learn module (and pytest where installed), ~0.5-1 s.
    import skops.io as sio

    est = model.steps[-1][1]
    trees = getattr(est, "estimators_", None)
    t0 = time.time()
    if isinstance(trees, list) and len(trees) > 3:
        sio.dumps(trees[:3])
        return (time.time() - t0) / 3 * len(trees) * 1.2
    sio.dumps(model)
    return time.time() - t0


def _reserve(done: list[Candidate], metric: Metric) -> float:
    """Time to keep for writing the likely ensemble (the best few candidates)."""
    ok = sorted((c for c in done if c.status == "ok" and c.models), key=lambda c: metric.gain(c.score), reverse=True)
    return sum(c.save_s for c in ok[:5])


def _warm(families: list[str]) -> None:
    """Import the libraries now, so that no candidate's fit time counts an import."""
    import importlib

    for module in ("sklearn.ensemble", "sklearn.linear_model", "sklearn.neighbors", "sklearn.neural_network", "sklearn.compose",
                   "sklearn.feature_extraction.text", *(f for f in ("lightgbm", "xgboost", "catboost") if f in families)):
        importlib.import_module(module)


def _baseline(y: Any, metric: Metric, classify: bool, n_classes: int) -> float:
    """The score of a constant prediction (class priors, or the mean)."""
    if classify:
        prior = np.bincount(y, minlength=n_classes) / len(y)
        return metric.value(y, np.tile(prior, (len(y), 1)), classes=n_classes)
    return metric.value(y, np.full(len(y), float(np.mean(y))))


def _evaluate(cand: Candidate, X: Any, y: Any, folds: list[tuple[Any, Any]], columns: dict[str, list[str]], cfg: SearchConfig,
              classify: bool, n_classes: int, metric: Metric, clock: _Clock, scored: Any, *, first: bool = False) -> None:
    import warnings

    # Threads cost more than they bring on small data (and a lot on a loaded machine).
    threads = cfg.n_jobs if len(folds[0][0]) * X.shape[1] >= PARALLEL_CELLS else 1
    spec: dict[str, Any] = {"family": cand.family, "params": cand.params, "task": "classification" if classify else "regression",
                            "n_jobs": threads, "seed": cfg.seed}
    oof = np.zeros((len(y), n_classes)) if classify else np.zeros(len(y))
    predict_s, predicted = 0.0, 0
    started_left = clock.left()
    for i, (tr, va) in enumerate(folds):
        left = clock.left()
        if first and i > 0 and left <= 0:
            break  # the first candidate keeps the folds it fitted: a model on fewer folds beats none
        if left <= 0.2 and not first:
            cand.status, cand.note = "skipped", "the time budget ran out"
            cand.models = []
            return
        # A candidate after the first may take at most 60% of what is left: one slow
        # candidate must not leave the ensemble nothing to choose from.
        room = left if first else started_left * CANDIDATE_SHARE - (started_left - left)
        t0 = time.time()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = fit_fold(spec, columns, X.iloc[tr], y[tr], X.iloc[va], y[va], deadline=t0 + max(room, 1.0) / (len(folds) - i) * 0.95)
            cand.fit_s += time.time() - t0
            t1 = time.time()
            oof[va] = _predict(model, X.iloc[va], classify, n_classes)
            predict_s += time.time() - t1
            predicted += len(va)
        except Exception as exc:  # noqa: BLE001 - one candidate failing is a leaderboard line, not the job's end
            cand.status, cand.note = "failed", f"{type(exc).__name__}: {str(exc)[:200]}"
            cand.models = []
            return
        cand.models.append(model)
        if i == 0:
            cand.save_s = _save_cost(model) * len(folds)
        rest = len(folds) - i - 1
        if rest and not first and cand.fit_s / (i + 1) * rest > clock.left():
            cand.status, cand.note = "skipped", f"{i + 1} fold(s) took {cand.fit_s:.1f} s; the rest would not fit the budget"
            cand.models = []
            return
    cand.rounds = spec.get("rounds")
    cand.threads = threads
    cand.oof = oof
    cand.predict_s_per_1k = predict_s / max(predicted, 1) * 1000
    if len(cand.models) < len(folds):
        cand.note = f"only {len(cand.models)} of {len(folds)} folds fitted within the budget"
        scored = np.sort(np.concatenate([va for _, va in folds[: len(cand.models)]]))
    try:
        cand.score = metric.value(y[scored], oof[scored], classes=n_classes)
    except ValueError as exc:
        cand.status, cand.note = "failed", f"could not be scored: {exc}"
        cand.models = []


def _trim(done: list[Candidate], metric: Metric) -> None:
    """Keep the fold models and predictions of the best candidates only (memory)."""
    ok = sorted((c for c in done if c.status == "ok" and c.models), key=lambda c: metric.gain(c.score), reverse=True)
    for c in ok[KEEP_MODELS:]:
        c.models, c.oof = [], None
        c.note = (c.note + "; " if c.note else "") + "not kept (outside the best models)"


def _next(done: list[Candidate], rng: random.Random, classify: bool) -> dict[str, Any] | None:
    """The next configuration to try: a random one of a family that did well (the best
    families more often), or None when no family is searchable."""
    best: dict[str, float] = {}
    for c in done:
        if c.status == "ok" and math.isfinite(c.score):
            best[c.family] = max(best.get(c.family, -math.inf), c.score if c.score == c.score else -math.inf)
    task = "classification" if classify else "regression"
    ranked = [f for f in sorted(best, key=lambda f: best[f], reverse=True) if sample_params(f, task, rng) is not None][:3]
    if not ranked:
        return None
    family = rng.choices(ranked, weights=[4, 2, 1][: len(ranked)])[0]
    return {"family": family, "params": sample_params(family, task, rng)}


def _select(ok: list[Candidate], y: Any, scored: Any, metric: Metric, classify: bool, n_classes: int, seed: int) -> tuple[dict[str, float], float]:
    """Greedy ensemble selection with replacement on the out-of-fold predictions."""
    pool = sorted((c for c in ok if c.oof is not None), key=lambda c: metric.gain(c.score), reverse=True)[:ENSEMBLE_POOL]
    rows = scored
    if len(rows) > ENSEMBLE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(scored, ENSEMBLE_ROWS, replace=False))
    preds = [c.oof[rows] for c in pool]
    yt = y[rows]
    counts = [0] * len(pool)
    total = np.zeros_like(preds[0])
    best_gain, best_counts = -math.inf, None
    for r in range(ENSEMBLE_ROUNDS):
        gains = [metric.gain(metric.value(yt, (total + p) / (r + 1), classes=n_classes)) for p in preds]
        j = int(np.argmax(gains))
        counts[j] += 1
        total = total + preds[j]
        if gains[j] > best_gain + 1e-12:
            best_gain, best_counts = gains[j], list(counts)
    assert best_counts is not None
    weights = {pool[i].id: k / sum(best_counts) for i, k in enumerate(best_counts) if k}
    blend = sum(w * next(c for c in pool if c.id == cid).oof[scored] for cid, w in weights.items())
    return weights, metric.value(y[scored], blend, classes=n_classes)
