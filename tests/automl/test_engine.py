"""The AutoML engine without a workspace: problem and metric inference (Autopilot's
defaults), type-aware preprocessing, bad input, the package serving raw rows, and each
candidate's script reproducing its predictions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kiln.automl._base import METRICS, check_metric, check_mode, check_problem_type, default_metric
from kiln.automl._engine import run_engine
from kiln.automl._frame import infer_schema, prepare
from kiln.automl._model import load_package
from kiln.automl._search import AutoMLInputError, SearchConfig, infer_problem, search
from kiln.core.errors import InvalidArgument

from ._data import mixed

pytestmark = pytest.mark.xdist_group("automl-engine")


def _cfg(target: str = "label", budget: float = 4.0, **kw: object) -> SearchConfig:
    return SearchConfig(target=target, deadline=time.time() + budget, n_jobs=1, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("y", "problem", "metric"), [
    (["a", "b"] * 10, "BinaryClassification", "F1"),
    ([0, 1] * 10, "BinaryClassification", "F1"),
    (["a", "b", "c"] * 10, "MulticlassClassification", "Accuracy"),
    ([1, 2, 3, 4] * 10, "MulticlassClassification", "Accuracy"),
    (list(np.linspace(0, 1, 40)), "Regression", "MSE"),
    (list(range(100)), "Regression", "MSE"),
])
def test_problem_type_and_metric_are_inferred_as_autopilot_does(y: list[object], problem: str, metric: str) -> None:
    assert infer_problem(pd.Series(y)) == problem
    assert default_metric(problem) == metric


def test_names_are_checked_and_normalised() -> None:
    assert check_problem_type("regression") == "Regression"
    assert check_metric("f1macro", "MulticlassClassification") == "F1macro"
    assert check_mode("hpo") == "HyperparameterTuning" and check_mode(None) == "Ensembling"
    with pytest.raises(InvalidArgument, match="does not fit a MulticlassClassification problem; use one of"):
        check_metric("F1", "MulticlassClassification")
    with pytest.raises(InvalidArgument, match="unknown metric 'Gini'"):
        check_metric("Gini")
    with pytest.raises(InvalidArgument, match="unknown mode"):
        check_mode("fast")


def test_metrics_score_known_predictions() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert METRICS["Accuracy"].value(y, proba) == 0.5
    assert METRICS["F1"].value(y, proba) == pytest.approx(0.5)
    assert METRICS["AUC"].value(y, proba) == pytest.approx(0.75)
    assert METRICS["RMSE"].value(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == pytest.approx(1.0)
    assert METRICS["MSE"].gain(4.0) == -4.0 and METRICS["R2"].gain(0.5) == 0.5


def test_columns_are_typed_and_useless_ones_dropped() -> None:
    frame = mixed(120)
    frame["ident"] = [f"id-{i}" for i in range(len(frame))]
    frame["same"] = 7
    schema = infer_schema(frame, target="label")
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    assert kinds == {"x": "numeric", "color": "categorical", "city": "categorical", "review": "text", "when": "date", "count": "numeric"}
    assert schema["dropped"] == {"empty": "all values are missing", "ident": "an identifier (a distinct value in every row)", "same": "constant"}
    prepared = prepare(frame, schema)
    assert {"when__year", "when__dayofweek", "when__epoch_days"} <= set(prepared.columns)
    assert prepared["color"].isna().sum() == 0 and (prepared["color"] == "__NA__").sum() == frame["color"].isna().sum()


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"a": range(30), "label": ["x"] * 30}), r"has one value \('x'\) in every labelled row: there is nothing to learn"),
    (pd.DataFrame({"a": range(30), "label": [2.5] * 30}), r"has one value \('2.5'\)"),
    (pd.DataFrame({"a": range(30), "b": range(30)}), "the data has no column 'label'; columns: a, b"),
    (pd.DataFrame({"a": range(30), "Label": [0, 1] * 15}), "did you mean 'Label'"),
    (pd.DataFrame({"a": range(8), "label": [0, 1] * 4}), "only 8 rows have a value in 'label'; AutoML needs at least 10"),
    (pd.DataFrame({"e": [None] * 30, "label": [0, 1] * 15}), "no column can be used as a feature \\(e: all values are missing\\)"),
    (pd.DataFrame({"label": [None] * 30}), "has no values"),
])
def test_bad_input_is_a_clear_message(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(AutoMLInputError, match=message):
        search(frame, _cfg(budget=2))


def test_twenty_rows_and_an_all_null_column_still_give_a_sensible_model() -> None:
    frame = mixed(20, task="binary")
    result = search(frame, _cfg(budget=3, max_candidates=2))
    assert result.problem_type == "BinaryClassification" and "empty" in result.schema["dropped"]
    assert any(c.status == "ok" for c in result.candidates)
    assert result.ensemble and abs(sum(result.ensemble.values()) - 1.0) < 1e-9


def _engine(tmp_path: Path, frame: pd.DataFrame, **kw: object) -> dict[str, object]:
    data = tmp_path / "train.parquet"
    frame.to_parquet(data)
    config = {"data": str(data), "out": str(tmp_path / "out"), "target": "label", "time_budget_s": 8.0, "n_jobs": 1, "job": "t", **kw}
    return run_engine(config)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_package_serves_raw_rows_with_every_kind_of_column(tmp_path: Path, task: str) -> None:
    frame = mixed(240, task=task)
    summary = _engine(tmp_path, frame, max_candidates=3)
    model = load_package(tmp_path / "out" / "package")
    rows = frame.drop(columns="label").head(30)
    pred = model.predict(rows)
    assert len(pred) == 30
    if task == "binary":
        assert set(pred) <= {"yes", "no"}
        assert model.predict_proba(rows).shape == (30, 2)
        assert (model.predict(frame.drop(columns="label")) == frame["label"]).mean() > 0.7
    else:
        assert np.corrcoef(model.predict(frame.drop(columns="label")), frame["label"])[0, 1] > 0.8
    odd = rows.copy()
    odd["color"] = "purple"  # a category never seen, and a column sent as text
    odd["x"] = odd["x"].astype(str)
    assert len(model.predict(odd)) == 30
    assert list(model.feature_names_in_) == [c for c in frame.columns if c != "label"]
    with pytest.raises(InvalidArgument, match="missing column"):
        model.predict(rows.drop(columns=["review"]))
    board = summary["leaderboard"]
    assert board[0]["rank"] == 1 and any(r["id"] == "c01-lightgbm" and r["status"] == "ok" for r in board)
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert set(report["feature_importance"]["values"]) <= {"x", "color", "city", "review", "when", "count"}
    html = (tmp_path / "out" / "report" / "report.html").read_text()
    assert "<script" not in html and "http" not in html and "Leaderboard" in html


def test_each_script_reproduces_its_candidates_predictions(tmp_path: Path) -> None:
    frame = mixed(160, task="multiclass")
    summary = _engine(tmp_path, frame, max_candidates=4)
    model = load_package(tmp_path / "out" / "package")
    spec = json.loads((tmp_path / "out" / "package" / "automl.json").read_text())
    members = list(zip([m["candidate"] for m in spec["members"]], model.members))
    checked = 0
    for cid, (_, folds) in members[:2]:
        X = prepare(frame, spec["schema"])
        want = sum(f.predict_proba(X) for f in folds) / len(folds)
        script = tmp_path / "out" / "report" / summary["scripts"][cid]
        out = tmp_path / f"{cid}.csv"
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "train.parquet"), "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        got = pd.read_csv(out)
        np.testing.assert_allclose(got[[f"proba_{c}" for c in spec["classes"]]].to_numpy(), want, atol=1e-6)
        checked += 1
    assert checked >= 1


def test_out_of_time_within_the_first_candidate_keeps_the_folds_it_fitted(tmp_path: Path) -> None:
    frame = mixed(120, task="binary")
    result = search(frame, SearchConfig(target="label", deadline=time.time() - 1, n_jobs=1))
    (only,) = result.candidates
    assert only.id == "c01-lightgbm" and only.status == "ok" and only.note == "only 1 of 5 folds fitted within the budget"
    assert len(result.folds) == 1 and len(only.models) == 1 and result.ensemble == {"c01-lightgbm": 1.0}
    assert 0.0 <= only.score <= 1.0


def test_the_package_exports_what_it_names() -> None:
    import kiln.automl

    assert sorted(kiln.automl.__all__) == kiln.automl.__all__
    assert all(hasattr(kiln.automl, name) for name in kiln.automl.__all__)
