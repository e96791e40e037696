"""Candidates: the model families AutoML tries, the configurations it starts with (strong
defaults first, then a small portfolio of known-good gradient-boosting settings), how it
samples new ones, and :func:`build_pipeline`, which turns a candidate's definition into a
scikit-learn pipeline (type-aware preprocessing + the estimator).

:func:`build_pipeline` is copied verbatim into each candidate's exported script: keep it
self-contained (it imports inside and calls no other function of Kiln).
"""

from __future__ import annotations

import importlib.util
import math
import random
from typing import Any

__all__ = ["FAMILIES", "build_pipeline", "families_available", "initial_candidates", "sample_params"]

# In the order they are tried; each is skipped when its library is missing.
FAMILIES = ("lightgbm", "linear", "extra_trees", "xgboost", "random_forest", "hist_gb", "catboost", "knn", "mlp")
_NEEDS = {"lightgbm": "lightgbm", "xgboost": "xgboost", "catboost": "catboost"}
HIGH_CARDINALITY = 30
LARGE = 50_000  # rows from which the search order favours what scales


def families_available() -> list[str]:
    return [f for f in FAMILIES if f not in _NEEDS or importlib.util.find_spec(_NEEDS[f]) is not None]


def build_pipeline(spec, columns):
    """A scikit-learn Pipeline for one candidate.

    ``spec``: {"family", "params", "task" ("classification" | "regression"), "n_jobs", "seed"};
    ``columns``: {"numeric": [...], "categorical": [...], "text": [...], "high_cardinality": [...]},
    the columns of the frame ``prepare`` makes.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

    family, params, task = spec["family"], dict(spec["params"]), spec["task"]
    n_jobs, seed = int(spec.get("n_jobs", 1)), int(spec.get("seed", 0))
    classify = task == "classification"
    numeric, text = list(columns["numeric"]), list(columns["text"])
    high = [c for c in columns["categorical"] if c in columns["high_cardinality"]]
    low = [c for c in columns["categorical"] if c not in columns["high_cardinality"]]
    scaled = family in ("linear", "knn", "mlp")
    parts = []
    if numeric:
        steps = [("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True))]
        if scaled:
            steps.append(("scale", StandardScaler()))
        parts.append(("num", Pipeline(steps), numeric))
    if scaled:
        if low:
            parts.append(("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=HIGH_CARDINALITY, sparse_output=True), low))
        if high:
            parts.append(("high", Pipeline([("target", TargetEncoder(cv=KFold(5, shuffle=True, random_state=seed))), ("scale", StandardScaler())]), high))
    else:
        if low:
            parts.append(("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1), low))
        if high:
            parts.append(("high", TargetEncoder(cv=KFold(5, shuffle=True, random_state=seed)), high))
    for i, col in enumerate(text):
        width = 2000 if family == "linear" else 200
        parts.append((f"text{i}", TfidfVectorizer(max_features=width, ngram_range=(1, 2) if family == "linear" else (1, 1), min_df=2, sublinear_tf=True), col))
    dense = not text or family in ("hist_gb", "catboost")
    prep = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0 if dense else 1.0)

    if family == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        model = (LGBMClassifier if classify else LGBMRegressor)(random_state=seed, n_jobs=n_jobs, verbose=-1, **params)
    elif family == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        model = (XGBClassifier if classify else XGBRegressor)(random_state=seed, n_jobs=n_jobs, tree_method="hist", **params)
    elif family == "catboost":
        from catboost import CatBoostClassifier, CatBoostRegressor

        # allow_writing_files=False: CatBoost otherwise leaves catboost_info/ (its training log) in the working folder.
        model = (CatBoostClassifier if classify else CatBoostRegressor)(random_seed=seed, thread_count=n_jobs, verbose=False,
                                                                       allow_writing_files=False, **params)
    elif family == "linear":
        if classify:
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(max_iter=1000, **params)
        else:
            from sklearn.linear_model import Ridge

            model = Ridge(**params)
    elif family in ("extra_trees", "random_forest"):
        from sklearn import ensemble

        kind = ("ExtraTrees" if family == "extra_trees" else "RandomForest") + ("Classifier" if classify else "Regressor")
        model = getattr(ensemble, kind)(random_state=seed, n_jobs=n_jobs, **params)
    elif family == "hist_gb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        model = (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(random_state=seed, **params)
    elif family == "knn":
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        model = (KNeighborsClassifier if classify else KNeighborsRegressor)(n_jobs=n_jobs, **params)
    elif family == "mlp":
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        model = (MLPClassifier if classify else MLPRegressor)(random_state=seed, early_stopping=True, **params)
    else:
        raise ValueError(f"unknown family {family!r}")
    return Pipeline([("prep", prep), ("model", model)])


# -- what is tried first --------------------------------------------------------------------

# LightGBM's own defaults first (never lose to them but by noise), then a portfolio of
# settings that do well across tabular benchmarks; the tree counts are ceilings that early
# stopping on each fold's validation part cuts.
_LGBM_PORTFOLIO = [
    {"learning_rate": 0.05, "n_estimators": 2000, "num_leaves": 31, "min_child_samples": 20, "colsample_bytree": 0.9, "subsample": 0.8, "subsample_freq": 1},
    {"learning_rate": 0.03, "n_estimators": 3000, "num_leaves": 128, "min_child_samples": 5, "colsample_bytree": 0.7, "reg_lambda": 1.0},
    {"learning_rate": 0.05, "n_estimators": 2000, "num_leaves": 8, "min_child_samples": 10, "colsample_bytree": 0.6, "reg_lambda": 5.0},
    {"learning_rate": 0.05, "n_estimators": 2000, "num_leaves": 63, "extra_trees": True, "colsample_bytree": 0.8, "min_child_samples": 10},
]


def initial_candidates(task: str, n_rows: int, families: list[str]) -> list[dict[str, Any]]:
    """The candidates tried before any search: each family's strong defaults, then the portfolio."""
    classify = task == "classification"
    forest = {"n_estimators": 200, "max_features": "sqrt" if classify else 0.6, "min_samples_leaf": 1 if n_rows < 20000 else 2}
    first: list[tuple[str, dict[str, Any]]] = [
        ("lightgbm", {}),
        ("linear", {"C": 1.0} if classify else {"alpha": 1.0}),
        ("extra_trees", dict(forest)),
        ("lightgbm", dict(_LGBM_PORTFOLIO[0])),
        ("xgboost", {"n_estimators": 2000, "learning_rate": 0.05, "max_depth": 6, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1.0}),
        ("random_forest", dict(forest)),
        ("catboost", {"iterations": 2000, "learning_rate": 0.08, "depth": 6}),
        ("lightgbm", dict(_LGBM_PORTFOLIO[1])),
        ("hist_gb", {"max_iter": 300, "learning_rate": 0.06, "early_stopping": True, "validation_fraction": 0.1, "n_iter_no_change": 20}),
        ("knn", {"n_neighbors": 15, "weights": "distance"}),
        ("mlp", {"hidden_layer_sizes": (128, 64), "alpha": 1e-3, "max_iter": 200, "learning_rate_init": 1e-3}),
        ("lightgbm", dict(_LGBM_PORTFOLIO[2])),
        ("lightgbm", dict(_LGBM_PORTFOLIO[3])),
    ]
    if n_rows > LARGE:
        # On large data few candidates fit the budget: the ones that scale go first, with big
        # trees and a high learning rate (rounds are what time runs out on), forests last.
        big = {"learning_rate": 0.1, "n_estimators": 2000, "num_leaves": 255, "min_child_samples": 40, "colsample_bytree": 0.9,
               "subsample": 0.8, "subsample_freq": 1}
        forests = [c for c in first if c[0] in ("extra_trees", "random_forest")]
        for _, params in forests:
            params.update(n_estimators=100, min_samples_leaf=5)
        first = [first[0], ("lightgbm", big), *[c for c in first[1:] if c not in forests], *forests]
    return [{"family": f, "params": p} for f, p in first if f in families]


def sample_params(family: str, task: str, rng: random.Random) -> dict[str, Any] | None:
    """A random configuration of ``family`` (None: this family is not searched)."""
    def log(lo: float, hi: float) -> float:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    if family == "lightgbm":
        return {"learning_rate": log(0.01, 0.2), "n_estimators": 3000, "num_leaves": int(rng.choice([4, 8, 16, 31, 63, 127, 255])),
                "min_child_samples": int(rng.choice([2, 5, 10, 20, 50, 100])), "colsample_bytree": rng.uniform(0.4, 1.0),
                "subsample": rng.uniform(0.5, 1.0), "subsample_freq": 1, "reg_lambda": log(1e-3, 10.0), "reg_alpha": log(1e-3, 1.0)}
    if family == "xgboost":
        return {"n_estimators": 3000, "learning_rate": log(0.01, 0.2), "max_depth": int(rng.choice([3, 4, 5, 6, 8, 10])),
                "subsample": rng.uniform(0.5, 1.0), "colsample_bytree": rng.uniform(0.4, 1.0), "min_child_weight": log(0.5, 20.0),
                "reg_lambda": log(1e-2, 10.0)}
    if family == "catboost":
        return {"iterations": 3000, "learning_rate": log(0.02, 0.2), "depth": int(rng.choice([4, 6, 8])), "l2_leaf_reg": log(1.0, 10.0)}
    if family in ("extra_trees", "random_forest"):
        return {"n_estimators": 200, "max_features": rng.choice(["sqrt", 0.3, 0.5, 0.8, 1.0]), "min_samples_leaf": int(rng.choice([1, 2, 3, 5, 10]))}
    if family == "linear":
        return {"C": log(1e-3, 1e2)} if task == "classification" else {"alpha": log(1e-3, 1e3)}
    return None


BOOSTERS = {"lightgbm": "n_estimators", "xgboost": "n_estimators", "catboost": "iterations"}
# The count a candidate's ``rounds`` record per fold: boosting rounds, or a forest's trees.
GROWN = {**BOOSTERS, "extra_trees": "n_estimators", "random_forest": "n_estimators"}
SMALL_FOLD = 20_000


def fit_fold(spec, columns, X, y, X_val=None, y_val=None, deadline=None):
    """Fit one candidate on one fold's training rows and return the fitted Pipeline.

    Given the fold's validation rows, gradient boosting with many rounds stops early (50
    rounds without progress) or at ``deadline`` (``time.time()``). Up to ``SMALL_FOLD``
    training rows, it stops on a fifth of the training rows and is then refit on all of
    them with the rounds found, so the validation rows that score it stay unseen (stopping
    on them flatters a booster's out-of-fold score, most on small data). Given a deadline,
    a forest grows its trees in steps until it has them all or the next step would pass the
    deadline. The rounds or trees kept are in ``spec["rounds"]`` afterwards, so a refit with
    them and no validation rows rebuilds the same model.
    """
    import time

    import numpy as np

    pipe = build_pipeline(spec, columns)
    prep, model = pipe.steps[0][1], pipe.steps[1][1]
    Xt = prep.fit_transform(X, y)
    family = spec["family"]
    if family in ("extra_trees", "random_forest") and deadline is not None:
        want = int(model.n_estimators)
        step = max(8, want // 8)
        model.set_params(warm_start=True, n_estimators=min(step, want))
        t0 = time.time()
        model.fit(Xt, y)
        per_tree = (time.time() - t0) / model.n_estimators
        while model.n_estimators < want:
            more = min(want, model.n_estimators + step)
            if time.time() + per_tree * (more - model.n_estimators) > deadline:
                break
            model.set_params(n_estimators=more)
            model.fit(Xt, y)
        model.set_params(warm_start=False)
        spec.setdefault("rounds", []).append(int(model.n_estimators))
        return pipe
    rounds_key = BOOSTERS.get(family)
    early = X_val is not None and rounds_key is not None and int(spec["params"].get(rounds_key, 0)) >= 1000
    if not early:
        model.fit(Xt, y)
        return pipe
    refit = len(y) <= SMALL_FOLD
    if refit:
        order = np.random.default_rng(int(spec.get("seed", 0))).permutation(len(y))
        cut = max(1, len(y) // 5)
        stop, fit = np.sort(order[:cut]), np.sort(order[cut:])
        Xs, ys, Xv, yv = Xt[fit], y[fit], Xt[stop], y[stop]
        if deadline is not None:
            deadline = time.time() + (deadline - time.time()) / 2
    else:
        Xs, ys, Xv, yv = Xt, y, prep.transform(X_val), y_val
    if family == "lightgbm":
        import lightgbm

        def stop_at_deadline(env):
            if deadline is not None and time.time() > deadline:
                raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        model.fit(Xs, ys, eval_X=(Xv,), eval_y=(yv,), callbacks=[lightgbm.early_stopping(50, verbose=False), stop_at_deadline])
        kept = int(model.best_iteration_ or model.n_estimators_)
    elif family == "xgboost":
        import xgboost

        class StopAtDeadline(xgboost.callback.TrainingCallback):
            def after_iteration(self, booster, epoch, evals_log):
                return deadline is not None and time.time() > deadline

        model.set_params(early_stopping_rounds=50, callbacks=[StopAtDeadline()])
        model.fit(Xs, ys, eval_set=[(Xv, yv)], verbose=False)
        kept = int(getattr(model, "best_iteration", model.get_booster().num_boosted_rounds() - 1)) + 1
        model.set_params(early_stopping_rounds=None, callbacks=None)
    else:
        model.fit(Xs, ys, eval_set=(Xv, yv), early_stopping_rounds=50)
        kept = int(model.get_best_iteration() or 0) + 1
    if refit:
        model.set_params(**{rounds_key: kept})
        model.fit(Xt, y)
    spec.setdefault("rounds", []).append(kept)
    return pipe
