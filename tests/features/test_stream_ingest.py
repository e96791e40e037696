"""Stream ingestion: a named consumer, exactly once across a crash between the feature
store's commit and the stream's; bad records skipped and counted."""

from __future__ import annotations

import time

import pytest

from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.features import _service
from kiln.features._service import FeatureService
from kiln.lake.streams._service import StreamService

FEATURES = [{"name": "uid", "type": "integral"}, {"name": "ts", "type": "fractional"}, {"name": "x", "type": "fractional"}]


def _setup(ws: Workspace) -> tuple[FeatureService, StreamService]:
    ctx = local_context()
    svc = FeatureService(ws, ctx)
    svc.create("g", record_id="uid", event_time="ts", features=FEATURES)
    streams = StreamService(ws, ctx)
    streams.create("clicks")
    return svc, streams


def test_each_record_once_and_bad_ones_counted(ws: Workspace) -> None:
    svc, streams = _setup(ws)
    now = time.time()
    streams.put_records("clicks", [{"uid": i, "ts": now + i, "x": float(i)} for i in range(5)] + [{"uid": "nope", "ts": now}])
    first = svc.ingest_stream("g", stream="clicks")
    assert (first.records, first.written, first.rejected, first.duplicates) == (6, 5, 1, 0)
    assert "uid" in first.errors[0] and first.consumer == "features-g"
    assert svc.get_record("g", 4).features["x"] == 4.0
    streams.put_records("clicks", [{"uid": 1, "ts": now + 100, "x": 9.0}])
    again = svc.ingest_stream("g", stream="clicks")
    assert (again.records, again.written) == (1, 1) and svc.get_record("g", 1).features["x"] == 9.0
    assert svc.ingest_stream("g", stream="clicks").records == 0
    assert svc.describe("g").offline_rows == 6


def test_a_crash_before_the_stream_commit_writes_nothing_twice(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    svc, streams = _setup(ws)
    streams.put_records("clicks", [{"uid": i, "ts": 1.7e9 + i, "x": 1.0} for i in range(3)])
    monkeypatch.setattr(_service, "STREAM_LEASE_S", 1.0)

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(StreamService, "commit", crash)
    with pytest.raises(RuntimeError):
        svc.ingest_stream("g", stream="clicks")
    assert svc.describe("g").offline_rows == 3  # committed with the position, before the crash
    monkeypatch.undo()
    monkeypatch.setattr(_service, "STREAM_LEASE_S", 1.0)
    time.sleep(1.2)  # the lease expires: the batch is handed out again
    res = svc.ingest_stream("g", stream="clicks")
    assert (res.records, res.written, res.duplicates) == (3, 0, 3)
    assert svc.describe("g").offline_rows == 3
