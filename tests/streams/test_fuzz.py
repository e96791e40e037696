"""Schemathesis over the streams' routes, on a workspace with one stream holding records:
nothing the schema (nearly) allows gives a 5xx, and documented responses match their schemas."""

from __future__ import annotations

import schemathesis

from kiln.core.context import local_context
from kiln.lake.streams._service import StreamService
from tests.faces._fuzz import CHECKS_WITH_SCHEMAS, fuzz_settings, fuzz_workspace, stage_schema

_WS, HEADERS = fuzz_workspace("kiln-fuzz-streams-")
_STREAMS = StreamService(_WS, local_context())
_STREAMS.create("string")
_STREAMS.put_records("string", [{"string": "a", "x": 1.0}, {"string": "b", "x": 2.0}])
schema = stage_schema(_WS, r"^/v1/streams")


@schema.parametrize()
@fuzz_settings(20)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS_WITH_SCHEMAS)
