"""The model registry's operations, declared once (see :mod:`kiln.core.ops`).

Registering (a tar upload) and reading package files (streamed downloads) are
the special cases: hand-written routes in ``kiln.server.routes.registry``.
"""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.registry._models import Model, ModelVersion

_SVC = "kiln.registry._service:ModelService"
_VERSION = "/v1/models/{name}/versions/{version}"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    ref = ("name", "version") if "{version}" in path else None
    return Operation(name=f"models.{name}", method=method, path=path, role=role, service=_SVC, call=call, response=response, ref=ref, kind="model", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("list", "GET", "/v1/models", "viewer", "list", list[Model]),
    _op("get", "GET", "/v1/models/{name}", "viewer", "get", Model),
    _op("versions", "GET", "/v1/models/{name}/versions", "viewer", "list_versions", list[ModelVersion]),
    _op("get_version", "GET", _VERSION, "viewer", "get_version", ModelVersion),
    _op("describe", "PATCH", "/v1/models/{ref}", "editor", "update", Model, body=("description",)),
    _op("describe_version", "PATCH", _VERSION, "editor", "update", ModelVersion, body=("description",)),
    _op("status", "POST", _VERSION + "/status", "approver", "set_status", ModelVersion, body=("status", "comment")),
    _op("approve", "POST", _VERSION + "/approve", "approver", "set_status", ModelVersion, body=("comment",), fixed={"status": "Approved"}),
    _op("reject", "POST", _VERSION + "/reject", "approver", "set_status", ModelVersion, body=("comment",), fixed={"status": "Rejected"}),
    _op("trust", "POST", _VERSION + "/trust", "admin", "trust", ModelVersion, body=("trusted", "comment")),
    _op("set_alias", "PUT", "/v1/models/{name}/aliases/{alias}", "editor", "set_alias", Model, body=("version",)),
    _op("delete_alias", "DELETE", "/v1/models/{name}/aliases/{alias}", "editor", "delete_alias", Model),
)
LIST, GET, VERSIONS, GET_VERSION, DESCRIBE, DESCRIBE_VERSION, STATUS, APPROVE, REJECT, TRUST, SET_ALIAS, DELETE_ALIAS = ALL
