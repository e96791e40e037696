"""The sagemaker flavor: models saved by script-mode training jobs, loaded by SageMaker's
inference-handler rules (CONTRACTS.md §2), trusted only by the job that made them."""

from __future__ import annotations

import io
import pickle
import sys
import tarfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from kiln.core.audit import list_events
from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument, PermissionDenied
from kiln.core.ops import OPERATIONS
from kiln.registry import LoadOptions, ModelService, load_folder
from kiln.registry._flavors import get_flavor
from kiln.registry._package import new_manifest

_IRIS = load_iris(as_frame=True)
X, Y = _IRIS.data, _IRIS.target.to_numpy()
ROWS = X.iloc[::15]  # ten rows, every class
COLUMNS = list(X.columns)

# A training script written the SageMaker way: importing it must not train.
TRAIN = '''
import argparse, os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
    raise SystemExit("training ran while the model was loaded")
'''
# Training code only, no __main__ guard: importing it would train (and crash here).
TRAIN_ONLY = '''
import os
import pandas as pd
frame = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"))
raise SystemExit("training ran while the model was loaded")
'''


def _tree() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X.to_numpy(), Y)


def _package(tmp_path: Path, files: dict[str, Any], *, entry: str | None = "train.py", framework: str = "sklearn") -> tuple[Path, Any]:
    folder = tmp_path / "pkg"
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)  # a function that saves a model file there
    options = {"entry_point": entry, "framework": framework, "source_sha256": "0" * 64} if entry else {"algorithm": "xgboost"}
    manifest = new_manifest(folder, flavor="sagemaker", options=options, origin="kiln")
    get_flavor("sagemaker").check(folder, manifest)
    return folder, manifest


def _load(folder: Path, manifest: Any, trust: bool = True) -> Any:
    return load_folder(folder, manifest, LoadOptions(trust_pickle=trust))


def _forms(predictor: Any, rows: pd.DataFrame = ROWS) -> list[np.ndarray]:
    """Predictions for a 2-D array, a DataFrame and CSV text of the same rows."""
    csv = rows.to_csv(header=False, index=False)
    return [np.asarray(predictor.predict(d)) for d in (rows.to_numpy(), rows, csv)]


def test_model_fn_beside_the_training_code(tmp_path: Path) -> None:
    model = _tree()
    folder, manifest = _package(tmp_path, {"model.joblib": lambda p: joblib.dump(model, p), "code/train.py": TRAIN})
    predictor = _load(folder, manifest)
    want = model.predict(ROWS.to_numpy())
    for got in _forms(predictor):
        assert got.tolist() == want.tolist()
    assert predictor.predict_proba(ROWS).shape == (10, 3)
    assert predictor.handlers.model_fn is not None


INFERENCE = '''
import json, os
import joblib
import numpy as np
import pandas as pd

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(request_body, request_content_type):
    assert request_content_type == "text/csv" and isinstance(request_body, str)
    return pd.read_csv(__import__("io").StringIO(request_body), header=None).to_numpy()

def predict_fn(input_data, model):
    return model.predict(input_data) + 100

def output_fn(prediction, accept):
    return json.dumps(prediction.tolist()), accept
'''


def test_a_separate_inference_py_wins(tmp_path: Path) -> None:
    model = _tree()
    broken = "def model_fn(model_dir):\n    raise RuntimeError('train.py is not the handler module here')\n"
    folder, manifest = _package(tmp_path, {"model.joblib": lambda p: joblib.dump(model, p), "code/train.py": broken, "code/inference.py": INFERENCE})
    predictor = _load(folder, manifest)
    want = (model.predict(ROWS.to_numpy()) + 100).tolist()
    assert [got.tolist() for got in _forms(predictor)] == [want] * 3
    assert not predictor.can_predict_proba  # a user predict_fn decides what predict means


def _xgb_booster(objective: str = "multi:softprob") -> Any:
    import xgboost as xgb

    return xgb.train({"objective": objective, "num_class": 3, "max_depth": 2}, xgb.DMatrix(X.to_numpy(), label=Y), num_boost_round=5)


def _lgb_booster() -> Any:
    import lightgbm as lgb

    return lgb.train({"objective": "regression", "verbose": -1, "min_data_in_leaf": 5}, lgb.Dataset(X.to_numpy(), label=Y.astype(float)), num_boost_round=5)


def _want_xgb(booster: Any) -> np.ndarray:
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(ROWS.to_numpy()), validate_features=False))


SAVED = {
    # What bst.save_model("xgboost-model") writes, without XGBoost's warning about the name.
    "xgboost-model": (lambda b, p: p.write_bytes(bytes(b.save_raw("ubj"))), _xgb_booster, _want_xgb),
    "model.json": (lambda b, p: b.save_model(str(p)), _xgb_booster, _want_xgb),
    "model.ubj": (lambda b, p: b.save_model(str(p)), _xgb_booster, _want_xgb),
    "model.txt": (lambda b, p: b.save_model(str(p)), _lgb_booster, lambda b: b.predict(ROWS.to_numpy())),
    "model.joblib": (lambda m, p: joblib.dump(m, p), _tree, lambda m: m.predict(ROWS.to_numpy())),
    "model.pkl": (lambda m, p: p.write_bytes(pickle.dumps(m)), _tree, lambda m: m.predict(ROWS.to_numpy())),
    "pickled/xgboost-model": (lambda b, p: p.write_bytes(pickle.dumps(b)), _xgb_booster, _want_xgb),
}


@pytest.mark.parametrize("kind", list(SAVED))
def test_without_model_fn_the_model_folder_decides(tmp_path: Path, kind: str) -> None:
    save, make, want = SAVED[kind]
    model = make()
    name = kind.split("/")[-1]
    folder, manifest = _package(tmp_path, {name: lambda p: save(model, p), "code/train.py": TRAIN_ONLY})
    predictor = _load(folder, manifest)
    for got in _forms(predictor):
        np.testing.assert_allclose(got, want(model), rtol=1e-6)


def test_an_onnx_file_without_model_fn(tmp_path: Path) -> None:
    import onnxruntime as ort

    onnx = (Path(__file__).parent / "data" / "linear.onnx").read_bytes()
    folder, manifest = _package(tmp_path, {"model.onnx": onnx, "code/train.py": TRAIN_ONLY})
    rows = ROWS.iloc[:, :2]
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    want = session.run(None, {"input": rows.to_numpy(dtype=np.float32)})[0].ravel()
    for got in _forms(_load(folder, manifest), rows):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_built_in_algorithms_model_has_no_code(tmp_path: Path) -> None:
    booster = _xgb_booster()
    folder, manifest = _package(tmp_path, {"xgboost-model": lambda p: p.write_bytes(bytes(booster.save_raw("ubj")))}, entry=None)
    np.testing.assert_allclose(_load(folder, manifest).predict(ROWS), _want_xgb(booster), rtol=1e-6)
    with pytest.raises(PermissionDenied, match="holds a training job's model"):
        _load(folder, manifest, trust=False)


def test_transform_fn(tmp_path: Path) -> None:
    model = _tree()
    handler = (
        "import os, joblib, numpy as np\n"
        "def model_fn(model_dir):\n    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n"
        "def transform_fn(model, request_body, content_type, accept):\n"
        "    rows = np.genfromtxt(request_body.splitlines(), delimiter=',', ndmin=2)\n"
        "    return '\\n'.join(str(int(p)) for p in model.predict(rows)), 'text/csv'\n"
    )
    folder, manifest = _package(tmp_path, {"model.joblib": lambda p: joblib.dump(model, p), "code/inference.py": handler})
    for got in _forms(_load(folder, manifest)):
        assert got.tolist() == model.predict(ROWS.to_numpy()).tolist()


def test_transform_fn_with_the_other_handlers_is_an_error(tmp_path: Path) -> None:
    both = "def model_fn(d):\n    return 1\ndef transform_fn(m, b, c, a):\n    return b\ndef input_fn(b, c):\n    return b\n"
    folder, manifest = _package(tmp_path, {"code/train.py": both})
    with pytest.raises(InvalidArgument, match="code/train.py defines transform_fn and input_fn"):
        _load(folder, manifest)


def test_context_and_default_input(tmp_path: Path) -> None:
    """Handlers may take SageMaker's trailing context (None here); without input_fn a
    predict_fn gets what the framework's container decodes: an array (XGBoost: a DMatrix)."""
    handler = (
        "import numpy as np\n"
        "def model_fn(model_dir, context):\n    assert context is None\n    return 'm'\n"
        "def predict_fn(data, model, context=None):\n    return np.full(data.num_row() if hasattr(data, 'num_row') else len(data), float(type(data).__name__ == '{kind}'))\n"
    )
    for framework, kind in (("sklearn", "ndarray"), ("xgboost", "DMatrix")):
        folder, manifest = _package(tmp_path / framework, {"code/train.py": handler.replace("{kind}", kind)}, framework=framework)
        for got in _forms(_load(folder, manifest)):
            assert got.tolist() == [1.0] * 10


def test_two_models_with_a_same_named_helper_do_not_mix(tmp_path: Path) -> None:
    handler = "import helpers\ndef model_fn(model_dir):\n    return helpers\ndef predict_fn(data, model):\n    return [model.OFFSET] * len(data)\n"
    path_before = list(sys.path)
    loaded = []
    for offset in (1, 2):
        folder, manifest = _package(tmp_path / str(offset), {"code/inference.py": handler, "code/helpers.py": f"OFFSET = {offset}\n"})
        loaded.append(_load(folder, manifest))
    assert [p.predict(ROWS[:2]).tolist() for p in loaded] == [[1, 1], [2, 2]]
    assert sys.path == path_before and "helpers" not in sys.modules


def test_untrusted_code_does_not_run(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    folder, manifest = _package(tmp_path, {"code/inference.py": f"open({str(mark)!r}, 'w').write('x')\ndef model_fn(d):\n    return 1\n"})
    with pytest.raises(PermissionDenied, match="sagemaker package holds code"):
        _load(folder, manifest, trust=False)
    assert not mark.exists()


def test_nothing_to_load_says_what_to_do(tmp_path: Path) -> None:
    folder, manifest = _package(tmp_path, {"notes.txt": "hello", "code/train.py": TRAIN_ONLY})
    with pytest.raises(InvalidArgument, match="defines no model_fn .* define model_fn"):
        _load(folder, manifest)


# -- trust from the job that made the model -------------------------------------------------


@pytest.fixture
def svc(sqlite_ws: Any) -> ModelService:
    return ModelService(sqlite_ws, local_context())


def _job_package(tmp_path: Path) -> Path:
    model = _tree()
    folder, _ = _package(tmp_path, {"model.joblib": lambda p: joblib.dump(model, p), "code/train.py": TRAIN})
    return folder


def _register_job_model(svc: ModelService, folder: Path, name: str = "iris") -> Any:
    options = {"entry_point": "train.py", "framework": "sklearn", "source_sha256": "a" * 64}
    return svc.register_job_model(
        name=name, folder=folder, flavor="sagemaker", flavor_options=options, job="job-1", run_id=None,
        submitter="local:alice", source_sha256="a" * 64,
    )


def test_a_job_model_is_trusted_by_its_job_and_loads_in_a_worker(svc: ModelService, tmp_path: Path) -> None:
    version = _register_job_model(svc, _job_package(tmp_path))
    assert (version.flavor, version.runs_code, version.trusted_by, version.origin) == ("sagemaker", True, "job:job-1", "kiln")
    assert version.trusted_at is not None
    assert (version.lineage.job, version.lineage.extra) == ("job-1", {"submitter": "local:alice", "source_sha256": "a" * 64})
    want = _tree().predict(ROWS.to_numpy()).tolist()
    with svc.start_worker(ref="iris@1") as worker:
        assert worker.predict(ROWS.to_numpy()).tolist() == want
        assert worker.predict(ROWS).tolist() == want
    assert svc.load(ref="iris@1", trust_pickle=True).predict(ROWS.to_csv(header=False, index=False)).tolist() == want
    with pytest.raises(PermissionDenied):
        svc.load(ref="iris@1")
    with svc.ws.db.read() as conn:
        (event,) = list_events(conn, action="models.register", resource="models/iris")
    assert event.details == {"flavor": "sagemaker", "trusted_by": "job:job-1", "version": 1}


def test_register_folder_and_the_upload_route_cannot_set_trust(svc: ModelService, rest: Any, tmp_path: Path) -> None:
    assert not [op.name for op in OPERATIONS.values() if op.call == "register_job_model"]
    folder = _job_package(tmp_path)
    version = svc.register_folder(name="folder", folder=folder, flavor="sagemaker", job="job-1")
    assert (version.runs_code, version.trusted_by) == (True, None)
    # An uploaded package whose manifest claims a job's provenance, with every query a request could add.
    manifest = orjson.loads(new_manifest(folder, flavor="sagemaker", options={"entry_point": "train.py"}, origin="kiln").model_dump_json())
    manifest["lineage"] = {"job": "job-1", "extra": {"submitter": "local:alice"}}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(str(path), arcname=path.relative_to(folder).as_posix())
        data = orjson.dumps({**manifest, "trusted_by": "job:job-1"})
        info = tarfile.TarInfo("kiln-model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    params = {"job": "job-1", "trusted_by": "job:job-1", "trusted": "true"}
    uploaded = rest.post("/v1/models/uploaded/versions", content=buf.getvalue(), params=params, headers={"content-type": "application/octet-stream"})
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["runs_code"], uploaded.json()["trusted_by"]) == (True, None)
    for ref in ("folder@1", "uploaded@1"):
        with pytest.raises(PermissionDenied, match="training code"):
            svc.start_worker(ref=ref)
