"""Schemathesis over monitoring's routes (/v1/monitors, /v1/monitoring): nothing the schema
(nearly) allows gives a 5xx. The workspace holds a dataset, so baselines and comparisons
reach real work; it serves no endpoint, so nothing the fuzzer sends starts a process."""

from __future__ import annotations

import pandas as pd
import pytest

schemathesis = pytest.importorskip("schemathesis")
from kiln.core.context import local_context
from kiln.lake.datasets import DatasetService
from tests.faces._fuzz import CHECKS, fuzz_settings, fuzz_workspace, stage_schema

_WS, HEADERS = fuzz_workspace("kiln-fuzz-monitoring-")
DatasetService(_WS, local_context()).write_table("string", pd.DataFrame({"string": ["a", "b", "c"], "x": [1.0, 2.0, 3.5]}))
schema = stage_schema(_WS, r"^/v1/(monitors|monitoring)")


@schema.parametrize()
@fuzz_settings(15)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS)
