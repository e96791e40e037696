"""One candidate on one fold (``fit_fold``): what it records rebuilds the same model with no
validation rows and no deadline (the exported scripts rely on it), a small fold's early
stopping never looks at the validation rows that score it, and a forest stops growing at
its deadline."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kiln.automl._frame import infer_schema, prepare, prepared_columns
from kiln.automl._space import HIGH_CARDINALITY, fit_fold

from ._data import mixed


def _fold(n: int = 300) -> tuple[Any, ...]:
    frame = mixed(n, task="binary")
    schema = infer_schema(frame, target="label")
    columns = prepared_columns(schema)
    columns["high_cardinality"] = [c["name"] for c in schema["columns"] if c.get("cardinality", 0) > HIGH_CARDINALITY]
    X, y = prepare(frame, schema), (frame["label"] == "yes").to_numpy(dtype=int)
    cut = n * 4 // 5
    return columns, X.iloc[:cut], y[:cut], X.iloc[cut:], y[cut:]


def _spec(family: str, **params: Any) -> dict[str, Any]:
    return {"family": family, "params": params, "task": "classification", "n_jobs": 1, "seed": 3}


def _rebuilt(spec: dict[str, Any], key: str, columns: Any, X: Any, y: Any) -> Any:
    """The model an exported script fits: the recorded count, no validation rows, no deadline."""
    again = _spec(spec["family"], **{**spec["params"], key: spec["rounds"][0]})
    return fit_fold(again, columns, X, y)


@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_a_small_folds_booster_stops_on_its_own_rows_and_is_rebuilt_from_its_rounds(family: str) -> None:
    columns, X, y, Xv, yv = _fold()
    params = {"n_estimators": 1000, "learning_rate": 0.3}
    spec = _spec(family, **params)
    model = fit_fold(spec, columns, X, y, Xv, yv, deadline=time.time() + 60)
    (kept,) = spec["rounds"]
    assert 1 <= kept < 1000  # it stopped early
    # The validation rows played no part: with their labels flipped, the same model.
    flipped = _spec(family, **params)
    same = fit_fold(flipped, columns, X, y, Xv, 1 - yv, deadline=time.time() + 60)
    assert flipped["rounds"] == [kept]
    np.testing.assert_allclose(same.predict_proba(Xv), model.predict_proba(Xv))
    # The recorded rounds rebuild it, as the candidate's script does.
    np.testing.assert_allclose(_rebuilt(spec, "n_estimators", columns, X, y).predict_proba(Xv), model.predict_proba(Xv), atol=1e-9)


def test_a_large_folds_booster_stops_on_the_validation_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import kiln.automl._space as space

    monkeypatch.setattr(space, "SMALL_FOLD", 100)  # this fold's 240 rows count as large
    columns, X, y, Xv, yv = _fold()
    a, b = _spec("lightgbm", n_estimators=1000, learning_rate=0.3), _spec("lightgbm", n_estimators=1000, learning_rate=0.3)
    fit_fold(a, columns, X, y, Xv, yv, deadline=time.time() + 60)
    fit_fold(b, columns, X, y, Xv, 1 - yv, deadline=time.time() + 60)
    assert a["rounds"] != b["rounds"]  # the validation labels steered the stop


@pytest.mark.parametrize("family", ["extra_trees", "random_forest"])
def test_a_forest_grows_until_its_deadline_and_is_rebuilt_from_its_trees(family: str) -> None:
    columns, X, y, Xv, _ = _fold()
    whole = _spec(family, n_estimators=64)
    model = fit_fold(whole, columns, X, y, Xv, None, deadline=time.time() + 60)
    assert whole["rounds"] == [64] and len(model.steps[-1][1].estimators_) == 64
    assert model.steps[-1][1].warm_start is False
    np.testing.assert_allclose(_rebuilt(whole, "n_estimators", columns, X, y).predict_proba(Xv), model.predict_proba(Xv))
    late = _spec(family, n_estimators=64)
    cut = fit_fold(late, columns, X, y, Xv, None, deadline=time.time())
    assert late["rounds"] == [8] and len(cut.steps[-1][1].estimators_) == 8  # the first step, then the deadline
    np.testing.assert_allclose(_rebuilt(late, "n_estimators", columns, X, y).predict_proba(Xv), cut.predict_proba(Xv))


def test_large_data_tries_what_scales_first() -> None:
    from kiln.automl._space import LARGE, families_available, initial_candidates

    small = [c["family"] for c in initial_candidates("classification", 1_000, families_available())]
    large = initial_candidates("classification", LARGE + 1, families_available())
    assert small[:3] == ["lightgbm", "linear", "extra_trees"]
    assert [c["family"] for c in large[:3]] == ["lightgbm", "lightgbm", "linear"] and large[1]["params"]["num_leaves"] == 255
    assert [c["family"] for c in large[-2:]] == ["extra_trees", "random_forest"]
    assert all(c["params"]["min_samples_leaf"] == 5 for c in large[-2:])
    assert pd.Series([c["family"] for c in large]).value_counts().sum() == len(small) + 1
