"""Schemathesis against the in-process app's OpenAPI: no input the schema allows (or
nearly allows) makes the server answer 5xx, and documented responses match their schemas.
The foundation's routes; later stages fuzz their own with the same harness (tests/faces/_fuzz.py)."""

from __future__ import annotations

import schemathesis

from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema

_WS, HEADERS = fuzz_workspace("kiln-fuzz-")
schema = stage_schema(_WS, r"^/v1/(health|tokens|audit|gc|datasets|sql)")


@schema.parametrize()
@fuzz_settings(25)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)
