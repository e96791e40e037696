"""Open Inference Protocol V2 on the runtime: infer bodies and model metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from kiln.core.errors import InvalidArgument
from kiln.serving._runtime import Servable
from tests.serving.test_runtime import FRAME, ROWS, X, Y, served


@pytest.fixture(scope="module")
def logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, Y)


def _tensor(rows: np.ndarray, datatype: str = "FP64", name: str = "input-0") -> dict:
    return {"name": name, "shape": list(rows.shape), "datatype": datatype, "data": rows.ravel().tolist()}


def test_infer_rows_and_probabilities(tmp_path: Path, logistic: LogisticRegression) -> None:
    s = served(tmp_path, logistic, X[:5], name="iris")
    reply = s.infer_v2({"id": "r1", "inputs": [_tensor(ROWS)], "outputs": [{"name": "predict"}, {"name": "predict_proba"}]})
    assert reply["model_name"] == "iris" and reply["id"] == "r1"
    pred, proba = reply["outputs"]
    assert pred == {"name": "predict", "shape": [10], "datatype": "INT64", "data": logistic.predict(ROWS).tolist()}
    assert proba["shape"] == [10, 3] and proba["datatype"] == "FP64"
    np.testing.assert_allclose(np.reshape(proba["data"], (10, 3)), logistic.predict_proba(ROWS))
    nested = {"inputs": [{"name": "x", "shape": [10, 4], "datatype": "FP32", "data": ROWS.astype(np.float32).tolist()}]}
    assert s.infer_v2(nested)["outputs"][0]["data"] == logistic.predict(ROWS.astype(np.float32)).tolist()
    assert len(s.infer_v2({"inputs": [_tensor(ROWS[0])]})["id"]) == 32  # 1-D: one row; an id is made


def test_infer_columns_by_name(tmp_path: Path) -> None:
    model = LogisticRegression(max_iter=500).fit(FRAME, Y)
    s = served(tmp_path, model, FRAME[:5])
    rows = FRAME.iloc[::12]
    inputs = [_tensor(rows[c].to_numpy(), name=c) for c in ["d", "c", "b", "a"]]
    assert s.infer_v2({"inputs": inputs})["outputs"][0]["data"] == model.predict(rows).tolist()
    with pytest.raises(InvalidArgument, match="missing column 'a'"):
        s.infer_v2({"inputs": inputs[:3]})


def test_bytes_columns_for_a_pipeline_with_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": X[:, 0], "color": np.where(X[:, 1] > 0, "red", "blue")})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["color"]), remainder="passthrough"), LogisticRegression()).fit(frame, Y)
    s = served(tmp_path, model, frame[:5])
    meta = s.metadata_v2()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP64", "shape": [-1]}, {"name": "color", "datatype": "BYTES", "shape": [-1]}]
    rows = frame.iloc[:6]
    inputs = [_tensor(rows["x"].to_numpy(), name="x"), {"name": "color", "shape": [6], "datatype": "BYTES", "data": rows["color"].tolist()}]
    assert s.infer_v2({"inputs": inputs})["outputs"][0]["data"] == model.predict(rows).tolist()
    body = rows.to_csv(index=False, header=False).encode()  # CSV with a text column, by the signature's types
    assert s.invoke(body, "text/csv", "text/csv").body.decode().split() == [str(v) for v in model.predict(rows)]


def test_metadata(tmp_path: Path, logistic: LogisticRegression) -> None:
    meta = served(tmp_path, logistic, X[:5], name="m").metadata_v2()
    assert meta == {
        "name": "m", "versions": [], "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}, {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
    }


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "JSON object"),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3]}]}, "3 values for shape"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]}, "datatype 'FP128'"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, "a", 3, 4]}]}, "value 2: 'a' is not a FP64"),
        ({"inputs": [{"name": "x", "shape": "1,4", "datatype": "FP64", "data": [1]}]}, "shape must be a list"),
        ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, r"inputs\[0\].name"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, "expected 4 columns per row, got 3"),
        ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "outputs": [{"name": "logits"}]}, "'logits'"),
    ],
)
def test_bad_infer_requests(tmp_path: Path, logistic: LogisticRegression, request_: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        served(tmp_path, logistic, X[:5]).infer_v2(request_)  # type: ignore[arg-type]


def test_a_regressor_has_no_probabilities(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    s: Servable = served(tmp_path, Ridge().fit(X, X[:, 0]), X[:5])
    assert [o["name"] for o in s.metadata_v2()["outputs"]] == ["predict"]
    with pytest.raises(InvalidArgument, match="ask for predict"):
        s.infer_v2({"inputs": [_tensor(ROWS)], "outputs": [{"name": "predict_proba"}]})
