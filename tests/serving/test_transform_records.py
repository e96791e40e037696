"""Batch transform's record rules without a job: filters, mini-batches, joins, answers."""

from __future__ import annotations

import pytest

from kiln.core.errors import InvalidArgument
from kiln.serving import _transform_records as rec

ROW = ["id7", "1.5", "2.5", "3.5"]


@pytest.mark.parametrize("expr", ["$[1:]", "$[:2]", "$[-2:]", "$[1:3]", "$[0]", "$[-1]", "$[0,2]", "$[ 1 : ]"])
def test_the_fast_filters_agree_with_jsonpath_ng(expr: str) -> None:
    fast = rec.compile_filter(expr)
    slow = rec._jsonpath(expr.replace(" ", ""))
    assert fast is not None and fast(ROW) == slow(ROW)


@pytest.mark.parametrize(("expr", "value", "want"), [
    ("$", {"a": 1}, {"a": 1}),
    ("$.features", {"id": 3, "features": [1, 2]}, [1, 2]),
    ("$.features[1:]", {"features": [1, 2, 3]}, [2, 3]),
    ("$['id','x']", {"id": 3, "x": 4, "y": 5}, [3, 4]),
    ("$[1:]", ROW, ["1.5", "2.5", "3.5"]),
])
def test_filters_select_as_sagemaker_does(expr: str, value: object, want: object) -> None:
    f = rec.compile_filter(expr)
    assert (value if f is None else f(value)) == want


def test_a_bad_filter_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArgument, match=r"\$\[1:"):
        rec.compile_filter("$[1:")


def test_multi_record_batches_fill_up_to_the_payload() -> None:
    assert list(rec.batches([4, 4, 4, 4, 4], "MultiRecord", 10)) == [(0, 2), (2, 4), (4, 5)]
    assert list(rec.batches([4, 4, 4], "SingleRecord", 100)) == [(0, 1), (1, 2), (2, 3)]
    assert list(rec.batches([50], "MultiRecord", 10)) == [(0, 1)]  # the caller refuses it first


def test_records_and_joins() -> None:
    assert rec.split_records(b"a,1\n\nb,2\n", "Line") == [b"a,1", b"b,2"]
    assert rec.split_records(b"a,1\nb,2\n", "None") == [b"a,1\nb,2\n"]
    assert rec.parse_record(b'x,"a,b",3', "text/csv") == ["x", "a,b", "3"]
    assert rec.format_record(["x", "a,b", 3], "text/csv") == b'x,"a,b",3'
    assert rec.join_record(["a", "1"], 0.5) == ["a", "1", 0.5]
    assert rec.join_record({"id": 1}, [0.1, 0.9]) == {"id": 1, "SageMakerOutput": [0.1, 0.9]}


@pytest.mark.parametrize(("body", "accept", "n", "want"), [
    (b"[1, 0, 1]", "application/json", 3, [1, 0, 1]),
    (b'{"predictions": [1, 0]}', "application/json", 2, [1, 0]),
    (b"[0.2, 0.8]", "application/json", 1, [[0.2, 0.8]]),
    (b"1\n0\n", "text/csv", 2, ["1", "0"]),
    (b"0.2,0.8\n", "text/csv", 1, [["0.2", "0.8"]]),
    (b'{"a": 1}\n{"a": 2}\n', "application/jsonlines", 2, [{"a": 1}, {"a": 2}]),
])
def test_answers_split_one_per_record(body: bytes, accept: str, n: int, want: list) -> None:
    assert rec.split_output(body, accept, n) == want


def test_an_answer_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="answered 2 predictions for 3 records"):
        rec.split_output(b"[1, 0]", "application/json", 3)
