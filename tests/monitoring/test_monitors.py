"""Monitors on both backends (SQLite + folder, PostgreSQL + S3): lifecycle and bad input,
runs over windows of captured data, schedules with missed slots and failures, model quality
with ground truth, and the run's metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

import kiln
from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from kiln.core.workspace import Workspace
from kiln.monitoring import _tables as t
from kiln.monitoring._metrics import run_metrics
from kiln.monitoring._service import MonitoringService
from tests.monitoring.conftest import HOUR, T0, csv_body, frame, put_capture, real_endpoint

WINDOW = "2026-01-01T00:00:00Z/2026-01-01T01:00:00Z"
QUALITY = {"binary_classification_constraints": {"accuracy": {"threshold": 0.9, "comparison_operator": "LessThanThreshold"}}}


@pytest.fixture
def client(any_ws: Workspace, tmp_path: Path) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=any_ws.settings)
    c.datasets.ingest("train", pd.DataFrame(frame(3000)))
    with real_endpoint(c, tmp_path):
        c.monitoring.create("dq", endpoint="ep", baseline="train", schedule="hourly")
        c.monitoring.create("mq", endpoint="ep", kind="model_quality", problem_type="BinaryClassification", constraints=QUALITY, schedule="none")
        yield c
    c.close()


def _events(n: int, *, shift: float, start: float = T0, colours: tuple[str, ...] = ("red", "green", "blue")) -> list[tuple[float, bytes, bytes]]:
    f = frame(n, shift=shift, seed=3, colours=colours)
    return [(start + i * (HOUR / n), csv_body((f["x"][i], f["k"][i], f["c"][i])), b"1\n") for i in range(n)]


def test_lifecycle_and_bad_input(client: kiln.Client) -> None:
    assert [m.name for m in client.monitoring.list()] == ["dq", "mq"]
    dq = client.monitoring.describe("dq")
    assert dq.endpoint == "ep" and dq.baseline["features"] == ["x", "k", "c"] and dq.schedule == "hourly" and dq.next_run_at % 3600 == 0
    with pytest.raises(AlreadyExists):
        client.monitoring.create("dq", endpoint="ep", baseline="train")
    with pytest.raises(NotFound, match="endpoint 'nope'"):
        client.monitoring.create("other", endpoint="nope", baseline="train")
    for bad in ({"schedule": "every tuesday"}, {"schedule": "61 * * * *"}, {"kind": "vibes"}, {"methods": {"x": "magic"}}, {"drift_share": 2}):
        with pytest.raises(InvalidArgument):
            client.monitoring.create("other", endpoint="ep", baseline="train", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        client.monitoring.create("../x", endpoint="ep", baseline="train")
    with pytest.raises(InvalidArgument, match="problem_type"):
        client.monitoring.create("other", endpoint="ep", kind="model_quality", constraints=QUALITY)
    viewer = MonitoringService(client.workspace, Context(actor="v", role="viewer"))
    with pytest.raises(PermissionDenied):
        viewer.create(name="other", endpoint="ep", baseline="train")
    with pytest.raises(PermissionDenied):
        viewer.run(name="dq")
    assert [m.name for m in client.monitoring.list()] == ["dq", "mq"]  # nothing half-made
    with pytest.raises(InvalidArgument, match="window"):
        client.monitoring.run("dq", window="last tuesday")
    client.monitoring.delete("mq")
    with pytest.raises(NotFound):
        client.monitoring.describe("mq")


def test_a_run_over_a_window_of_captured_data(client: kiln.Client) -> None:
    ws = client.workspace
    put_capture(ws, "ep", _events(400, shift=1.5, colours=("red", "purple")), extra=[b"{torn line\n", b'{"captureData": 1}\n'])
    put_capture(ws, "ep", _events(50, shift=0.0, start=T0 + HOUR), name="later")  # outside the window
    run = client.monitoring.run("dq", window=WINDOW)
    assert run.status == "CompletedWithViolations" and run.rows == 400 and run.drift
    assert run.faults["capture"] == {"malformed_lines": 2}
    full = client.monitoring.get_run("dq", run.id[:8])
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in full.constraint_violations or []}
    assert {("x", "baseline_drift_check"), ("c", "categorical_values_check")} <= checks, (full.result or {}).get("columns")
    listed = run_metrics(full)
    metrics = {(m.name, m.dimensions.get("feature")): m for m in listed}
    drift = {f: m for (name, f), m in metrics.items() if name == "feature_baseline_drift"}
    # k did not move: its distance is sampling noise (400 rows against a KLL sketch of 3,000)
    assert drift["x"].value > 0.4 and drift["k"].value < 0.15
    assert drift["x"].dimensions == {"monitor": "dq", "endpoint": "ep", "feature": "x"}
    assert drift["x"].timestamp == T0 + HOUR and metrics["constraint_violations", None].value == run.violations
    assert metrics["dataset_drift", None].value == 1.0 and [m["name"] for m in run.metrics] == [m.name for m in listed]
    assert "<svg" in client.monitoring.report("dq", run.id).html
    empty = client.monitoring.run("dq", window="2025-01-01T00:00:00Z/2025-01-01T01:00:00Z")
    assert empty.status == "Failed" and "no captured data" in (empty.failure_reason or "")
    with pytest.raises(NotFound):
        client.monitoring.report("dq", empty.id)
    assert [r.id for r in client.monitoring.runs("dq")] == [empty.id, run.id]
    with pytest.raises(InvalidArgument):
        client.monitoring.get_run("dq", "../../etc")


def test_a_runs_metrics_reach_the_metrics_store(client: kiln.Client) -> None:
    put_capture(client.workspace, "ep", _events(400, shift=1.5))
    run = client.monitoring.run("dq", window=WINDOW)
    want = {m.dimensions["feature"]: m.value for m in run_metrics(client.monitoring.get_run("dq", run.id)) if m.name == "feature_baseline_drift"}
    got = {}
    for feature in want:
        q = client.metrics.query("kiln/monitoring", "feature_baseline_drift", dimensions={"monitor": "dq", "feature": feature},
                                 start=T0, end=T0 + 2 * HOUR, period=3600, statistics=["max"])
        got[feature] = [p.values["Maximum"] for p in q.datapoints]
    assert got == {f: [pytest.approx(v, rel=0.02)] for f, v in want.items()} and want["x"] > 0.4
    # Every feature's series together: the worst feature, which is what a drift alarm watches.
    q = client.metrics.query("kiln/monitoring", "feature_baseline_drift", dimensions={"monitor": "dq"}, start=T0, end=T0 + 2 * HOUR,
                             period=3600, statistics=["max"])
    assert [p.values["Maximum"] for p in q.datapoints] == [pytest.approx(max(want.values()), rel=0.02)]


def test_schedule_records_missed_slots_and_failures_then_runs_on(client: kiln.Client) -> None:
    ws = client.workspace
    svc = MonitoringService(ws, Context(actor="system:monitors", role="admin"))
    with ws.db.write() as conn:  # as if the server had been down since T0 + 1h
        conn.execute(t.monitors.update().where(t.monitors.c.name == "dq").values(next_slot=T0 + HOUR))
    put_capture(ws, "ep", _events(200, shift=0.0, start=T0 + 4 * HOUR))
    done = svc.tick(now=T0 + 3 * HOUR + 30)
    assert [(r.status, r.window_start, r.window_end) for r in done] == [("Failed", T0 + 2 * HOUR, T0 + 3 * HOUR)]
    assert "no captured data" in (done[0].failure_reason or "")
    missed = [r for r in client.monitoring.runs("dq") if r.status == "Missed"]
    assert sorted(r.scheduled_for for r in missed) == [T0 + HOUR, T0 + 2 * HOUR]
    assert client.monitoring.describe("dq").next_run_at == T0 + 4 * HOUR
    assert svc.tick(now=T0 + 3 * HOUR + 60) == []  # nothing due: no double run
    ok = svc.tick(now=T0 + 5 * HOUR + 1)
    assert [(r.status, r.trigger, r.scheduled_for, r.rows) for r in ok] == [("Completed", "schedule", T0 + 5 * HOUR, 200)]
    assert client.monitoring.describe("mq").next_run_at is None  # on demand only: never scheduled


def test_model_quality_joins_ground_truth_by_inference_id(client: kiln.Client, tmp_path: Path) -> None:
    ws = client.workspace
    events = [(T0 + i, csv_body((0.1 * i, i, "red")), f"{i % 2}\n".encode()) for i in range(40)]  # predicts 0, 1, 0, 1...
    put_capture(ws, "ep", events, ids=[f"inf-{i}" for i in range(40)])
    with pytest.raises(InvalidArgument, match="data quality"):
        client.monitoring.ground_truth("dq", "inference_id,label\ninf-1,1\n")
    with pytest.raises(InvalidArgument, match="neither"):
        client.monitoring.ground_truth("mq", "id;label\n1;1\n")
    labels = "inference_id,label\n" + "".join(f"inf-{i},1\n" for i in range(20))  # the first 20: right on odd ids only
    assert client.monitoring.ground_truth("mq", labels).records == 20
    jsonl = b"".join(orjson.dumps({"groundTruthData": {"data": str(i % 2), "encoding": "CSV"}, "eventMetadata": {"eventId": f"inf-{i}"}, "eventVersion": "0"}) + b"\n"
                     for i in range(20, 30))  # right on all ten
    path = tmp_path / "gt.jsonl"
    path.write_bytes(jsonl)
    assert client.monitoring.ground_truth("mq", path).records == 10
    run = client.monitoring.run("mq", window=WINDOW)
    full = client.monitoring.get_run("mq", run.id)
    mq = (full.result or {})["model_quality"]
    assert mq["matched"] == 30 and mq["unlabelled"] == 10 and mq["metrics"]["accuracy"] == pytest.approx(20 / 30)
    assert run.status == "CompletedWithViolations" and full.constraint_violations[0]["constraint_check_type"] == "LessThanThreshold"  # type: ignore[index]
    assert {m.name: m.value for m in run_metrics(full)}["accuracy"] == pytest.approx(20 / 30)
    client.datasets.ingest("scored", pd.DataFrame({"y": [1, 0, 1, 1, 0, 1, 0, 0], "p": [1, 0, 1, 0, 0, 1, 0, 1]}))
    with pytest.raises(InvalidArgument, match="--label"):
        client.monitoring.create("mq2", endpoint="ep", kind="model_quality", problem_type="BinaryClassification", baseline="scored")
    mq2 = client.monitoring.create("mq2", endpoint="ep", kind="model_quality", problem_type="BinaryClassification", baseline="scored", label="y", prediction="p")
    assert mq2.baseline["metrics"]["accuracy"] == 0.75 and mq2.baseline["metrics"]["recall"] == 0.75
    client.monitoring.ground_truth("mq2", labels)
    client.monitoring.ground_truth("mq2", path)
    rerun = client.monitoring.run("mq2", window=WINDOW)  # same captured data and labels, thresholds 10% under the baseline's
    assert {v["feature_name"] for v in client.monitoring.get_run("mq2", rerun.id).constraint_violations or []} >= {"accuracy"}


def test_deleting_a_monitor_removes_its_runs(client: kiln.Client) -> None:
    put_capture(client.workspace, "ep", _events(100, shift=0.0))
    client.monitoring.run("dq", window=WINDOW)
    client.monitoring.delete("dq")
    with client.workspace.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar() == 0
