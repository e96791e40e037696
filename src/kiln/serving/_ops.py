"""Endpoints' operations, declared once (see :mod:`kiln.core.ops`).

Invocation is the special case: its body is the model's input as it is (CSV, JSON, NPY...)
and its answer the model's output with its own content type, so ``POST
/v1/endpoints/{name}/invocations`` is a hand-written route in
``kiln.server.routes.endpoints``: its role (viewer: invoking reads predictions, changes no
resource) is checked before the body is read, and the endpoint's payload limit is enforced
while it is read.
"""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.serving._models import Endpoint, EndpointMetric

_SVC = "kiln.serving._service:EndpointService"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=name, method=method, path=path, role=role, service=_SVC, call=call, response=response, kind="endpoint", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("endpoints.list", "GET", "/v1/endpoints", "viewer", "list", list[Endpoint]),
    _op("endpoints.get", "GET", "/v1/endpoints/{name}", "viewer", "get", Endpoint),
    _op("endpoints.create", "POST", "/v1/endpoints", "editor", "create", Endpoint, status=201, body=(
        "name", "model", "variants", "shadow", "workers", "port", "capture_percent", "capture_modes", "timeout_s", "max_payload_mb",
        "serverless", "batching", "multi_model",
    )),
    _op("endpoints.update", "PATCH", "/v1/endpoints/{name}", "editor", "update", Endpoint, body=(
        "model", "variants", "shadow", "remove_shadow", "workers", "capture_percent", "capture_modes", "timeout_s", "max_payload_mb",
        "batching", "remove_batching",
    )),
    _op("endpoints.delete", "DELETE", "/v1/endpoints/{name}", "editor", "delete", Endpoint),
    _op("endpoints.metrics", "GET", "/v1/endpoints/{name}/metrics", "viewer", "metrics", list[EndpointMetric]),
)
LIST, GET, CREATE, UPDATE, DELETE, METRICS = ALL

# The hand-written invocation route, for the role table and the OpenAPI.
INVOKE_PATH = "/v1/endpoints/{name}/invocations"
INVOKE_ROLE = "viewer"
