"""Schemathesis over the jobs stage's routes (jobs, processing and training jobs, functions):
nothing the schema (nearly) allows gives a 5xx, and documented responses match their schemas.
The workspace holds no uploaded code, so no create the fuzzer sends can start a process."""

from __future__ import annotations

import gzip

import schemathesis
from hypothesis import strategies as st

from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema

# The code upload (POST /v1/jobs/code) takes a gzipped tar: random bytes, and gzip around them.
schemathesis.openapi.media_type("application/gzip", st.binary(max_size=256) | st.binary(max_size=256).map(gzip.compress))
_WS, HEADERS = fuzz_workspace("kiln-fuzz-jobs-")
schema = stage_schema(_WS, r"^/v1/(jobs|functions|processing-jobs|training-jobs)")


@schema.parametrize()
@fuzz_settings(20)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)
