"""Registering, versioning, approving, aliasing and loading models, from objects and folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kiln.core.context import local_context
from kiln.core.errors import Conflict, NotFound
from kiln.registry import ModelService, package_model
from kiln.sdk.run import Run

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


def test_register_sklearn_object_load_and_lifecycle(client, iris):
    X, y = iris
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    with Run("train", client=client) as run:
        v1 = client.models.register("iris", model=est, sample_input=X[:5], description="first")
    assert (v1.version, v1.flavor, v1.status, v1.task) == (1, "sklearn", "PendingManualApproval", "classification")
    assert v1.lineage.run_id == run.id and v1.signature.inputs[0].name == "sepal length (cm)"
    assert [f.path for f in v1.files] == ["model.skops"]
    v2 = client.models.register("iris", model=LogisticRegression(max_iter=300).fit(X, y), sample_input=X[:5])
    assert v2.version == 2
    client.models.set_alias("iris", "champion", 1)
    assert client.models.approve("iris@champion", comment="good").status == "Approved"
    assert client.models.reject("iris@2").status == "Rejected"
    predictor = client.models.load("iris@champion")
    assert (predictor.predict(X[:5]) == est.predict(X[:5])).all()
    assert predictor.predict_proba(X.to_numpy()[:2]).shape == (2, 3)
    model = client.models.get("iris")
    assert (model.latest_version, model.aliases) == (2, {"champion": 1})
    assert [v.version for v in client.models.versions("iris")] == [2, 1]
    assert client.models.get_version("iris").version == 2
    client.models.delete_alias("iris", "champion")
    with pytest.raises(NotFound, match="no alias"):
        client.models.get_version("iris@champion")
    with pytest.raises(NotFound, match="no version 9"):
        client.models.get_version("iris@9")


def test_a_rejected_version_holds_no_alias(client, iris):
    X, y = iris
    for _ in range(2):
        client.models.register("gate", model=LogisticRegression(max_iter=300).fit(X, y), sample_input=X[:5])
    client.models.set_alias("gate", "prod", 1)
    with pytest.raises(Conflict, match="holds alias prod"):
        client.models.reject("gate@1")
    assert client.models.get_version("gate@1").status == "PendingManualApproval"
    client.models.set_alias("gate", "prod", 2)
    assert client.models.reject("gate@1").status == "Rejected"
    with pytest.raises(Conflict, match="was rejected"):
        client.models.set_alias("gate", "prod", 1)
    assert client.models.get("gate").aliases == {"prod": 2}


def test_approving_needs_an_approver(ws, tmp_path):
    from kiln.core.context import Context
    from kiln.core.errors import PermissionDenied

    X, y = load_iris(return_X_y=True, as_frame=True)
    package_model(LogisticRegression(max_iter=300).fit(X, y), tmp_path / "pkg", sample_input=X[:5])
    editor = ModelService(ws, Context(actor="token:ed", role="editor"))
    editor.register_folder(name="appr", folder=tmp_path / "pkg")
    for status in ("Approved", "Rejected", "PendingManualApproval"):
        with pytest.raises(PermissionDenied, match="needs 'approver'"):
            editor.set_status(ref="appr@1", status=status)
    approver = ModelService(ws, Context(actor="token:ap", role="approver"))
    assert approver.set_status(ref="appr@1", status="Approved").status_updated_by == "token:ap"


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_native_flavors_register_from_the_object(client, iris, kind):
    X, y = iris
    if kind == "xgboost":
        xgb = pytest.importorskip("xgboost")
        est = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
        expect_file = "model.ubj"
    else:
        lgb = pytest.importorskip("lightgbm")
        est = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
        expect_file = "model.txt"
    version = client.models.register(kind, model=est, sample_input=X[:5])
    assert version.flavor == kind and [f.path for f in version.files] == [expect_file]
    predictor = client.models.load(kind)
    assert (predictor.predict(X[:20]) == est.predict(X[:20])).all()
    np.testing.assert_allclose(predictor.predict_proba(X[:20]), est.predict_proba(X[:20]), rtol=1e-5)


def test_onnx_and_custom_folders(client, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    shutil.copy(DATA / "linear.onnx", onnx_dir / "model.onnx")
    assert client.models.register("lin", path=onnx_dir).flavor == "onnx"
    np.testing.assert_allclose(client.models.load("lin").predict([[1, 2], [3, 1]]), [0.5, 5.5])
    custom = tmp_path / "custom"
    (custom / "code").mkdir(parents=True)
    (custom / "weights.txt").write_text("3")
    (custom / "code" / "inference.py").write_text(
        "from pathlib import Path\n"
        "def model_fn(model_dir):\n    return float(Path(model_dir, 'weights.txt').read_text())\n"
        "def predict_fn(data, model):\n    return [model * sum(row) for row in data]\n"
    )
    assert client.models.register("times", path=custom).flavor == "custom"
    assert list(client.models.load("times", trust_pickle=True).predict([[1, 2], [0, 1]])) == [9.0, 3.0]


def test_download_verifies_and_holds_the_manifest(client, iris, tmp_path):
    X, y = iris
    client.models.register("dl", model=LinearRegression().fit(X, y), sample_input=X[:3])
    version = client.models.download("dl@1", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["kiln-model.json", "model.skops"]
    assert version.task == "regression"
    assert b"sha256" in client.models.read_file("dl@1", "kiln-model.json")


def test_register_and_versions_on_both_backends(ws, uniq, iris, tmp_path):
    X, y = iris
    svc = ModelService(ws, local_context())
    package_model(LinearRegression().fit(X, y), tmp_path / "pkg", sample_input=X[:3])
    name = f"m-{uniq}"
    assert [svc.register_folder(name=name, folder=tmp_path / "pkg").version for _ in range(3)] == [1, 2, 3]
    svc.set_alias(name=name, alias="prod", version=2)
    assert svc.get_version(ref=f"{name}@prod").version == 2
    assert svc.load(ref=f"{name}@prod").predict(X[:2]).shape == (2,)
    assert name in {m.name for m in svc.list()}


def test_a_remotely_loaded_model_leaves_no_folder_behind(client, iris, tmp_path, monkeypatch):
    import gc
    import glob
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    X, y = iris
    client.models.register("tidy", model=LogisticRegression(max_iter=300).fit(X, y), sample_input=X[:5])
    predictor = client.models.load("tidy")
    assert len(predictor.predict(X[:3])) == 3
    del predictor
    gc.collect()
    assert glob.glob(str(tmp_path / "kiln-model-*")) == []


@pytest.mark.parametrize("flavor", [None, "xgboost"])
def test_an_xgboost_model_json_folder_registers(client, iris, tmp_path, flavor):
    """A folder holding Booster.save_model("model.json") was not recognised, even with --flavor xgboost."""
    xgb = pytest.importorskip("xgboost")
    X, y = iris
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(X.to_numpy(), label=y), num_boost_round=3)
    folder = tmp_path / "xgb"
    folder.mkdir()
    booster.save_model(str(folder / "model.json"))
    (folder / "notes.json").write_text('{"author": "someone"}')
    version = client.models.register("xgb-json", path=folder, flavor=flavor)
    assert (version.flavor, version.runs_code) == ("xgboost", False)
    got = client.models.load(version.ref).predict(X.to_numpy()[:4])
    np.testing.assert_allclose(got, booster.predict(xgb.DMatrix(X.to_numpy()[:4])), rtol=1e-6)
