"""Schemathesis over AutoML's routes: no input the schema allows (or nearly allows) makes
the server answer 5xx, and documented responses match their schemas. The workspace holds
no dataset, so nothing the fuzzer sends starts a job."""

from __future__ import annotations

import schemathesis

from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema

_WS, HEADERS = fuzz_workspace("kiln-fuzz-automl-")
schema = stage_schema(_WS, r"^/v1/automl-jobs")


@schema.parametrize()
@fuzz_settings(20)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)


def test_the_automl_routes_are_fuzzed_walked_for_traversal_and_roles() -> None:
    from tests.faces.test_traversal import ROUTES

    have = {(m, p) for m, p, _ in ROUTES}
    assert {("GET", "/v1/automl-jobs/{name}"), ("GET", "/v1/automl-jobs/{name}/report"),
            ("GET", "/v1/automl-jobs/{name}/candidates/{candidate}/script")} <= have
