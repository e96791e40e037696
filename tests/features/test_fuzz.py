"""Schemathesis over the feature store's routes, on a workspace with a feature group and
records: nothing the schema (nearly) allows gives a 5xx."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance  # noqa: E402

from kiln.core.auth import TokenService  # noqa: E402
from kiln.core.config import Settings  # noqa: E402
from kiln.core.context import local_context  # noqa: E402
from kiln.core.workspace import Workspace  # noqa: E402
from kiln.features._service import FeatureService  # noqa: E402
from kiln.lake.datasets import DatasetService  # noqa: E402
from kiln.server.app import create_app  # noqa: E402

_HOME = Path(tempfile.mkdtemp(prefix="kiln-fuzz-features-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
_WS = Workspace(Settings(home=_HOME / "kiln").resolved())
atexit.register(_WS.close)
_TOKEN = TokenService(_WS, local_context()).create(name="fuzz-admin-token", role="admin").token
HEADERS = {"authorization": f"Bearer {_TOKEN}", "x-kiln-client": "1"}
DatasetService(_WS, local_context()).write_table("string", pd.DataFrame({"string": ["a", "b"], "event_time": [1.0e9, 1.1e9], "x": [1.0, 2.0]}))
FeatureService(_WS, local_context()).create("string", record_id="string", event_time="event_time", dataset="string@1")

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_WS, auth=True, allowed_hosts=["testserver"])).include(path_regex=r"^/v1/(feature-groups|features)")


@schema.parametrize()
@settings(max_examples=12, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=[not_a_server_error, status_code_conformance, content_type_conformance])
