"""Runs through the SDK, in-process and over REST: logging, lifecycle and bad input."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from kiln.core.errors import Conflict, InvalidArgument, NotFound
from kiln.sdk.run import Run, load_run


def test_run_logs_params_metrics_tags_and_artifacts(client):
    with Run("churn", "rf-1", {"team": "a"}, client=client) as run:
        run.log_parameters({"max_depth": 5, "lr": 0.1})
        run.log_parameter("max_depth", 5)  # same value again is fine
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metric("auc", 0.9, step=10)
        run.log_metric("bad", float("nan"))
        run.log_metric("big", float("inf"))
        run.set_tag("stage", "dev")
        run.log_artifact("notes.txt", "hello")
        run.log_artifact("cfg.json", {"a": [1, 2]})
    got = client.runs.get(run.id)
    assert got.status == "Completed" and got.end_time is not None
    assert got.params == {"max_depth": "5", "lr": "0.1"}
    assert got.tags == {"team": "a", "stage": "dev"}
    assert got.metrics["loss"] == pytest.approx(1 / 3) and got.metrics["auc"] == 0.9
    assert math.isnan(got.metrics["bad"]) and got.metrics["big"] == math.inf
    assert {a.name for a in got.artifacts} == {"notes.txt", "cfg.json"}
    assert client.runs.read_artifact(run.id, "notes.txt") == b"hello"
    history = client.runs.metric_history(run.id, "loss")
    assert history.steps == [0, 1, 2] and history.values[0] == 1.0


def test_graph_artifacts_follow_sagemaker_shapes(client):
    y = np.array([0, 1, 1, 0, 1, 0])
    p = np.array([0.2, 0.8, 0.6, 0.3, 0.4, 0.1])
    with Run("graphs", client=client) as run:
        cm = run.log_confusion_matrix(y, (p > 0.5).astype(int), title="cm")
        roc = run.log_roc_curve(y, p)
        pr = run.log_precision_recall(y, p, positive_label=1)
    assert cm["type"] == "ConfusionMatrix" and cm["confusionMatrix"] == [[3, 0], [1, 2]]
    assert roc["type"] == "ROCCurve" and 0 <= roc["areaUnderCurve"] <= 1
    assert pr["type"] == "PrecisionRecallCurve" and "averagePrecisionScore" in pr
    names = {a.name for a in client.runs.list_artifacts(run.id)}
    assert {"cm.json", "cm.png", "roc-curve.json", "roc-curve.png", "precision-recall.json"} <= names
    assert client.runs.read_artifact(run.id, "cm.png")[:4] == b"\x89PNG"
    assert orjson.loads(client.runs.read_artifact(run.id, "roc-curve.json"))["type"] == "ROCCurve"


def test_exception_in_block_marks_run_failed(client):
    with pytest.raises(ZeroDivisionError), Run("fails", client=client) as run:
        run.log_metric("x", 1)
        1 / 0  # noqa: B018
    got = client.runs.get(run.id)
    assert got.status == "Failed" and "ZeroDivisionError" in got.failure_reason
    assert got.metrics == {"x": 1.0}


def test_logging_outside_the_block_raises(client):
    run = Run("outside", client=client)
    with pytest.raises(Conflict, match="not active"):
        run.log_metric("x", 1)
    with run:
        pass
    with pytest.raises(Conflict):
        run.log_parameter("a", 1)


def test_param_logged_again_with_another_value_conflicts(client):
    with Run("params", client=client) as run:
        run.log_parameter("depth", 3)
        with pytest.raises(Conflict, match="already '3'"):
            run.log_parameter("depth", 4)
    assert client.runs.get(run.id).params == {"depth": "3"}


def test_logging_to_finished_or_unknown_run(client):
    with Run("done", client=client) as run:
        pass
    with pytest.raises(Conflict, match="Completed"):
        client.runs.log_batch(run.id, metrics=[("x", 1.0, 0, 0.0)])
    with pytest.raises(Conflict):
        client.runs.finish(run.id)
    with pytest.raises(NotFound):
        client.runs.log_batch("0" * 32, metrics=[("x", 1.0, 0, 0.0)])
    with pytest.raises(NotFound):  # a run name (DESIGN.md §4) that no run has
        client.runs.get("not-a-run")
    with pytest.raises(InvalidArgument):
        client.runs.get("../not a run")


def test_bad_metric_values_and_names(client):
    cases = [("ok", "text", "must be a number"), ("ok", True, "must be a number"), ("../x", 1.0, "invalid metric name"), ("", 1.0, "invalid metric name")]
    with Run("bad", client=client) as run:
        for key, value, error in cases:
            with pytest.raises(InvalidArgument, match=error):
                run.log_metric(key, value)


def test_nested_runs_and_load_run(client, monkeypatch):
    with Run("nest", client=client) as parent:
        with parent.child("inner") as child:
            child.log_metric("m", 2)
        monkeypatch.setenv("KILN_RUN_ID", parent.id)
        job_run = load_run(client=client)
        job_run.log_metric("from_job", 7)
        with job_run:  # a job's code may also use it as a context manager
            job_run.log_metric("from_job", 8)
        assert client.runs.get(parent.id).status == "Running"  # the job runner ends it, not load_run
    assert client.runs.get(child.id).parent_run_id == parent.id
    got = client.runs.get(parent.id)
    assert got.status == "Completed" and got.metrics["from_job"] == 8
    monkeypatch.delenv("KILN_RUN_ID")
    with pytest.raises(InvalidArgument, match="KILN_RUN_ID"):
        load_run(client=client)


def test_background_flush_makes_points_visible_before_exit(client):
    with Run("flush", client=client) as run:
        for i in range(1000):
            run.log_metric("m", i)
        run.flush()
        assert client.runs.get(run.id).metrics["m"] == 999
        assert len(client.runs.metric_history(run.id, "m").steps) == 1000


def test_nan_is_a_string_in_rest_json(rest):
    run = rest.post("/v1/runs", json={"experiment_name": "nan"}).json()
    body = {"metrics": [["a", "NaN", 0, 1.0], ["b", "-Infinity", None, None]]}
    assert rest.post(f"/v1/runs/{run['id']}/log-batch", json=body).status_code == 200
    got = rest.get(f"/v1/runs/{run['id']}").json()
    assert got["metrics"] == {"a": "NaN", "b": "-Infinity"}
    page = rest.post("/v1/runs/search", json={"filter": "metrics.a > 0", "experiment_names": ["nan"]}).json()
    assert page["runs"] == []


def test_out_of_range_offsets_and_steps_are_bad_requests_not_500(rest):
    run = rest.post("/v1/runs", json={"experiment_name": "edges"}).json()
    assert rest.post("/v1/runs/search", json={"offset": 10**20}).status_code == 400
    body = {"metrics": [["a", 1.0, 2**63 - 1, None], ["a", 2.0, None, None]]}
    got = rest.post(f"/v1/runs/{run['id']}/log-batch", json=body)
    assert got.status_code == 400 and "step" in got.json()["error"]["message"]


def test_the_service_takes_wire_points_and_checks_its_arguments(sqlite_ws):
    """What the REST routes used to do (null timestamps, body defaults, bounds) the service
    does, so every face gets it."""
    import time

    from kiln.core.context import local_context
    from kiln.tracking import RunService

    svc = RunService(sqlite_ws, local_context())
    run = svc.create(experiment_name="wire", params={"depth": 5, "rate": math.nan}, tags={"on": True})
    before = time.time()
    got = svc.log_batch(run_id=run.id, metrics=[["a", 1.0, None, None], ("a", 2.0, 5, None), {"key": "b", "value": 3.0}])
    assert (got.metrics, got.params, got.tags) == (3, 0, 0)
    history = svc.metric_history(run_id=run.id, key="a")
    assert history.steps == [0, 5] and all(t >= before for t in history.timestamps)
    detail = svc.get(run_id=run.id)
    assert detail.params == {"depth": "5", "rate": "NaN"} and detail.tags == {"on": "True"}
    bad = [
        ({"metrics": [("a", 1.0, 0)]}, "metric point is"),
        ({"metrics": ["a"]}, "metric point is"),
        ({"metrics": [{"value": 1.0}]}, "metric point is"),
        ({"metrics": "a"}, "metrics must be a list"),
        ({"params": ["depth"]}, "params must be a mapping"),
        ({"tags": "x"}, "tags must be a mapping"),
    ]
    for kwargs, match in bad:
        with pytest.raises(InvalidArgument, match=match):
            svc.log_batch(run_id=run.id, **kwargs)
    for kwargs, match in [({"limit": 0}, "limit"), ({"limit": "5"}, "limit"), ({"offset": -1}, "offset"), ({"filter": 3}, "filter")]:
        with pytest.raises(InvalidArgument, match=match):
            svc.search(**kwargs)
    assert [r.id for r in svc.search(experiment_names="wire", order_by="metrics.a DESC").runs] == [run.id]
    with pytest.raises(InvalidArgument, match="list of run ids"):
        svc.compare(run_ids=run.id)
    with pytest.raises(InvalidArgument, match="Completed or Failed"):
        svc.finish(run_id=run.id, status="Paused")
    done = svc.finish(run_id=run.id, metrics=[("a", 4.0, None, None)])
    assert done.status == "Completed" and svc.metric_history(run_id=run.id, key="a").steps == [0, 5, 6]


def test_metric_keys_with_slashes_over_rest(client):
    with Run("slashes", client=client) as run:
        run.log_metric("train/loss", 0.5, step=1)
        run_id = run.id
    history = client.runs.metric_history(run_id, "train/loss")
    assert history.key == "train/loss" and history.values == [0.5]
    with pytest.raises(NotFound, match="no metric 'train/acc'"):
        client.runs.metric_history(run_id, "train/acc")
