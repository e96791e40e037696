"""Flushing into dataset versions: schemas, dead letters, exactly once across crashes, the worker."""

from __future__ import annotations

import time

import pytest

from kiln.core.errors import Conflict
from kiln.lake.streams import StreamService
from kiln.lake.streams import _flush
from kiln.lake.streams._worker import due_streams, run_due
from tests.streams.conftest import datasets


def test_declared_schema_sends_misfits_to_the_dead_letter_dataset_with_the_reason(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks", columns={"user": "string", "ms": "int64", "at": "timestamp", "extra": "json"})
    svc.put_records("clicks", [
        {"user": "a", "ms": 5, "at": "2024-05-01T10:00:00Z", "extra": {"k": [1]}},
        {"user": "b", "ms": "slow"},
        {"user": "c", "ms": 7, "surprise": True},
        {"user": "d"},
        {"user": "e", "at": "yesterday"},
    ])
    result = svc.flush("clicks")
    assert (result.rows, result.dead_letter_rows, result.flushed_sequence_number, result.pending) == (2, 3, 5, 0)
    ds = datasets(svc)
    rows = ds.read_table("clicks").to_pylist()
    assert [r["user"] for r in rows] == ["a", "d"] and rows[0]["extra"] == '{"k":[1]}' and rows[1]["ms"] is None
    dead = {r["sequence_number"]: r for r in ds.read_table("clicks-dlq").to_pylist()}
    assert sorted(dead) == [2, 3, 5]
    assert "field 'ms': expected an integer" in dead[2]["reason"] and '"slow"' in dead[2]["record"]
    assert "['surprise'] are not in the schema" in dead[3]["reason"]
    assert "ISO-8601" in dead[5]["reason"]
    assert ds.get("clicks").lineage["stream"] == {"name": "clicks", "created_at": svc.get("clicks").created_at, "first_sequence_number": 1, "last_sequence_number": 5}
    assert svc.flush("clicks").last_sequence_number is None, "nothing flushes twice"


def test_without_a_schema_the_dataset_schema_rules_and_is_inferred_at_first(streams: StreamService) -> None:
    streams.create("clicks")
    streams.put_records("clicks", [{"user": "a", "ms": 1}, {"user": "b", "ms": 2.5}, {"user": "c", "ms": 3}])
    assert streams.flush("clicks").rows == 3
    ds = datasets(streams)
    assert {c.name: c.type for c in ds.get("clicks").columns} == {"user": "string", "ms": "double"}
    streams.put_records("clicks", [{"user": "d", "ms": 4}, {"user": 5, "ms": 1}, {"ms": 6}])
    second = streams.flush("clicks")
    assert (second.rows, second.dead_letter_rows, second.version) == (2, 1, 2)
    assert ds.get("clicks").row_count == 5 and ds.read_table("clicks").column("ms").to_pylist() == [1.0, 2.5, 3.0, 4.0, 6.0]


def test_a_stream_made_again_under_the_same_name_flushes_its_own_records(streams: StreamService) -> None:
    streams.create("clicks")
    streams.put_records("clicks", [{"n": i} for i in range(5)])
    streams.flush("clicks")
    streams.delete("clicks")
    streams.create("clicks")
    streams.put_records("clicks", [{"n": 5}, {"n": 6}])
    assert streams.flush("clicks").rows == 2, "the old stream's lineage (up to 5) is not this stream's"
    assert datasets(streams).read_table("clicks").column("n").to_pylist() == list(range(7))


def test_a_stream_appends_to_an_existing_dataset_in_its_schema(streams: StreamService) -> None:
    import pandas as pd

    ds = datasets(streams)
    ds.write_table("events", pd.DataFrame({"kind": ["boot"], "n": [1]}))
    streams.create("clicks", dataset="events")
    streams.put_records("clicks", [{"kind": "click", "n": 2}, {"kind": "click", "n": "two"}])
    result = streams.flush("clicks")
    assert (result.dataset, result.version, result.rows, result.dead_letter_dataset) == ("events", 2, 1, "events-dlq")
    assert ds.read_table("events").to_pylist() == [{"kind": "boot", "n": 1}, {"kind": "click", "n": 2}]


@pytest.mark.parametrize("crash_after", ["main", "dead-letter"])
def test_a_crash_after_the_version_commit_does_not_flush_twice(streams: StreamService, monkeypatch: pytest.MonkeyPatch, crash_after: str) -> None:
    """The version commit and the 'flushed up to N' marker are two transactions; a crash
    between them is repaired from the version's lineage on the next flush."""
    streams.create("clicks", columns={"n": "int64"})
    streams.put_records("clicks", [{"n": 1}, {"n": "bad"}, {"n": 3}])
    ds = datasets(streams)
    real_write = ds.write_table.__func__  # type: ignore[attr-defined]
    writes: list[str] = []

    def write_then_maybe_crash(self: object, name: str, *args: object, **kwargs: object) -> object:
        version = real_write(self, name, *args, **kwargs)
        writes.append(name)
        if (crash_after == "main" and name == "clicks") or (crash_after == "dead-letter" and name == "clicks-dlq"):
            raise KeyboardInterrupt("crash")
        return version

    monkeypatch.setattr(type(ds), "write_table", write_then_maybe_crash)
    with pytest.raises(KeyboardInterrupt):
        streams.flush("clicks")
    monkeypatch.undo()
    assert streams.get("clicks").flushed_sequence_number == 0, "the marker did not move"
    streams.put_records("clicks", [{"n": 4}])
    result = streams.flush("clicks")
    assert result.flushed_sequence_number == 4
    assert ds.read_table("clicks").column("n").to_pylist() == [1, 3, 4]
    assert ds.read_table("clicks-dlq").column("sequence_number").to_pylist() == [2]


def test_one_flusher_at_a_time_and_a_dead_one_does_not_block(streams: StreamService) -> None:
    import socket
    import subprocess
    import sys

    streams.create("clicks")
    streams.put_records("clicks", [{"n": 1}])
    _flush._acquire(streams, "clicks", "elsewhere/1/x", 0)
    with pytest.raises(Conflict, match="being flushed"):
        streams.flush("clicks", wait_s=0.1)
    _flush._release(streams, "clicks", "elsewhere/1/x")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True).stdout.strip()
    _flush._acquire(streams, "clicks", f"{socket.gethostname()[:64]}/{gone}/x", 0)
    assert streams.flush("clicks", wait_s=0).rows == 1, "a lease held by a process that died is taken over"


def test_the_worker_flushes_by_size_and_by_age(streams: StreamService) -> None:
    streams.create("big", flush_rows=3, flush_interval_s=3600)
    streams.create("old", flush_rows=1000, flush_interval_s=0.2)
    streams.put_records("big", [{"n": 1}, {"n": 2}])
    streams.put_records("old", [{"n": 1}])
    assert due_streams(streams.ws) == ([], [])
    streams.put_records("big", [{"n": 3}])
    time.sleep(0.25)
    assert sorted(due_streams(streams.ws)[1]) == ["big", "old"]
    assert run_due(streams.ws)["flushed"] == {"big": 3, "old": 1}
    assert due_streams(streams.ws) == ([], [])
