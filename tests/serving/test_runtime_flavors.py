"""The other flavors the registry knows, served: built-in algorithms, ONNX, custom handler
packages, and a scikit-learn package that brings code/inference.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.linear_model import SGDClassifier

from kiln.core.errors import InvalidArgument, PermissionDenied
from kiln.registry import package_model
from kiln.registry._package import new_manifest, write_manifest
from kiln.serving._runtime import Servable
from tests.serving.test_runtime import ROWS, X, Y, csv_of

DATA = Path(__file__).parent.parent / "registry" / "data"


def _linear_learner(folder: Path) -> SGDClassifier:
    """A built-in linear-learner's package files, as its training job writes them (no kiln-model.json)."""
    from kiln.training.builtin import _sklearn

    folder.mkdir()
    est = SGDClassifier(loss="log_loss", random_state=0).fit(X.astype(np.float32), Y)
    facts = _sklearn.dump(est, folder)
    algorithm = {"format_version": 1, "algorithm": "linear-learner", "task": "classification", "classes": ["a", "b", "c"],
                 "label_encoding": "classes", "feature_count": 4, **facts}
    (folder / "kiln-algorithm.json").write_text(json.dumps(algorithm))
    return est


def test_a_linear_learner_builtin_serves_its_labels_through_the_fast_path(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    est = _linear_learner(folder)
    write_manifest(folder, new_manifest(folder, flavor="builtin", options={"algorithm": "linear-learner"}, origin="kiln"))
    fast, slow = Servable.load(folder, trusted=False), Servable.load(folder, trusted=False, fast_path=False)
    assert fast.fast_path == "linear"
    want = np.array(["a", "b", "c"])[est.predict(ROWS.astype(np.float32))].tolist()
    for s in (fast, slow):
        assert orjson.loads(s.invoke(csv_of(ROWS), "text/csv", None).body) == want
        assert [orjson.loads(s.invoke(csv_of(r), "text/csv", None).body)[0] for r in ROWS] == want
    with pytest.raises(InvalidArgument, match="expected 4 columns per row, got 2"):
        fast.invoke(b"1,2", "text/csv", None)


def test_a_builtin_package_folder_registers_by_path_as_builtin(tmp_path: Path) -> None:
    """Its kiln-algorithm.json says what the .skops file beside it is: detected before the lone
    skops file a plain sklearn package would be, so the labels come back, not class indices."""
    import kiln
    from kiln.core.config import load_settings

    est = _linear_learner(tmp_path / "pkg")
    with kiln.Client(settings=load_settings(home=str(tmp_path / "home"))) as client:
        version = client.models.register("ll", path=tmp_path / "pkg")
        assert version.flavor == "builtin" and not version.runs_code
        client.models.download(version.ref, tmp_path / "served")
    s = Servable.load(tmp_path / "served", trusted=False)
    assert orjson.loads(s.invoke(csv_of(ROWS), "text/csv", None).body) == np.array(["a", "b", "c"])[est.predict(ROWS.astype(np.float32))].tolist()


def test_an_onnx_model(tmp_path: Path) -> None:
    folder = tmp_path / "onnx"
    folder.mkdir()
    shutil.copy(DATA / "linear.onnx", folder / "model.onnx")
    write_manifest(folder, new_manifest(folder, flavor="onnx", options={"file": "model.onnx"}, origin="folder"))
    s = Servable.load(folder, trusted=False)
    np.testing.assert_allclose(orjson.loads(s.invoke(b"1,2\n3,1", "text/csv", None).body), [0.5, 5.5])
    np.testing.assert_allclose(orjson.loads(s.invoke(b'{"inputs": [[1, 2]]}', "application/json", None).body)["predictions"], [0.5])
    with pytest.raises(InvalidArgument, match="expected 2 columns per row, got 3"):
        s.invoke(b"1,2,3", "text/csv", None)


def test_a_custom_package_and_trust(tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(
        "import helper\n"
        "class Doubler:\n    def predict(self, rows):\n        return helper.double(rows.sum(axis=1))\n"
        "def model_fn(model_dir):\n    return Doubler()\n"
    )
    (folder / "code" / "helper.py").write_text("def double(x):\n    return x * 2\n")
    write_manifest(folder, new_manifest(folder, flavor="custom", options={}, origin="folder"))
    with pytest.raises(PermissionDenied):
        Servable.load(folder, trusted=False)
    s = Servable.load(folder, trusted=True)
    assert orjson.loads(s.invoke(b"1,2\n3,4", "text/csv", None).body) == [6.0, 14.0]


def test_a_sklearn_package_with_inference_code(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=500).fit(X, Y)
    code = tmp_path / "src"
    code.mkdir()
    (code / "inference.py").write_text("def output_fn(prediction, accept):\n    return 'labels:' + ','.join(map(str, prediction)), 'text/plain'\n")
    package_model(model, tmp_path / "pkg", code_dir=code)
    reply = Servable.load(tmp_path / "pkg", trusted=True).invoke(csv_of(ROWS[:3]), "text/csv", None)
    assert reply == type(reply)(b"labels:" + ",".join(map(str, model.predict(ROWS[:3]))).encode(), "text/plain")
    with pytest.raises(PermissionDenied):
        Servable.load(tmp_path / "pkg", trusted=False)
