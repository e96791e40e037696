"""Monitoring's operations, declared once (see :mod:`kiln.core.ops`)."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.monitoring._models import (
    BaselineFiles,
    CompareResult,
    GroundTruthUpload,
    Monitor,
    MonitorRun,
    RunReport,
)

_SVC = "kiln.monitoring._service:MonitoringService"
_MON = "/v1/monitors/{name}"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"monitors.{name}", method=method, path=path, role=role, service=_SVC, call=call, response=response, kind="monitor", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("baseline", "POST", "/v1/monitoring/baselines", "viewer", "baseline", BaselineFiles, body=("dataset", "monitoring_config"),
        summary="Suggest a baseline: Model Monitor's statistics.json and constraints.json of a dataset version."),
    _op("compare", "POST", "/v1/monitoring/compare", "viewer", "compare", CompareResult,
        body=("current", "reference", "statistics", "constraints", "methods", "thresholds", "drift_share", "psi")),
    _op("create", "POST", "/v1/monitors", "editor", "create", Monitor, status=201,
        body=("name", "endpoint", "baseline", "statistics", "constraints", "schedule", "kind", "problem_type", "label", "prediction",
              "positive_label", "methods", "thresholds", "drift_share", "psi")),
    _op("list", "GET", "/v1/monitors", "viewer", "list", list[Monitor]),
    _op("describe", "GET", _MON, "viewer", "describe", Monitor),
    _op("run", "POST", _MON + "/runs", "editor", "run", MonitorRun, body=("window",), status=201),
    _op("runs", "GET", _MON + "/runs", "viewer", "runs", list[MonitorRun]),
    _op("get_run", "GET", _MON + "/runs/{run_id}", "viewer", "get_run", MonitorRun),
    _op("report", "GET", _MON + "/runs/{run_id}/report", "viewer", "report", RunReport),
    _op("ground_truth", "POST", _MON + "/ground-truth", "editor", "ground_truth", GroundTruthUpload, body=("data",), status=201),
    _op("delete", "DELETE", _MON, "editor", "delete", Monitor),
)
(BASELINE, COMPARE, CREATE, LIST, DESCRIBE, RUN, RUNS, GET_RUN, REPORT, GROUND_TRUTH, DELETE) = ALL
