"""Metrics, alarms and logs: the declared operations agree on both transports."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk

pytestmark = pytest.mark.xdist_group("parity-metrics")

PY = sys.executable
_T = int(time.time() // 3600) * 3600 - 3600  # a complete hour ago: the same answer on both

EXAMPLES: dict[str, dict[str, Any]] = {
    "metrics.put": {"namespace": "app/x", "data": [{"name": "lat", "values": [1.0, 2.0, 30.0], "counts": [3, 1, 1], "dimensions": {"host": "b"}, "timestamp": _T + 70}]},
    "metrics.list": {"namespace": "app/x", "name": "lat"},
    "metrics.query": {"namespace": "app/x", "name": "lat", "dimensions": {}, "start": _T, "end": _T + 3600, "period": 60, "statistics": ["sum", "p50", "p99", "count"]},
    "metrics.collect": {},
    "alarms.put": {"name": "lat-high", "namespace": "app/x", "metric": "lat", "threshold": 10.0, "comparison": "GreaterThanThreshold",
                   "statistic": "Maximum", "period": 300, "evaluation_periods": 2, "datapoints_to_alarm": 1, "treat_missing_data": "notBreaching",
                   "dimensions": {"host": "b"}, "alarm_actions": ["log"]},
    "alarms.list": {},
    "alarms.get": {"name": "lat-high"},
    "alarms.evaluate": {"names": ["lat-high", "seeded"]},
    "alarms.history": {"name": "seeded"},
    "alarms.delete": {"name": "lat-high"},
    "logs.read": {"kind": "job", "name": "done", "grep": "do", "since": "1d"},
}


def _seed(client: kiln.Client) -> None:
    client.metrics.put("app/x", [{"name": "lat", "value": 5.0, "dimensions": {"host": "a"}, "timestamp": _T + 10}])
    client.alarms.put("seeded", namespace="app/x", metric="lat", threshold=1.0, comparison="GreaterThanThreshold", statistic="Sum")
    assert client.processing.run(command=[PY, "-c", "print('done')"], name="done", logs=False).state == "Completed"


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


FAILURES: dict[str, dict[str, Any]] = {
    "metrics.put": {"namespace": "app/x", "data": [{"name": "x", "value": 1.0, "timestamp": 5.0}]},
    "metrics.put/ns": {"namespace": "../x", "data": [{"name": "x", "value": 1.0}]},
    "metrics.put/empty": {"namespace": "app/x", "data": []},
    "metrics.query": {"namespace": "app/x", "name": "lat", "statistics": ["p100"]},
    "metrics.query/period": {"namespace": "app/x", "name": "lat", "period": 59},
    "metrics.list": {"limit": 0},
    "alarms.get": {"name": "ghost"},
    "alarms.get/bad": {"name": "Bad Name"},
    "alarms.put": {"name": "x", "namespace": "app/x", "metric": "lat", "threshold": 1.0, "comparison": "Bigger"},
    "alarms.put/hook": {"name": "x", "namespace": "app/x", "metric": "lat", "threshold": 1.0, "comparison": "LessThanThreshold", "ok_actions": ["http://169.254.169.254/"]},
    "alarms.delete": {"name": "ghost"},
    "alarms.history": {"name": "ghost"},
    "alarms.evaluate": {"names": ["ghost"]},
    "alarms.list": {"state": "RED"},
    "logs.read": {"kind": "job", "name": "ghost"},
    "logs.read/kind": {"kind": "pod", "name": "done"},
    "logs.read/grep": {"kind": "job", "name": "done", "grep": "(a+)+"},
    "logs.read/since": {"kind": "job", "name": "done", "since": "last week"},
}


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    for case, args in FAILURES.items():
        errors_agree(clients, case.split("/", 1)[0], args)
