"""SageMaker handler packages served as the framework containers serve them (CONTRACTS.md §2):
handlers get the raw request, defaults fill in the rest, errors come back as ModelError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest
from sklearn.tree import DecisionTreeClassifier

from kiln.core.errors import InvalidArgument, ModelError, PermissionDenied
from kiln.registry._package import new_manifest, write_manifest
from kiln.serving._runtime import Servable
from tests.serving.test_runtime import ROWS, X, Y, csv_of

LOAD = "import os, joblib\ndef model_fn(model_dir):\n    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n"


def _tree() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y)


def package(tmp_path: Path, files: dict[str, Any], *, entry: str | None = "inference.py", framework: str = "sklearn") -> Path:
    folder = tmp_path / "pkg"
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
    options = {"entry_point": entry, "framework": framework, "source_sha256": "0" * 64} if entry else {"algorithm": "xgboost"}
    write_manifest(folder, new_manifest(folder, flavor="sagemaker", options=options, origin="kiln"))
    return folder


def _with(tmp_path: Path, model: Any, handlers: str, **kw: Any) -> Servable:
    folder = package(tmp_path, {"model.joblib": lambda p: joblib.dump(model, p), "code/inference.py": LOAD + handlers})
    return Servable.load(folder, trusted=True, **kw)


def test_handlers_get_the_raw_request(tmp_path: Path) -> None:
    model = _tree()
    s = _with(tmp_path, model, (
        "import numpy as np, io, json\n"
        "def input_fn(body, content_type):\n"
        "    if content_type == 'text/csv':\n"
        "        assert isinstance(body, str)\n"
        "        return np.loadtxt(io.StringIO(body), delimiter=',', ndmin=2)\n"
        "    assert isinstance(body, bytes) and content_type == 'application/x-npy'\n"
        "    return np.load(io.BytesIO(body))\n"
        "def predict_fn(data, model):\n    return model.predict(data) + 100\n"
        "def output_fn(prediction, accept):\n    return json.dumps({'accept': accept, 'p': prediction.tolist()}), 'application/x-mine'\n"
    ))
    want = (model.predict(ROWS) + 100).tolist()
    reply = s.invoke(csv_of(ROWS), "text/csv", None)
    assert reply.content_type == "application/x-mine" and orjson.loads(reply.body) == {"accept": "application/json", "p": want}
    import io

    buf = io.BytesIO()
    np.save(buf, ROWS)
    assert orjson.loads(s.invoke(buf.getvalue(), "application/x-npy", "text/anything").body)["accept"] == "text/anything"


def test_only_model_fn_serves_with_the_defaults(tmp_path: Path) -> None:
    model = _tree()
    s = _with(tmp_path, model, "")
    assert orjson.loads(s.invoke(csv_of(ROWS), "text/csv", None).body) == model.predict(ROWS).tolist()
    assert s.invoke(csv_of(ROWS), "text/csv", "text/csv").body.decode().split() == [str(v) for v in model.predict(ROWS)]
    assert s.predict_array(ROWS).tolist() == model.predict(ROWS).tolist()


def test_output_fn_alone_and_context(tmp_path: Path) -> None:
    model = _tree()
    s = _with(tmp_path, model, (
        "def output_fn(prediction, accept, context):\n"
        "    return ','.join(map(str, prediction.tolist())) + '|' + str(context.custom_attributes)\n"
    ))
    reply = s.invoke(csv_of(ROWS[:2]), "text/csv", "text/plain", attributes="trace=1")
    assert reply.content_type == "text/plain"
    assert reply.body.decode() == ",".join(map(str, model.predict(ROWS[:2]).tolist())) + "|trace=1"


def test_transform_fn_and_its_exclusivity(tmp_path: Path) -> None:
    model = _tree()
    s = _with(tmp_path, model, (
        "import numpy as np\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    rows = np.genfromtxt(body.splitlines(), delimiter=',', ndmin=2)\n"
        "    return '\\n'.join(str(int(p)) for p in model.predict(rows))\n"
    ))
    reply = s.invoke(csv_of(ROWS), "text/csv", "text/csv")
    assert reply.content_type == "text/csv" and reply.body.decode().split() == [str(v) for v in model.predict(ROWS)]
    assert s.decode(csv_of(ROWS), "text/csv") is None
    with pytest.raises(InvalidArgument, match="transform_fn"):
        s.predict_array(ROWS)
    with pytest.raises(InvalidArgument, match="define one or the other"):
        _with(tmp_path / "b", model, "def transform_fn(m, b, c, a):\n    return b\ndef input_fn(b, c):\n    return b\n")


def test_no_handler_at_all_uses_the_frameworks_loader(tmp_path: Path) -> None:
    import xgboost as xgb

    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(X, label=Y), num_boost_round=4)
    training = "import os\nraise SystemExit('training ran at load')\n"
    folder = package(tmp_path, {"xgboost-model": lambda p: p.write_bytes(bytes(booster.save_raw("ubj"))), "code/train.py": training},
                     entry="train.py", framework="xgboost")
    s = Servable.load(folder, trusted=True)
    want = booster.predict(xgb.DMatrix(ROWS), validate_features=False)
    np.testing.assert_allclose(orjson.loads(s.invoke(csv_of(ROWS), "text/csv", None).body), want, rtol=1e-6)
    with pytest.raises(PermissionDenied):
        Servable.load(folder, trusted=False)


def test_xgboost_predict_fn_gets_a_dmatrix(tmp_path: Path) -> None:
    import xgboost as xgb

    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 2}, xgb.DMatrix(X, label=X[:, 0]), num_boost_round=4)
    code = (
        "import os, xgboost as xgb\n"
        "def model_fn(model_dir):\n    b = xgb.Booster()\n    b.load_model(os.path.join(model_dir, 'model.ubj'))\n    return b\n"
        "def predict_fn(data, model):\n    assert isinstance(data, xgb.DMatrix)\n    return model.predict(data, validate_features=False) * 2\n"
    )
    folder = package(tmp_path, {"model.ubj": lambda p: booster.save_model(str(p)), "code/inference.py": code}, framework="xgboost")
    got = orjson.loads(Servable.load(folder, trusted=True).invoke(csv_of(ROWS), "text/csv", None).body)
    np.testing.assert_allclose(got, booster.predict(xgb.DMatrix(ROWS)) * 2, rtol=1e-6)


def test_the_model_raising_is_a_model_error_without_server_paths(tmp_path: Path) -> None:
    s = _with(tmp_path, _tree(), "import os\ndef predict_fn(data, model):\n    raise ValueError('cannot score in ' + os.path.dirname(os.path.dirname(__file__)))\n")
    with pytest.raises(ModelError) as info:
        s.invoke(csv_of(ROWS), "text/csv", None)
    assert info.value.message.startswith("ValueError: cannot score in ") and str(tmp_path) not in info.value.message
    assert "Traceback" not in info.value.message


def test_a_handler_with_the_wrong_arguments_fails_to_load(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="input_fn takes 1 arguments"):
        _with(tmp_path, _tree(), "def input_fn(body):\n    return body\n")


def test_model_fn_failing_is_a_model_error(tmp_path: Path) -> None:
    folder = package(tmp_path, {"code/inference.py": "def model_fn(model_dir):\n    raise OSError('no weights in ' + model_dir)\n"})
    with pytest.raises(ModelError, match=r"could not load the sagemaker model: OSError: no weights in <model_dir>"):
        Servable.load(folder, trusted=True)
