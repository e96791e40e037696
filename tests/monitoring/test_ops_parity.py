"""Monitoring's declared operations agree on both transports. Each workspace serves a real
endpoint with data capture, gets traffic, and ships its capture (by deleting the endpoint)
before the monitors are made."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk
from tests.monitoring.conftest import frame
from tests.serving.conftest import custom_model, delete_all

pytestmark = pytest.mark.xdist_group("parity-monitoring")

_HOUR = int(time.time() // 3600) * 3600
WINDOW = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_HOUR - 3600)) + "/" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_HOUR + 7200))
QUALITY = {"regression_constraints": {"rmse": {"threshold": 0.4, "comparison_operator": "GreaterThanThreshold"}}}
GROUND_TRUTH = "inference_id,label\n" + "".join(f"q{i},{3 * (i % 9 + i % 7) + 0.5}\n" for i in range(30))


def _first_run(client: kiln.Client) -> str:
    return client.monitoring.runs("dq")[0].id


EXAMPLES: dict[str, dict[str, Any]] = {
    "monitors.baseline": {"dataset": "train@1"},
    "monitors.compare": {"current": "shifted@1", "reference": "train@1", "methods": {"k": "psi"}, "psi": True},
    "monitors.create": {"name": "fresh", "endpoint": "e1", "baseline": "train@1", "schedule": "*/15 * * * *", "thresholds": {"*": 0.2}},
    "monitors.list": {},
    "monitors.describe": {"name": "dq"},
    "monitors.run": {"name": "dq", "window": WINDOW},
    "monitors.ground_truth": {"name": "mq", "data": GROUND_TRUTH},
    "monitors.runs": {"name": "dq"},
    "monitors.get_run": {"name": "dq", "run_id": _first_run},
    "monitors.report": {"name": "dq", "run_id": _first_run},
    "monitors.delete": {"name": "fresh"},
}


def _seed(client: kiln.Client) -> None:
    client.datasets.ingest("train", pd.DataFrame({"a": np.arange(200) % 9, "b": (np.arange(200) * 7) % 13}))
    f = frame(2000, shift=0.4, seed=5)
    client.datasets.ingest("shifted", pd.DataFrame({"a": f["k"] % 9, "b": f["k"] % 13}))
    with tempfile.TemporaryDirectory() as tmp:
        client.models.register("times", path=custom_model(Path(tmp) / "m", 3.0))
    client.models.trust("times@1")
    client.endpoints.create("e1", model="times@1", capture_percent=100)
    for i in range(30):  # the model answers 3 * (a + b)
        client.endpoints.invoke("e1", f"{i % 9},{i % 7}\n", content_type="text/csv", inference_id=f"q{i}")
    client.endpoints.delete("e1")  # ships the capture into the store
    client.endpoints.create("e1", model="times@1", capture_percent=100)
    client.monitoring.create("dq", endpoint="e1", baseline="train@1", schedule="none")
    client.monitoring.create("mq", endpoint="e1", kind="model_quality", problem_type="Regression", constraints=QUALITY, schedule="none")


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        walk(clients, EXAMPLES)
        for c in clients:  # the capture really was read, and ground truth joined
            assert c.monitoring.runs("dq")[0].rows == 30
            run = c.monitoring.run("mq", window=WINDOW)
            assert run.status == "CompletedWithViolations" and {m["name"]: m["value"] for m in run.metrics}["rmse"] == pytest.approx(0.5)
    finally:
        for c in clients:
            delete_all(c)


FAILURES: dict[str, dict[str, Any]] = {
    "monitors.describe": {"name": "ghost"},
    "monitors.describe/bad": {"name": "Bad Name"},
    "monitors.create": {"name": "dq", "endpoint": "e1", "baseline": "train@1"},
    "monitors.create/schedule": {"name": "x", "endpoint": "e1", "baseline": "train@1", "schedule": "at noon"},
    "monitors.create/endpoint": {"name": "x", "endpoint": "ghost", "baseline": "train@1"},
    "monitors.create/files": {"name": "x", "endpoint": "e1", "statistics": {"features": [{"name": "a", "inferred_type": "Text"}]}},
    "monitors.run": {"name": "dq", "window": "forever"},
    "monitors.ground_truth": {"name": "dq", "data": "inference_id,label\nq1,1\n"},
    "monitors.ground_truth/bad": {"name": "mq", "data": "{\"nope\": 1}\n"},
    "monitors.get_run": {"name": "dq", "run_id": "ffffffff"},
    "monitors.compare": {"current": "train@1"},
    "monitors.compare/method": {"current": "train@1", "reference": "train@1", "methods": {"a": "magic"}},
    "monitors.baseline": {"dataset": "ghost"},
}


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        for case, args in FAILURES.items():
            errors_agree(clients, case.split("/", 1)[0], args)
    finally:
        for c in clients:
            delete_all(c)
