"""One schemathesis harness for every stage's routes: a workspace of its own with an admin
token (what a real client sends: the token the SDK picks up from kiln server's token file,
and the client header), the in-process app's OpenAPI narrowed to the stage's paths, and one
check list. The schema is loaded at collection, so the workspace is made at import, not in
a fixture."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from kiln.core.auth import TokenService
from kiln.core.config import Settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

# No 5xx, documented status codes and content types; with_schemas: bodies match their schemas too.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
CHECKS_WITH_SCHEMAS = [*CHECKS, response_schema_conformance]


def fuzz_workspace(prefix: str) -> tuple[Workspace, dict[str, str]]:
    """A fresh workspace (removed at exit) and the headers of an admin client."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    ws = Workspace(Settings(home=home / "kiln").resolved())
    atexit.register(ws.close)
    token = TokenService(ws, local_context()).create(name="fuzz-admin-token", role="admin").token
    return ws, {"authorization": f"Bearer {token}", "x-kiln-client": "1"}


def stage_schema(ws: Workspace, include: str, exclude: str | None = None) -> Any:
    """The app's OpenAPI over ``ws``, narrowed to the paths ``include`` matches (less ``exclude``)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ws, auth=True, allowed_hosts=["testserver"])).include(path_regex=include)
    return schema.exclude(path_regex=exclude) if exclude else schema


def fuzz_settings(max_examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings every stage fuzzes with: reproducible, no deadline, no example database."""
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
