"""Jobs' declared operations agree on both transports."""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
import pytest

import kiln
from kiln.core.errors import InvalidArgument
from tests.faces.parity import clients_fixture, errors_agree, walk

from .conftest import stop_all, wait_state

pytestmark = pytest.mark.xdist_group("parity-jobs")

PY = sys.executable

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
}


def _seed(client: kiln.Client) -> None:
    client.datasets.ingest("tiny", pd.DataFrame({"y": [0, 1] * 10, "x": range(20)}))
    done = client.processing.run(command=[PY, "-c", "print('done')"], name="done", logs=False)
    assert done.state == "Completed"
    client.processing.run(command=[PY, "-c", "import time; time.sleep(60)"], name="sleeper", wait=False)
    wait_state(client, "sleeper", "Running")


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        walk(clients, EXAMPLES)
    finally:
        for c in clients:
            stop_all(c)


BAD = [
    ("jobs.get", {"name": "ghost"}),
    ("jobs.logs", {"name": "ghost"}),
    ("jobs.stop", {"name": "ghost"}),
    ("jobs.stop", {"name": "done"}),
    ("processing.create", {"command": [PY, "-c", "1"], "inputs": {"raw": "ghost@1"}}),
    ("training.create", {"algorithm": "xgboost", "channels": {}}),
    ("training.create", {"algorithm": "nope", "channels": {"train": "tiny@1"}}),
    ("training.create", {"entry_point": "../train.py", "code": "0" * 64, "channels": {"train": "tiny@1"}}),
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
