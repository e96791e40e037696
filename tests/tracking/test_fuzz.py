"""Schemathesis over the tracking and registry routes: nothing the schema (nearly) allows gives a 5xx."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance  # noqa: E402

from kiln.core.auth import TokenService  # noqa: E402
from kiln.core.config import Settings  # noqa: E402
from kiln.core.context import local_context  # noqa: E402
from kiln.core.workspace import Workspace  # noqa: E402
from kiln.server.app import create_app  # noqa: E402

_HOME = Path(tempfile.mkdtemp(prefix="kiln-fuzz-tracking-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_WS = Workspace(Settings(home=_HOME / "kiln").resolved())
atexit.register(_WS.close)
# What a real client sends: an admin token (as the SDK picks up from kiln server's token file)
# and the client header.
_TOKEN = TokenService(_WS, local_context()).create(name="fuzz-admin-token", role="admin").token
HEADERS = {"authorization": f"Bearer {_TOKEN}", "x-kiln-client": "1"}

# Uploads (tar packages, Parquet tables) take binary bodies the schema does not describe.
schema = (
    schemathesis.openapi.from_asgi("/openapi.json", create_app(_WS, auth=True, allowed_hosts=["testserver"]))
    .include(path_regex=r"^/v1/(experiments|runs|models|evaluations)")
    .exclude(path_regex=r"(upload|/versions$)")
)


@schema.parametrize()
@settings(max_examples=6, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=[not_a_server_error, status_code_conformance, content_type_conformance])
