"""Evaluation of registered models: metric sets, curves as data and PNG, runs, compare, faces."""

from __future__ import annotations

import math

import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from kiln.core.errors import InvalidArgument, NotFound


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, -1]]
    return frame.rename(columns=lambda c: str(c).replace(" ", "_"))


@pytest.fixture
def binary_models(client, cancer):
    X, y = cancer.drop(columns=["target"]), cancer["target"]
    client.models.register("cancer", model=make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), sample_input=X[:5])
    client.models.register("cancer", model=DecisionTreeClassifier(max_depth=1).fit(X, y), sample_input=X[:5])
    return client


def test_classification_report_run_and_artifacts(binary_models, cancer):
    client = binary_models
    report = client.evaluations.evaluate("cancer@1", target="target", data=cancer)
    m = report.metrics
    assert report.problem_type == "classification" and report.rows == len(cancer)
    expected = {"accuracy", "balanced_accuracy", "precision_macro", "recall_weighted", "f1_macro", "f1_weighted", "roc_auc", "log_loss"}
    assert expected <= set(m) and 0.8 < m["accuracy"] <= 1 and 0.9 < m["roc_auc"] <= 1
    assert set(report.per_class) == {"0", "1"} and report.confusion_matrix["type"] == "ConfusionMatrix"
    assert report.roc_curve["type"] == "ROCCurve" and report.calibration["type"] == "CalibrationCurve"
    run = client.runs.get(report.run_id)
    assert run.status == "Completed" and run.params["model"] == "cancer@1" and run.metrics["accuracy"] == m["accuracy"]
    names = {a.name for a in run.artifacts}
    assert {"confusion-matrix.png", "roc-curve.json", "precision-recall.png", "calibration.png", "report.json"} <= names
    assert orjson.loads(client.runs.read_artifact(report.run_id, "report.json"))["model"] == "cancer@1"


def test_compare_picks_the_best(binary_models, cancer):
    result = binary_models.evaluations.compare(["cancer@1", "cancer@2"], target="target", data=cancer)
    assert result.models == ["cancer@1", "cancer@2"] and result.best["accuracy"] == "cancer@1"
    assert len(result.metrics["roc_auc"]) == 2 and result.best["log_loss"] == "cancer@1"


def test_evaluation_predicts_in_slices_and_reports_progress_to_the_end(binary_models, cancer, monkeypatch):
    from kiln.core.progress import reporting
    from kiln.tracking import _evaluation

    whole = binary_models.evaluations.evaluate("cancer@1", target="target", data=cancer).metrics
    monkeypatch.setattr(_evaluation, "PREDICT_ROWS", 100)  # 569 rows: six calls to the worker
    for run in (lambda: binary_models.evaluations.evaluate("cancer@1", target="target", data=cancer),
                lambda: binary_models.evaluations.compare(["cancer@1", "cancer@2"], target="target", data=cancer)):
        seen: list[float] = []
        with reporting(seen.append):
            got = run()
        assert len(seen) >= 6 and seen == sorted(set(seen)) and seen[-1] == 1.0, seen
    assert got.reports[0].metrics == whole, "the same metrics as from one call"


def test_regression_metrics(sqlite_ws):
    from kiln.core.context import local_context
    from kiln.registry import ModelService, package_model
    from kiln.tracking import EvaluationService

    frame = load_diabetes(as_frame=True).frame
    X, y = frame.drop(columns=["target"]), frame["target"]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        package_model(Ridge().fit(X, y), Path(tmp) / "p", sample_input=X[:3])
        ModelService(sqlite_ws, local_context()).register_folder(name="diabetes", folder=Path(tmp) / "p")
    report = EvaluationService(sqlite_ws, local_context()).evaluate(model="diabetes", target="target", data=frame)
    assert report.problem_type == "regression" and report.confusion_matrix is None
    m = report.metrics
    assert {"mae", "mse", "rmse", "r2", "mape"} <= set(m) and math.isclose(m["rmse"], math.sqrt(m["mse"])) and 0.3 < m["r2"] < 0.7


def test_evaluate_a_lake_dataset(sqlite_ws, cancer):
    from kiln.core.context import local_context
    from kiln.lake.datasets import DatasetService
    from kiln.sdk.client import Client

    DatasetService(sqlite_ws, local_context()).write_table("cancer-data", cancer)
    client = Client(settings=sqlite_ws.settings)
    X = cancer.drop(columns=["target"])
    client.models.register("lr", model=make_pipeline(StandardScaler(), LogisticRegression()).fit(X, cancer["target"]), sample_input=X[:5])
    report = client.evaluations.evaluate("lr", target="target", dataset="cancer-data")
    assert report.dataset == "cancer-data@1" and report.metrics["accuracy"] > 0.8


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": "nope"}, InvalidArgument, "target column 'nope'"),
        ({"target": "target", "model": "missing"}, NotFound, "does not exist"),
        ({"target": "target", "model": "../x"}, InvalidArgument, "invalid model name"),
    ],
)
def test_bad_evaluation_input(binary_models, cancer, kwargs, error, match):
    args = {"model": "cancer@1", **kwargs}
    with pytest.raises(error, match=match):
        binary_models.evaluations.evaluate(args.pop("model"), data=cancer, **args)


def test_cli_evaluate_a_csv_file_and_compare(cli, sqlite_ws, cancer, tmp_path):
    from kiln.core.context import local_context
    from kiln.registry import ModelService, package_model

    X = cancer.drop(columns=["target"])
    package_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, cancer["target"]), tmp_path / "p", sample_input=X[:3])
    ModelService(sqlite_ws, local_context()).register_folder(name="cli0", folder=tmp_path / "p")
    cancer.to_csv(tmp_path / "data.csv", index=False)
    code, out, err = cli("evaluate", "cli0", str(tmp_path / "data.csv"), "--target", "target", "--json")
    assert code == 0, err
    assert orjson.loads(out)["metrics"]["accuracy"] > 0.8
    code, out, err = cli("evaluate", "--compare", "cli0", "cli0", str(tmp_path / "data.csv"), "--target", "target")
    assert code == 0 and "accuracy" in out
    code, _, err = cli("evaluate", "cli0", str(tmp_path / "data.csv"), "--target", "nope")
    assert code == 2 and "target column" in err and "Traceback" not in err
