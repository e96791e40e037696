"""The serving runtime: packages loaded by flavor answer SageMaker's and MLflow's bodies
with the framework's own predictions, and bad input gets a clear error of the right kind."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from kiln.core.errors import InvalidArgument, NotAcceptable, UnsupportedMediaType
from kiln.registry import package_model
from kiln.serving._runtime import Reply, Servable

X, Y = make_classification(n_samples=120, n_features=4, n_informative=3, n_redundant=0, n_classes=3, random_state=0)
COLUMNS = ["a", "b", "c", "d"]
FRAME = pd.DataFrame(X, columns=COLUMNS)
ROWS = X[::12]  # ten rows


def csv_of(rows: Any) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in r) for r in np.atleast_2d(rows)).encode()


def served(tmp_path: Path, model: Any, sample: Any = None, **kw: Any) -> Servable:
    folder = tmp_path / f"pkg{len(list(tmp_path.iterdir()))}"
    package_model(model, folder, sample_input=sample)
    return Servable.load(folder, trusted=False, **kw)


@pytest.fixture(scope="module")
def logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(X, Y)


@pytest.fixture(scope="module")
def named() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(FRAME, Y)


def test_csv_and_json_give_the_models_labels(tmp_path: Path, logistic: LogisticRegression) -> None:
    s = served(tmp_path, logistic, X[:5])
    want = logistic.predict(ROWS).tolist()
    assert orjson.loads(s.invoke(csv_of(ROWS), "text/csv", None).body) == want
    assert orjson.loads(s.invoke(csv_of(ROWS[0]), "text/csv; charset=utf-8", "*/*").body) == want[:1]
    assert orjson.loads(s.invoke(orjson.dumps(ROWS.tolist()), "application/json", None).body) == want
    assert orjson.loads(s.invoke(orjson.dumps(ROWS[0].tolist()), "application/json", None).body) == want[:1]  # 1-D: one row
    lines = b"\n".join(orjson.dumps(r) for r in ROWS.tolist())
    assert orjson.loads(s.invoke(lines, "application/jsonlines", None).body) == want
    buf = io.BytesIO()
    np.save(buf, ROWS)
    assert orjson.loads(s.invoke(buf.getvalue(), "application/x-npy", None).body) == want


@pytest.mark.parametrize(
    ("accept", "content_type", "read"),
    [
        ("application/json", "application/json", orjson.loads),
        ("text/csv", "text/csv", lambda b: [int(v) for v in b.decode().split()]),
        ("application/x-npy", "application/x-npy", lambda b: np.load(io.BytesIO(b)).tolist()),
        ("application/jsonlines", "application/jsonlines", lambda b: [orjson.loads(x) for x in b.splitlines()]),
        ("text/html, text/csv;q=0.9", "text/csv", lambda b: [int(v) for v in b.decode().split()]),
    ],
)
def test_encoders_follow_accept(tmp_path: Path, logistic: LogisticRegression, accept: str, content_type: str, read: Any) -> None:
    reply = served(tmp_path, logistic).invoke(csv_of(ROWS), "text/csv", accept)
    assert isinstance(reply, Reply) and reply.content_type == content_type
    assert read(reply.body) == logistic.predict(ROWS).tolist()


def test_mlflow_scoring_bodies(tmp_path: Path, named: LogisticRegression) -> None:
    s = served(tmp_path, named, FRAME[:5])
    rows = FRAME.iloc[::12]
    want = {"predictions": named.predict(rows).tolist()}
    shuffled = rows[["d", "b", "a", "c"]]  # names decide, not positions
    bodies = [
        {"dataframe_split": {"columns": list(shuffled.columns), "data": shuffled.to_numpy().tolist()}},
        {"dataframe_records": shuffled.to_dict(orient="records")},
        {"instances": rows.to_numpy().tolist()},
        {"inputs": {c: rows[c].tolist() for c in shuffled.columns}, "params": {"x": 1}},
    ]
    for body in bodies:
        assert orjson.loads(s.invoke(orjson.dumps(body), "application/json", None).body) == want
    proba = {"dataframe_records": shuffled.to_dict(orient="records"), "params": {"predict_method": "predict_proba"}}
    np.testing.assert_allclose(orjson.loads(s.invoke(orjson.dumps(proba), "application/json", None).body)["predictions"], named.predict_proba(rows))
    with pytest.raises(InvalidArgument, match="predict_method 'score'"):
        s.invoke(orjson.dumps({"instances": [[1, 2, 3, 4]], "params": {"predict_method": "score"}}), "application/json", None)
    with pytest.raises(InvalidArgument, match="missing column 'c'"):
        s.invoke(orjson.dumps({"dataframe_split": {"columns": ["a", "b", "d", "x"], "data": [[1, 2, 3, 4]]}}), "application/json", None)
    with pytest.raises(InvalidArgument, match="exactly one of"):
        s.invoke(orjson.dumps({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}), "application/json", None)


def test_a_header_row_only_when_the_model_knows_its_names(tmp_path: Path, named: LogisticRegression, logistic: LogisticRegression) -> None:
    rows = FRAME.iloc[::12][["c", "a", "d", "b"]]
    body = rows.to_csv(index=False).encode()
    assert orjson.loads(served(tmp_path, named, FRAME[:5]).invoke(body, "text/csv", None).body) == named.predict(FRAME.iloc[::12]).tolist()
    with pytest.raises(InvalidArgument, match=r"row 1, column 1: 'c' is not a number"):
        served(tmp_path, logistic).invoke(body, "text/csv", None)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "error", "message"),
    [
        (b"1,2,3,4", "text/html", None, UnsupportedMediaType, "text/html"),
        (b"1,2,3,4", "text/csv", "application/xml", NotAcceptable, "application/xml"),
        (b"", "text/csv", None, InvalidArgument, "empty"),
        (b"  \n", "application/json", None, InvalidArgument, "empty"),
        (b"[[1, 2,", "application/json", None, InvalidArgument, "not valid JSON"),
        (b"1,2,3", "text/csv", None, InvalidArgument, "expected 4 columns per row, got 3"),
        (b"[1, 2, 3, 4, 5]", "application/json", None, InvalidArgument, "expected 4 columns per row, got 5"),
        (b"1,2,3,4\n5,6,x7,8", "text/csv", None, InvalidArgument, r"row 2, column 3: 'x7' is not a number"),
        (b'[[1, 2, 3, 4], [5, 6, "x7", 8]]', "application/json", None, InvalidArgument, r"row 2, column 3: 'x7' is not a number"),
        (b"[[1, 2, 3, 4], [5, 6]]", "application/json", None, InvalidArgument, "row 2 has 2 values but row 1 has 4"),
        (b"1,2,3,4\n5,6", "text/csv", None, InvalidArgument, "row 2 has 2 values but row 1 has 4"),
        (b'{"rows": [1]}', "application/json", None, InvalidArgument, "exactly one of"),
        (b"not npy", "application/x-npy", None, InvalidArgument, "not a .npy"),
        (b"[]", "application/json", None, InvalidArgument, "no rows"),
        (b"\xff\xfe", "text/csv", None, InvalidArgument, "not UTF-8"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    tmp_path: Path, logistic: LogisticRegression, body: bytes, content_type: str, accept: str | None, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        served(tmp_path, logistic, X[:5]).invoke(body, content_type, accept)


def test_xgboost_and_lightgbm_flavors(tmp_path: Path) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    for model in (
        xgb.XGBClassifier(n_estimators=8, max_depth=3).fit(X, Y),
        lgb.LGBMClassifier(n_estimators=8, verbose=-1).fit(X, Y),
        lgb.LGBMRegressor(n_estimators=8, verbose=-1).fit(X, X[:, 0]),
    ):
        s = served(tmp_path, model, X[:5])
        got = orjson.loads(s.invoke(csv_of(ROWS), "text/csv", None).body)
        np.testing.assert_allclose(got, model.predict(ROWS), rtol=1e-6)
        np.testing.assert_allclose(s.predict_array(ROWS), model.predict(ROWS), rtol=1e-6)


def test_decode_and_encode_for_batching(tmp_path: Path, logistic: LogisticRegression) -> None:
    s = served(tmp_path, logistic)
    rows = s.decode(csv_of(ROWS), "text/csv")
    assert rows.shape == (10, 4)
    reply = s.encode(s.predict_array(rows), "text/csv")
    assert reply.body.decode().split() == [str(v) for v in logistic.predict(ROWS)]


def test_a_package_whose_files_changed_is_never_served(tmp_path: Path, logistic: LogisticRegression) -> None:
    folder = tmp_path / "pkg"
    package_model(logistic, folder)
    (folder / "model.skops").write_bytes((folder / "model.skops").read_bytes() + b"x")
    with pytest.raises(InvalidArgument, match="does not match its sha256"):
        Servable.load(folder, trusted=True)
    with pytest.raises(InvalidArgument, match="kiln-model.json"):
        Servable.load(tmp_path, trusted=True)
