"""Schemathesis against the endpoints' routes: no input the schema allows (or nearly allows)
makes the server answer 5xx, and documented responses match their schemas. The workspace
holds no model, so nothing the fuzzer sends starts a process."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from kiln.core.auth import TokenService
from kiln.core.config import Settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

_HOME = Path(tempfile.mkdtemp(prefix="kiln-fuzz-endpoints-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_WS = Workspace(Settings(home=_HOME / "kiln").resolved())
atexit.register(_WS.close)
_TOKEN = TokenService(_WS, local_context()).create(name="fuzz-admin-token", role="admin").token
HEADERS = {"authorization": f"Bearer {_TOKEN}", "x-kiln-client": "1"}
APP = create_app(_WS, auth=True, allowed_hosts=["testserver"])

schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex=r"^/v1/endpoints")


@schema.parametrize()
@settings(max_examples=20, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])
