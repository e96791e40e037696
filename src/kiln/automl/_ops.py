"""AutoML's operations, declared once (see :mod:`kiln.core.ops`). An AutoML run is a job:
it is followed, logged and stopped through the jobs' operations too."""

from __future__ import annotations

from kiln.automl._models import AutoMLJob, AutoMLReport, CandidateScript
from kiln.core.ops import Operation, declare
from kiln.jobs._models import Job

_SVC = "kiln.automl._service:AutoMLService"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"automl.{name}", method=method, path=path, role=role, service=_SVC, call=call, response=response, kind="job", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("create", "POST", "/v1/automl-jobs", "editor", "create", Job, status=201, body=(
        "dataset", "target", "problem_type", "metric", "time_budget_s", "mode", "model_name", "name", "n_jobs", "seed", "max_candidates",
    )),
    _op("list", "GET", "/v1/automl-jobs", "viewer", "list", list[Job]),
    _op("describe", "GET", "/v1/automl-jobs/{name}", "viewer", "describe", AutoMLJob),
    _op("report", "GET", "/v1/automl-jobs/{name}/report", "viewer", "report", AutoMLReport),
    _op("script", "GET", "/v1/automl-jobs/{name}/candidates/{candidate}/script", "viewer", "script", CandidateScript),
)
CREATE, LIST, DESCRIBE, REPORT, SCRIPT = ALL
