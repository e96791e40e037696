"""Schemathesis over the feature store's routes, on a workspace with a feature group and
records: nothing the schema (nearly) allows gives a 5xx."""

from __future__ import annotations

import pandas as pd
import pytest

schemathesis = pytest.importorskip("schemathesis")
from kiln.core.context import local_context  # noqa: E402
from kiln.features._service import FeatureService  # noqa: E402
from kiln.lake.datasets import DatasetService  # noqa: E402
from tests.faces._fuzz import CHECKS, fuzz_settings, fuzz_workspace, stage_schema  # noqa: E402

_WS, HEADERS = fuzz_workspace("kiln-fuzz-features-")
DatasetService(_WS, local_context()).write_table("string", pd.DataFrame({"string": ["a", "b"], "event_time": [1.0e9, 1.1e9], "x": [1.0, 2.0]}))
FeatureService(_WS, local_context()).create("string", record_id="string", event_time="event_time", dataset="string@1")
schema = stage_schema(_WS, r"^/v1/(feature-groups|features)")


@schema.parametrize()
@fuzz_settings(12)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS)
