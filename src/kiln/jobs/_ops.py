"""Jobs' operations, declared once (see :mod:`kiln.core.ops`).

The code upload (a gzipped tar body, ``POST /v1/jobs/code``) is the special case: a
hand-written route in ``kiln.server.routes.jobs``.
"""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.jobs._models import Job, JobLogs

_JOBS = "kiln.jobs._service:JobService"
_PROCESSING = "kiln.jobs._processing_service:ProcessingService"


def _op(name: str, method: str, path: str, role: str, service: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=name, method=method, path=path, role=role, service=service, call=call, response=response, kind="job", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("jobs.list", "GET", "/v1/jobs", "viewer", _JOBS, "list", list[Job]),
    _op("jobs.get", "GET", "/v1/jobs/{name}", "viewer", _JOBS, "get", Job),
    _op("jobs.logs", "GET", "/v1/jobs/{name}/logs", "viewer", _JOBS, "logs", JobLogs),
    _op("jobs.stop", "POST", "/v1/jobs/{name}/stop", "editor", _JOBS, "stop", Job),
    _op("processing.create", "POST", "/v1/processing-jobs", "editor", _PROCESSING, "create", Job, status=201, body=(
        "name", "code", "entry_point", "command", "arguments", "inputs", "outputs", "environment", "max_run_s", "max_retries", "experiment",
    )),
)
LIST, GET, LOGS, STOP, PROCESSING_CREATE = ALL
