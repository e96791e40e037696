"""Schemathesis over the routes derived from the prep and catalog declarations (recipes,
the catalog; profiles are fuzzed with /v1/datasets in tests/faces): nothing the schema
(nearly) allows gives a 5xx, and every answer matches its documented schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema  # noqa: E402

_WS, HEADERS = fuzz_workspace("kiln-fuzz-prep-")
schema = stage_schema(_WS, r"^/v1/(recipes|catalog)")


@schema.parametrize()
@fuzz_settings(10)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)
