"""Reading captured data (CONTRACTS.md §4): CSV with and without a header, JSON shapes,
BASE64, outputs as predictions; lines that cannot be read are counted, never raised."""

from __future__ import annotations

import base64

import orjson

from kiln.monitoring._capture import read_capture
from kiln.serving._capture import capture_line
from kiln.serving._spec import CaptureSpec

T0 = 1_767_225_600.0
SPEC = CaptureSpec(enabled=True)
FEATURES = ["x", "k", "c"]


def _line(req: bytes, ctype: str, resp: bytes = b"1\n", rtype: str = "text/csv", when: float = T0, spec: CaptureSpec = SPEC, **kw: str) -> bytes:
    return capture_line(spec, request=req, request_type=ctype, response=resp, response_type=rtype, when=when, **kw)


def test_headerless_csv_maps_onto_the_baselines_feature_order() -> None:
    rows = read_capture([_line(b"1.5,3,red\n2.5,4,blue\n", "text/csv", b"0\n1\n", inference_id="i1"),
                         _line(b"x,k,c\n9,9,green\n", "text/csv", b"1\n")], features=FEATURES)
    assert rows.rows == [{"x": 1.5, "k": 3, "c": "red"}, {"x": 2.5, "k": 4, "c": "blue"}, {"x": 9, "k": 9, "c": "green"}]
    assert rows.predictions == [0, 1, 1] and rows.ids[:2] == [("i1", 0), ("i1", 1)] and rows.faults == {}
    table = rows.table(FEATURES)
    assert table.column_names == FEATURES and table.column("c").to_pylist() == ["red", "blue", "green"]


def test_json_shapes_and_base64() -> None:
    body = orjson.dumps({"instances": [{"x": 1.0, "k": 2, "c": "red"}, [3.0, 4, "blue"]]})
    lines = [
        _line(orjson.dumps({"x": 5.0, "k": 1, "c": "red"}), "application/json", b'{"predictions": [0.2]}', "application/json"),
        _line(orjson.dumps([[1.0, 2, "red"], [2.0, 3, "blue"]]), "application/json", b"[1, 0]", "application/json"),
        _line(orjson.dumps({"dataframe_split": {"columns": ["x", "k"], "data": [[7.0, 8]]}}), "application/json", b"[3]", "application/json"),
        _line(b"\xff6,7,red", "text/csv"),  # not UTF-8: shipped as BASE64, and unreadable as text
    ]
    rows = read_capture(lines, features=FEATURES)
    assert rows.faults == {"unreadable_inputs": 1}
    assert rows.rows[:4] == [{"x": 5.0, "k": 1, "c": "red"}, {"x": 1.0, "k": 2, "c": "red"}, {"x": 2.0, "k": 3, "c": "blue"}, {"x": 7.0, "k": 8}]
    assert rows.predictions[:4] == [0.2, 1, 0, 3]
    b64 = orjson.loads(_line(body, "application/json"))
    b64["captureData"]["endpointInput"].update(encoding="BASE64", data=base64.b64encode(body).decode())
    more = read_capture([orjson.dumps(b64)], features=FEATURES)
    assert more.rows == [{"x": 1.0, "k": 2, "c": "red"}, {"x": 3.0, "k": 4, "c": "blue"}]


def test_what_cannot_be_read_is_counted() -> None:
    good = _line(b"1,2,red\n", "text/csv")
    lines = [b"{not json", b'{"eventMetadata": {}}', good.replace(b"2026-01-01T00:00:00Z", b"yesterday"),
             _line(b"1,2,red", "application/x-npy"), _line(b"{broken", "application/json"),
             _line(b"1,2,red\n3,4,blue\n", "text/csv", b"0\n"), _line(b"1,2,red", "text/csv", spec=CaptureSpec(enabled=True, modes=("Output",))),
             b"", good]
    rows = read_capture(lines, features=FEATURES)
    assert rows.faults == {"malformed_lines": 2, "bad_time": 1, "unreadable_inputs": 2, "outputs_not_matching_inputs": 1, "no_input": 1}
    assert len(rows.rows) == 3 and rows.predictions[:2] == [None, None]


def test_the_window_is_half_open() -> None:
    lines = [_line(b"1,1,a", "text/csv", when=T0 + s) for s in (0, 59, 60, 120)]
    assert len(read_capture(lines, features=FEATURES, start=T0, end=T0 + 60).rows) == 2


def test_open_inference_v2_tensors_are_rows() -> None:
    one = {"inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "BYTES", "data": [1.5, 3, "red", 2.5, 4, "blue"]}]}
    named = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
                        {"name": "c", "shape": [2, 1], "datatype": "BYTES", "data": ["red", "blue"]}]}
    out = {"model_name": "m", "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}
    bad = {"inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP64", "data": [1.0, 2.0]}]}  # 2 values for 6
    rows = read_capture([_line(orjson.dumps(one), "application/json", orjson.dumps(out), "application/json"),
                         _line(orjson.dumps(named), "application/json", orjson.dumps(out), "application/json"),
                         _line(orjson.dumps(bad), "application/json", orjson.dumps(out), "application/json")], features=FEATURES)
    assert rows.rows == [{"x": 1.5, "k": 3, "c": "red"}, {"x": 2.5, "k": 4, "c": "blue"}, {"x": 1.0, "c": "red"}, {"x": 2.0, "c": "blue"}]
    assert rows.predictions == [0, 1, 0, 1] and rows.faults == {"unreadable_inputs": 1}
