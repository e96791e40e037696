"""Fast paths give the framework's own predictions: labels equal, numbers within float tolerance,
on many rows, one row at a time and together; a model they cannot reproduce keeps its framework."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from kiln.serving._fast import close
from kiln.serving._runtime import Servable
from tests.serving.test_runtime import csv_of, served

XC, YC = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=1)
YB = (XC[:, 0] + XC[:, 1] > 0).astype(int)
XR, YR = make_regression(n_samples=300, n_features=6, noise=5, random_state=1)
# Rows the models never saw, plus training rows (which sit on or near split points).
ROWS = np.vstack([np.random.default_rng(7).normal(size=(300, 6)) * 2, XC[:100]])
WORDS = np.array(["no", "yes"])


def _xgb(kind: str) -> Any:
    import xgboost as xgb

    if kind == "clf":
        return xgb.XGBClassifier(n_estimators=30, max_depth=4).fit(XC, YC)
    if kind == "bin":
        return xgb.XGBClassifier(n_estimators=30, max_depth=4).fit(XC, YB)
    return xgb.XGBRegressor(n_estimators=30, max_depth=4).fit(XR, YR)


def _lgb(kind: str) -> Any:
    import lightgbm as lgb

    if kind == "clf":
        return lgb.LGBMClassifier(n_estimators=30, verbose=-1).fit(XC, YC)
    if kind == "bin":
        return lgb.LGBMClassifier(n_estimators=30, verbose=-1).fit(XC, WORDS[YB])
    return lgb.LGBMRegressor(n_estimators=30, verbose=-1).fit(XR, YR)


MODELS = {
    "logistic-multi": (lambda: LogisticRegression(max_iter=1000).fit(XC, YC), "linear"),
    "logistic-binary-words": (lambda: LogisticRegression().fit(XC, WORDS[YB]), "linear"),
    "sgd": (lambda: SGDClassifier(random_state=0).fit(XC, YC), "linear"),
    "linear-regression": (lambda: LinearRegression().fit(XR, YR), "linear"),
    "scaled-ridge": (lambda: make_pipeline(StandardScaler(), MinMaxScaler(), Ridge()).fit(XR, YR), "linear"),
    "scaled-logistic": (lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(XC, YC), "linear"),
    "random-forest": (lambda: RandomForestClassifier(n_estimators=40, random_state=0).fit(XC, YC), "onnx"),
    "random-forest-binary": (lambda: RandomForestClassifier(n_estimators=40, random_state=0).fit(XC, YB), "onnx"),
    "extra-trees": (lambda: ExtraTreesRegressor(n_estimators=20, random_state=0).fit(XR, YR), "onnx"),
    "gradient-boosting": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0).fit(XC, YC), "onnx"),
    "hist-gradient-boosting": (lambda: HistGradientBoostingClassifier(max_iter=20).fit(XC, YB), "treelite"),
    "hist-gradient-boosting-regressor": (lambda: HistGradientBoostingRegressor(max_iter=20).fit(XR, YR), "treelite"),
    "xgboost": (lambda: _xgb("clf"), "treelite"),
    "xgboost-binary": (lambda: _xgb("bin"), "treelite"),
    "xgboost-regressor": (lambda: _xgb("reg"), "treelite"),
    "lightgbm": (lambda: _lgb("clf"), "treelite"),
    "lightgbm-binary-words": (lambda: _lgb("bin"), "treelite"),
    "lightgbm-regressor": (lambda: _lgb("reg"), "treelite"),
}


def _same(got: Any, want: Any) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind == "f":
        assert close(got, want), np.abs(got - want).max()
    else:
        assert got.tolist() == want.tolist()


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_paths_give_the_frameworks_predictions(tmp_path: Path, name: str) -> None:
    make, path = MODELS[name]
    model = make()
    fast = served(tmp_path, model, XC[:5] if model.n_features_in_ == 6 else None)
    slow = Servable.load(tmp_path / "pkg0", trusted=False, fast_path=False)
    assert fast.fast_path == path and slow.fast_path is None
    want = slow.predict_array(ROWS)
    _same(fast.predict_array(ROWS), want)  # a batch: the framework beyond TREE_ROWS
    for i in range(0, len(ROWS), 5):  # one row at a time: the fast path
        _same(fast.predict_array(ROWS[i]), want[i : i + 1])
        _same(orjson.loads(fast.invoke(csv_of(ROWS[i]), "text/csv", None).body), orjson.loads(slow.invoke(csv_of(ROWS[i]), "text/csv", None).body))
    _same(fast.predict_array(ROWS[:8]), want[:8])


def test_nan_rows_go_to_the_framework(tmp_path: Path) -> None:
    model = HistGradientBoostingClassifier(max_iter=10).fit(np.where(XC > 1.5, np.nan, XC), YC)
    s = served(tmp_path, model)
    assert s.fast_path == "treelite"
    rows = np.where(ROWS > 1.5, np.nan, ROWS)[:20]
    assert s.predict_array(rows).tolist() == model.predict(rows).tolist()
    assert s.invoke(b"1,,2,3,4,5", "text/csv", None).body == f"[{model.predict([[1, np.nan, 2, 3, 4, 5]])[0]}]".encode()


def test_a_fast_path_that_differs_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.serving import _fast

    real = _fast._linear

    def off_by_one(model: Any, manifest: Any) -> Any:
        name, fn, rows = real(model, manifest)
        return name, (lambda x: fn(x) + 1), rows

    monkeypatch.setattr(_fast, "_linear", off_by_one)
    model = LinearRegression().fit(XR, YR)
    s = served(tmp_path, model)
    assert s.fast_path is None
    np.testing.assert_allclose(s.predict_array(XR[:5]), model.predict(XR[:5]))


def test_forests_fall_back_to_treelite_without_skl2onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.serving import _fast

    monkeypatch.setattr(_fast, "_onnx_trees", lambda model, manifest: None)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(XC, YC)
    s = served(tmp_path, model)
    assert s.fast_path == "treelite"
    assert [s.predict_array(r)[0] for r in ROWS[:60]] == model.predict(ROWS[:60]).tolist()
