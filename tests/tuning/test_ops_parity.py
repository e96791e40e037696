"""Tuning's declared operations agree on both transports."""

from __future__ import annotations

import time
from typing import Any

import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk
from tests.jobs.conftest import stop_all

from .conftest import LR_KIND, SCORE, SCRIPTS

pytestmark = pytest.mark.xdist_group("parity-tuning")


def _code(client: kiln.Client) -> str:
    from kiln.sdk.jobs import upload_source

    code, _ = upload_source(client._t, entry_point="quadratic.py", source_dir=SCRIPTS, dependencies=())
    return code  # the same bytes, the same sha256, on both


_JOB = {"code": _code, "entry_point": "quadratic.py", "objective_metric_name": "score", "metric_definitions": SCORE,
        "hyperparameter_ranges": LR_KIND, "random_seed": 3}

EXAMPLES: dict[str, dict[str, Any]] = {
    "tuning.list": {},
    "tuning.get": {"name": "done"},
    "tuning.stop": {"name": "slow"},
    "tuning.create": {**_JOB, "name": "fresh", "max_jobs": 1, "strategy": "Random", "hyperparameters": {"steps": 1}},
}


def _seed(client: kiln.Client) -> None:
    done = client.tuning.create(entry_point="quadratic.py", source_dir=SCRIPTS, objective_metric_name="score", metric_definitions=SCORE,
                                hyperparameter_ranges=LR_KIND, random_seed=3, name="done", max_jobs=2, max_parallel_jobs=2, wait=True)
    assert done.state == "Completed"
    client.tuning.create(entry_point="quadratic.py", source_dir=SCRIPTS, objective_metric_name="score", metric_definitions=SCORE,
                         hyperparameter_ranges=LR_KIND, random_seed=3, name="slow", max_jobs=1, hyperparameters={"steps": 1, "pause": 120})
    deadline = time.monotonic() + 60
    while [(t.state, t.steps) for t in client.tuning.get("slow").trials] != [("Running", 1)]:  # its one line printed, then asleep
        assert time.monotonic() < deadline
        time.sleep(0.05)


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        walk(clients, EXAMPLES)
        for name, args in FAILURES.items():
            errors_agree(clients, name.split("/")[0], args)
    finally:
        for c in clients:
            stop_all(c)


FAILURES: dict[str, dict[str, Any]] = {
    "tuning.get": {"name": "ghost"},
    "tuning.get/bad": {"name": "Bad Name"},
    "tuning.stop": {"name": "ghost"},
    "tuning.create": {**_JOB, "name": "done"},
    "tuning.create/grid": {**_JOB, "name": "grid", "strategy": "Grid"},
    "tuning.create/metric": {**_JOB, "name": "metric", "objective_metric_name": "auc"},
}
