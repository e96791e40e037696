"""Jobs' operations, declared once (see :mod:`kiln.core.ops`).

The code upload (a gzipped tar body, ``POST /v1/jobs/code``) is the special case: a
hand-written route in ``kiln.server.routes.jobs``.
"""

from __future__ import annotations

from typing import Any

from kiln.core.ops import Operation, declare
from kiln.jobs._models import Function, Job, JobLogs

_JOBS = "kiln.jobs._service:JobService"
_PROCESSING = "kiln.jobs._processing_service:ProcessingService"
_FUNCTIONS = "kiln.jobs._functions:FunctionService"


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

# Functions (Lambda). The code travels through the jobs' upload (POST /v1/jobs/code) and is
# named here by its sha256; an invocation's body is the event itself, any JSON, and its
# answer the handler's result.
FUNCTIONS = declare(
    Operation(name="functions.list", method="GET", path="/v1/functions", role="viewer", service=_FUNCTIONS, call="list", response=list[Function], kind="function"),
    Operation(name="functions.get", method="GET", path="/v1/functions/{name}", role="viewer", service=_FUNCTIONS, call="get", response=Function, kind="function"),
    Operation(name="functions.create", method="POST", path="/v1/functions", role="editor", service=_FUNCTIONS, call="create", response=Function, kind="function",
              status=201, body=("name", "handler", "code", "timeout_s", "memory_mb", "environment", "description")),
    Operation(name="functions.update", method="PATCH", path="/v1/functions/{name}", role="editor", service=_FUNCTIONS, call="update", response=Function, kind="function",
              body=("handler", "code", "timeout_s", "memory_mb", "environment", "description")),
    Operation(name="functions.delete", method="DELETE", path="/v1/functions/{name}", role="editor", service=_FUNCTIONS, call="delete", response=list[int], kind="function"),
    Operation(name="functions.invoke", method="POST", path="/v1/functions/{name}/invoke", role="editor", service=_FUNCTIONS, call="invoke", response=Any, kind="function",
              payload="payload"),
    Operation(name="functions.map", method="POST", path="/v1/functions/{name}/map", role="editor", service=_FUNCTIONS, call="map", response=Job, kind="function",
              status=201, body=("dataset", "output_dataset", "batch_size", "job_name", "max_run_s")),
)
FN_LIST, FN_GET, FN_CREATE, FN_UPDATE, FN_DELETE, FN_INVOKE, FN_MAP = FUNCTIONS
