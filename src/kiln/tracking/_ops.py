"""Tracking's operations, declared once (see :mod:`kiln.core.ops`).

The special cases stay hand-written routes in ``kiln.server.routes.tracking``:
artifact upload (a raw body) and download (streamed), and evaluations of uploaded
data (Parquet bodies, ``/v1/evaluations/upload`` and ``/v1/evaluations/compare/upload``).
The evaluations declared here take a Kiln dataset reference (``data`` is always None).
"""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.tracking._models import (
    ArtifactInfo,
    EvaluationComparison,
    EvaluationReport,
    Experiment,
    LogResult,
    MetricHistory,
    RunComparison,
    RunDetail,
    RunInfo,
    RunInputs,
    RunPage,
)

_EXPERIMENTS = "kiln.tracking._experiments:ExperimentService"
_RUNS = "kiln.tracking._runs:RunService"
_ARTIFACTS = "kiln.tracking._artifacts:ArtifactService"
_EVALUATIONS = "kiln.tracking._evaluation:EvaluationService"
# {run_id} is any run reference but `experiment/run-name`, whose '/' cannot travel in one
# path segment: the SDK resolves such a name first with runs.resolve (a body value).
_RUN = "/v1/runs/{run_id}"


def _op(name: str, method: str, path: str, role: str, service: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=name, method=method, path=path, role=role, service=service, call=call, response=response, **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("experiments.create", "POST", "/v1/experiments", "editor", _EXPERIMENTS, "create", Experiment,
        body=("name", "description", "tags"), status=201, kind="experiment"),
    _op("experiments.get", "GET", "/v1/experiments/{name}", "viewer", _EXPERIMENTS, "get", Experiment, kind="experiment"),
    _op("experiments.list", "GET", "/v1/experiments", "viewer", _EXPERIMENTS, "list", list[Experiment]),
    _op("runs.create", "POST", "/v1/runs", "editor", _RUNS, "create", RunInfo,
        body=("experiment_name", "run_name", "tags", "params", "parent_run_id", "source"), status=201, kind="run"),
    _op("runs.resolve", "POST", "/v1/runs/resolve", "viewer", _RUNS, "resolve", RunInfo, body=("ref",), kind="run"),
    _op("runs.get", "GET", _RUN, "viewer", _RUNS, "get", RunDetail, kind="run"),
    _op("runs.log_inputs", "POST", _RUN + "/inputs", "editor", _RUNS, "log_inputs", RunInputs, body=("datasets",), kind="run"),
    _op("runs.log_batch", "POST", _RUN + "/log-batch", "editor", _RUNS, "log_batch", LogResult,
        body=("metrics", "params", "tags"), kind="run"),
    _op("runs.finish", "POST", _RUN + "/finish", "editor", _RUNS, "finish", RunInfo,
        body=("status", "failure_reason", "metrics", "params"), kind="run"),
    _op("runs.metric_history", "GET", _RUN + "/metrics/{key:path}", "viewer", _RUNS, "metric_history", MetricHistory, kind="run"),
    _op("runs.search", "POST", "/v1/runs/search", "viewer", _RUNS, "search", RunPage,
        body=("experiment_names", "filter", "order_by", "limit", "offset", "page_token"), kind="run"),
    _op("runs.compare", "POST", "/v1/runs/compare", "viewer", _RUNS, "compare", RunComparison, body=("run_ids",), kind="run"),
    _op("runs.artifacts", "GET", _RUN + "/artifacts", "viewer", _ARTIFACTS, "list", list[ArtifactInfo], kind="run"),
    _op("evaluations.evaluate", "POST", "/v1/evaluations", "editor", _EVALUATIONS, "evaluate", EvaluationReport,
        body=("model", "target", "dataset", "experiment", "run_name", "problem_type"), fixed={"data": None}, kind="model"),
    _op("evaluations.compare", "POST", "/v1/evaluations/compare", "editor", _EVALUATIONS, "compare", EvaluationComparison,
        body=("models", "target", "dataset", "experiment"), fixed={"data": None}, kind="model"),
)
(
    CREATE_EXPERIMENT, GET_EXPERIMENT, LIST_EXPERIMENTS, CREATE_RUN, RESOLVE, GET_RUN, LOG_INPUTS, LOG_BATCH, FINISH, METRIC_HISTORY,
    SEARCH, COMPARE, LIST_ARTIFACTS, EVALUATE, COMPARE_MODELS,
) = ALL
