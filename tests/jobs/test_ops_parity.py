"""Jobs' declared operations agree on both transports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kiln
from kiln.core.errors import InvalidArgument
from tests.faces.parity import clients_fixture, errors_agree, walk

from .conftest import stop_all, wait_state

pytestmark = pytest.mark.xdist_group("parity-jobs")

PY = sys.executable
FUNCTION_CODE = Path(__file__).parent / "data" / "functions"


def _code(client: kiln.Client) -> str:
    from kiln.sdk.jobs import upload_folder

    return upload_folder(client._t, FUNCTION_CODE)  # the same bytes, the same sha256, on both

EXAMPLES: dict[str, dict[str, Any]] = {
    "jobs.list": {"kind": "processing"},
    "jobs.get": {"name": "done"},
    "jobs.logs": {"name": "done"},
    "processing.create": {"name": "p2", "command": [PY, "-c", "print(2)"], "inputs": {"raw": "tiny@1"}},
    "training.create": {
        "name": "t1", "algorithm": "random-forest", "channels": {"train": "tiny@1:csv-noheader"},
        "hyperparameters": {"predictor_type": "classifier", "n_estimators": 5},
    },
    "jobs.stop": {"name": "sleeper"},
    # -- functions -------------------------------------------------------------------------
    "functions.create": {"name": "echo2", "handler": "app:handler", "code": _code, "timeout_s": 10.0, "environment": {"MODE": "x"}},
    "functions.list": {},
    "functions.get": {"name": "echo"},
    "functions.update": {"name": "echo", "description": "echoes its event", "memory_mb": 512},
    "functions.invoke": {"name": "echo@2", "payload": {"a": [1, 2.5, None]}},
    "functions.map": {"name": "echo", "dataset": "tiny@1", "output_dataset": "echoed", "batch_size": 7, "job_name": "echo-map"},
    "functions.delete": {"name": "echo2"},
    # -- end of functions ------------------------------------------------------------------
    "transform.create": {"name": "tx1", "model": "tinylr@1", "input": "tiny@1", "output_location": "tiny-scored", "split_type": "Line"},
}


def _seed(client: kiln.Client) -> None:
    client.datasets.ingest("tiny", pd.DataFrame({"y": [0, 1] * 10, "x": range(20)}))
    done = client.processing.run(command=[PY, "-c", "print('done')"], name="done", logs=False)
    assert done.state == "Completed"
    client.processing.run(command=[PY, "-c", "import time; time.sleep(60)"], name="sleeper", wait=False)
    wait_state(client, "sleeper", "Running")
    client.functions.create("echo", handler="app:handler", code=FUNCTION_CODE)
    from sklearn.linear_model import LogisticRegression  # a transform is a job: its model

    client.models.register("tinylr", model=LogisticRegression().fit([[0, 0], [1, 1]], [0, 1]))


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        walk(clients, EXAMPLES)
        _maps_end_alike(clients)
    finally:
        for c in clients:
            stop_all(c)


def _maps_end_alike(clients: tuple[kiln.Client, kiln.Client]) -> None:
    """The map job the walk started ends alike on both, before the workspaces go."""
    done = [client.jobs.wait("echo-map", timeout_s=60) for client in clients]
    assert [(j.state, j.outputs) for j in done] == [("Completed", {"datasets": {"output": "echoed@1"}})] * 2
    rows = [client.datasets.read("echoed@1").to_pylist() for client in clients]
    assert rows[0] == rows[1] and rows[0][:2] == [{"event": {"y": 0, "x": 0}, "function": "echo"}, {"event": {"y": 1, "x": 1}, "function": "echo"}]


BAD = [
    ("jobs.get", {"name": "ghost"}),
    ("jobs.logs", {"name": "ghost"}),
    ("jobs.stop", {"name": "ghost"}),
    ("jobs.stop", {"name": "done"}),
    ("processing.create", {"command": [PY, "-c", "1"], "inputs": {"raw": "ghost@1"}}),
    ("training.create", {"algorithm": "xgboost", "channels": {}}),
    ("training.create", {"algorithm": "nope", "channels": {"train": "tiny@1"}}),
    ("training.create", {"entry_point": "../train.py", "code": "0" * 64, "channels": {"train": "tiny@1"}}),
    # -- functions -------------------------------------------------------------------------
    ("functions.get", {"name": "ghost"}),
    ("functions.get", {"name": "echo@9"}),
    ("functions.update", {"name": "ghost", "description": "x"}),
    ("functions.delete", {"name": "ghost"}),
    ("functions.invoke", {"name": "ghost", "payload": 1}),
    ("functions.map", {"name": "ghost", "dataset": "tiny@1", "output_dataset": "o"}),
    ("functions.map", {"name": "echo", "dataset": "ghost@1", "output_dataset": "o"}),
    ("functions.create", {"name": "echo", "handler": "app:handler", "code": _code}),
    ("functions.create", {"name": "bad", "handler": "no-colon", "code": _code}),
    ("functions.create", {"name": "bad", "handler": "missing:handler", "code": _code}),
    # -- end of functions ------------------------------------------------------------------
    ("transform.create", {"model": "ghost", "input": "tiny@1", "output_location": "o"}),
    ("transform.create", {"model": "tinylr@1", "input": "tiny@1", "output_location": "o", "split_type": "Lines"}),
]


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    """One seeded pair for every refusal: the same class and message on both transports."""
    try:
        for name, args in BAD:
            errors_agree(clients, name, args)
    finally:
        for c in clients:
            stop_all(c)


def test_a_path_is_read_only_in_process(clients: tuple[kiln.Client, kiln.Client], tmp_path: Any) -> None:
    """Over REST a server reads no file of its own for a caller."""
    local, remote = clients
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    try:
        with pytest.raises(InvalidArgument, match="over REST the server reads no files"):
            remote.processing.run(command=[PY, "-c", "1"], inputs={"raw": str(data)}, wait=False)
        job = local.processing.run(command=[PY, "-c", "1"], inputs={"raw": str(data)}, logs=False)
        assert job.state == "Completed"
    finally:
        for c in clients:
            stop_all(c)
