"""Schemathesis against the in-process app's OpenAPI: no input the schema allows (or
nearly allows) makes the server answer 5xx, and documented responses match their schemas."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kiln.core.auth import TokenService
from kiln.core.config import Settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

# The schema is loaded at collection, so the workspace is made here, not in a fixture.
_HOME = Path(tempfile.mkdtemp(prefix="kiln-fuzz-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_WS = Workspace(Settings(home=_HOME / "kiln").resolved())
atexit.register(_WS.close)
# What a real client sends: an admin token (as the SDK picks up from kiln server's token file)
# and the client header.
_TOKEN = TokenService(_WS, local_context()).create(name="fuzz-admin-token", role="admin").token
HEADERS = {"authorization": f"Bearer {_TOKEN}", "x-kiln-client": "1"}
APP = create_app(_WS, auth=True, allowed_hosts=["testserver"])

# The foundation's routes; later stages fuzz their own.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex=r"^/v1/(health|tokens|audit|gc|datasets|sql)")


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])
