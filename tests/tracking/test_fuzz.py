"""Schemathesis over the tracking and registry routes: nothing the schema (nearly) allows gives a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from tests.faces._fuzz import CHECKS, fuzz_settings, fuzz_workspace, stage_schema  # noqa: E402

_WS, HEADERS = fuzz_workspace("kiln-fuzz-tracking-")
# Uploads (tar packages, Parquet tables) take binary bodies the schema does not describe.
schema = stage_schema(_WS, r"^/v1/(experiments|runs|models|evaluations)", exclude=r"(upload|/versions$)")


@schema.parametrize()
@fuzz_settings(6)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS)
