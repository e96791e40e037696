"""AutoML's declared operations agree on both transports (timings aside)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import kiln
from kiln.core.ops import OPERATIONS
from tests.faces.parity import clients_fixture, errors_agree, resolve, same

pytestmark = pytest.mark.xdist_group("parity-automl")

EXAMPLES: dict[str, dict[str, Any]] = {
    "automl.list": {},
    "automl.describe": {"name": "am1"},
    "automl.report": {"name": "am1", "html": False},
    "automl.script": {"name": "am1", "candidate": "c01-lightgbm"},
    "automl.create": {"dataset": "d@1", "target": "label", "time_budget_s": 6.0, "max_candidates": 1, "n_jobs": 1, "name": "am2"},
}

# What differs between two runs of the same search: clocks and what depends on them.
_TIMING = {"fit_s", "predict_s_per_1k", "elapsed_s", "feature_importance", "shap", "duration_s", "heartbeat_at"}


def _seed(client: kiln.Client) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame({"a": range(60), "b": list("xyz") * 20, "label": [0, 1, 1] * 20}).to_csv(Path(tmp) / "d.csv", index=False)
        client.datasets.ingest("d", Path(tmp) / "d.csv")
    # A budget far above what one candidate takes: under load the candidate still fits every fold alike.
    job = client.automl("d@1", target="label", time_budget_s=120.0, max_candidates=1, n_jobs=1, name="am1")
    assert job.state == "Completed", job.failure_reason


clients = clients_fixture(_seed)


def _strip(value: Any) -> Any:
    value = same(value)
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _TIMING}
    return value


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    for name, args in EXAMPLES.items():
        here, there = (c._t.call(OPERATIONS[name], **resolve(c, args)) for c in clients)
        assert type(here) is type(there), name
        assert _strip(here) == _strip(there), name
    for c in clients:
        assert c.automl.wait("am2").state == "Completed"


BAD = [
    ("automl.describe", {"name": "ghost"}),
    ("automl.report", {"name": "ghost"}),
    ("automl.script", {"name": "am1", "candidate": "c99-x"}),
    ("automl.create", {"dataset": "d@1", "target": "nope"}),
    ("automl.create", {"dataset": "ghost@1", "target": "label"}),
    ("automl.create", {"dataset": "d@1", "target": "label", "metric": "Gini"}),
    ("automl.create", {"dataset": "d@1", "target": "label", "name": "am1"}),
]


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    for name, args in BAD:
        errors_agree(clients, name, args)
