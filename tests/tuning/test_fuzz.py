"""Schemathesis over the tuning routes: no input the schema allows (or nearly allows) makes the
server answer 5xx, and documented responses match their schemas. The workspace holds no
dataset and no code archive, so nothing the fuzzer sends can start a trial."""

from __future__ import annotations

import schemathesis

from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema

_WS, HEADERS = fuzz_workspace("kiln-fuzz-tuning-")
schema = stage_schema(_WS, r"^/v1/tuning-jobs")


@schema.parametrize()
@fuzz_settings(40)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)
