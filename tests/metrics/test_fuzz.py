"""Schemathesis over the metrics, alarms and logs routes and /metrics: no input the schema
allows (or nearly allows) makes the server answer 5xx, and documented responses match their
schemas."""

from __future__ import annotations

import schemathesis

from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema

_WS, HEADERS = fuzz_workspace("kiln-fuzz-metrics-")
schema = stage_schema(_WS, r"^/(v1/(metrics|alarms|logs)|metrics$)")


@schema.parametrize()
@fuzz_settings(25)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)
