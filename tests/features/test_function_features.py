"""Derived features computed by a registered Kiln function: the same values online (GetRecord,
BatchGetRecord, over REST too) and offline (training sets, to_dataset), the function running
in Kiln's function workers; bad functions and bad answers refused clearly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.errors import FunctionError, InvalidArgument
from kiln.features._service import reads_inline

T0 = 1_700_000_000
CODE = '''
import os

def handler(event):
    return [None if r["x"] is None else r["x"] * 2 + len(r["uid"]) + os.getpid() * 0 for r in event["records"]]

def pid(event):
    return [float(os.getpid()) for _ in event["records"]]

def short(event):
    return [1.0]

def word(event):
    return ["not a number" for _ in event["records"]]
'''
FEATURES = [{"name": "uid", "type": "string"}, {"name": "ts", "type": "fractional"}, {"name": "x", "type": "fractional"}]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "feat.py").write_text(CODE)
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    for name in ("dbl", "pid", "short", "word"):
        c.functions.create(name, handler=f"feat:{'handler' if name == 'dbl' else name}", code=code, timeout_s=30)
    try:
        yield c
    finally:
        c.close()


def test_a_function_feature_is_the_same_online_and_offline(client: kiln.Client) -> None:
    client.features.create("g", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "y", "type": "fractional", "function": "dbl"},
                                                                          {"name": "z", "type": "fractional", "expression": "x + 1"}])
    client.features.put_records("g", [{"uid": "a", "ts": T0, "x": 1.5}, {"uid": "bb", "ts": T0 + 10, "x": 2.0}, {"uid": "a", "ts": T0 + 20, "x": 3.0}])
    online = {r: client.features.get_record("g", r).features for r in ("a", "bb")}
    assert (online["a"]["y"], online["a"]["z"], online["bb"]["y"]) == (7.0, 4.0, 6.0)
    batch = client.features.batch_get([{"feature_group": "g", "record_ids": ["a", "bb", "zz"], "features": ["y"]}])
    assert [r.features for r in batch.records] == [{"y": 7.0}, {"y": 6.0}]
    client.datasets.ingest("ents", pd.DataFrame({"uid": ["a", "a", "bb", "zz"], "event_time": [T0 + 5, T0 + 25, T0 + 15, T0 + 30]}))
    client.features.training_set("ents", features=["g:y", "g:x"], output="train")
    rows = client.sql("SELECT uid, y, x FROM train").rows()
    assert [(r["uid"], r["y"], r["x"]) for r in rows] == [("a", 4.0, 1.5), ("a", 7.0, 3.0), ("bb", 6.0, 2.0), ("zz", None, None)]
    assert rows[1]["y"] == online["a"]["y"] and rows[2]["y"] == online["bb"]["y"]  # the same values both ways
    snap = client.features.to_dataset("g", output="snap", n_recent=1)
    assert sorted((r["uid"], r["y"]) for r in client.sql(f"SELECT uid, y FROM \"{snap.name}\"").rows()) == [("a", 7.0), ("bb", 6.0)]


def test_the_function_runs_in_a_worker_not_in_the_reading_process(client: kiln.Client) -> None:
    client.features.create("p", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "w", "type": "fractional", "function": "pid"}])
    client.features.put_records("p", [{"uid": "a", "ts": T0, "x": 1.0}])
    assert client.features.get_record("p", "a").features["w"] not in (float(os.getpid()), None)


@pytest.mark.parametrize(("function", "error", "words"), [("short", FunctionError, "returned a list of 1 for 2 records"), ("word", FunctionError, "returned a bad value")])
def test_bad_answers_are_function_errors(client: kiln.Client, function: str, error: type[Exception], words: str) -> None:
    client.features.create("b", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "y", "type": "fractional", "function": function}])
    client.features.put_records("b", [{"uid": "a", "ts": T0, "x": 1.0}, {"uid": "c", "ts": T0, "x": 1.0}])
    if function == "word":
        with pytest.raises(error, match=words):
            client.features.get_record("b", "a")
    client.datasets.ingest("ents", pd.DataFrame({"uid": ["a", "c"], "event_time": [T0 + 1, T0 + 1]}))
    with pytest.raises(error, match=words):
        client.features.training_set("ents", features=["b:y"], output="t")
    assert not [d for d in client.datasets.list() if d.name == "t"]  # nothing half-written


def test_unknown_functions_and_bad_definitions_are_refused(client: kiln.Client) -> None:
    with pytest.raises(InvalidArgument, match="function 'ghost' does not exist"):
        client.features.create("u", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "y", "type": "fractional", "function": "ghost"}])
    with pytest.raises(InvalidArgument, match="not both"):
        client.features.create("u", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "y", "type": "fractional", "function": "dbl", "expression": "x"}])
    with pytest.raises(InvalidArgument, match="cannot be derived"):
        client.features.create("u", record_id="uid", event_time="ts", features=[{"name": "uid", "type": "string", "function": "dbl"}, FEATURES[1]])
    assert client.features.list() == []


def test_reads_of_a_function_feature_keep_the_thread_pool(client: kiln.Client) -> None:
    client.features.create("f", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "y", "type": "fractional", "function": "dbl"}])
    client.features.create("s", record_id="uid", event_time="ts", features=FEATURES)
    client.features.put_records("f", [{"uid": "a", "ts": T0, "x": 1.0}])
    client.features.put_records("s", [{"uid": "a", "ts": T0, "x": 1.0}])
    ws = client._t.workspace  # type: ignore[attr-defined]  # the in-process transport's
    assert not reads_inline(ws, {"name": "s"})  # not cached yet: the first read takes the thread pool
    client.features.get_record("s", "a")
    client.features.get_record("f", "a")
    assert reads_inline(ws, {"name": "s"}) and not reads_inline(ws, {"name": "f"})
    assert not reads_inline(ws, {"identifiers": [{"feature_group": "s"}, {"feature_group": "f"}]})


def test_over_rest_a_function_feature_reads_the_same_and_a_bad_one_is_424(client: kiln.Client) -> None:
    from kiln.server.app import create_app
    from tests.faces.conftest import http_client

    client.features.create("r", record_id="uid", event_time="ts", features=[*FEATURES, {"name": "y", "type": "fractional", "function": "dbl"},
                                                                          {"name": "bad", "type": "fractional", "function": "word"}])
    client.features.put_records("r", [{"uid": "a", "ts": T0, "x": 1.0}])
    with http_client(create_app(client._t.workspace, auth=False, allowed_hosts=["testserver"])) as http:  # type: ignore[attr-defined]
        for _ in range(2):  # the second read finds the definition cached: still in the thread pool
            got = http.post("/v1/features/online", json={"identifiers": [{"feature_group": "r", "record_ids": ["a"], "features": ["y"]}]})
            assert got.status_code == 200 and got.json()["records"][0]["features"] == {"y": 3.0}
        bad = http.get("/v1/feature-groups/r/records/a", params={"features": "bad"})
        assert bad.status_code == 424 and "returned a bad value" in bad.json()["error"]["message"]
