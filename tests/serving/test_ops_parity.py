"""The serving stage's declared operations agree on both transports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kiln
from kiln.core.ops import OPERATIONS
from tests.faces.parity import clients_fixture, errors_agree, resolve, same

from .conftest import custom_model, delete_all

pytestmark = pytest.mark.xdist_group("parity-serving")

# -- endpoints -------------------------------------------------------------------------------
EXAMPLES: dict[str, dict[str, Any]] = {
    "endpoints.list": {},
    "endpoints.get": {"name": "e1"},
    "endpoints.create": {
        "name": "e2", "variants": [{"name": "a", "model": "times@1", "weight": 2}, {"name": "b", "model": "times@2"}], "capture_percent": 50,
        "serverless": {"memory_mb": 2048, "max_concurrency": 3, "idle_timeout_s": 60}, "batching": {"max_batch": 8, "max_delay_ms": 1},
    },
    "endpoints.update": {"name": "e1", "model": "times@2", "timeout_s": 20.0, "batching": {"max_batch": 4}},
    "endpoints.delete": {"name": "e2"},
    "endpoints.metrics": {"name": "e1", "since": 0.0},
}
# -- end of endpoints ------------------------------------------------------------------------

_WHERE = {"url", "port"}  # each workspace's endpoint binds a free port of its own


def _seed(client: kiln.Client) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for i, factor in enumerate((3.0, 5.0), 1):
            client.models.register("times", path=custom_model(Path(tmp) / f"m{i}", factor))
            client.models.trust(f"times@{i}")
    assert client.endpoints.create("e1", model="times@1").state == "InService"


clients = clients_fixture(_seed)


def _agree(here: Any, there: Any) -> Any:
    def strip(value: Any) -> Any:
        value = same(value)
        if isinstance(value, list):
            return [strip(v) for v in value]
        return {k: v for k, v in value.items() if k not in _WHERE} if isinstance(value, dict) else value

    assert type(here) is type(there)
    assert strip(here) == strip(there)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        for name, args in EXAMPLES.items():
            op = OPERATIONS[name]
            here, there = (c._t.call(op, **resolve(c, args)) for c in clients)
            _agree(here, there)
        for c in clients:
            assert c.endpoints.wait("e1").generation == 2
    finally:
        for c in clients:
            delete_all(c)


BAD = [
    ("endpoints.get", {"name": "ghost"}),
    ("endpoints.delete", {"name": "ghost"}),
    ("endpoints.update", {"name": "ghost", "model": "times@1"}),
    ("endpoints.create", {"name": "e1", "model": "times@1"}),
    ("endpoints.create", {"name": "x", "model": "ghost"}),
    ("endpoints.create", {"name": "x", "model": "times@1", "variants": [{"name": "a", "model": "times@1"}]}),
    ("endpoints.create", {"name": "x", "model": "times@1", "port": 22}),
    ("endpoints.list", {"state": "Sleeping"}),
    ("endpoints.metrics", {"name": "ghost"}),
]


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    try:
        for name, args in BAD:
            errors_agree(clients, name, args)
    finally:
        for c in clients:
            delete_all(c)
