"""The durable log on SQLite and PostgreSQL: sequence numbers, positions, consumers, leases."""

from __future__ import annotations

import threading
import time

import pytest

from kiln.core import audit
from kiln.core.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PayloadTooLarge
from kiln.lake.streams import StreamService


def test_puts_get_contiguous_sequence_numbers_and_read_from_every_position(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks")
    first = svc.put_records("clicks", [{"i": i} for i in range(3)])
    second = svc.put_records("clicks", [{"i": 3}, {"i": 4, "nested": {"a": [1, None]}}])
    assert (first.first_sequence_number, first.last_sequence_number, second.sequence_numbers) == (1, 3, [4, 5])
    seqs = lambda r: [x.sequence_number for x in r.records]  # noqa: E731
    assert seqs(svc.read("clicks", limit=2)) == [1, 2]
    assert seqs(svc.read("clicks", position="AT_SEQUENCE_NUMBER", sequence_number=4)) == [4, 5]
    page = svc.read("clicks", position="AFTER_SEQUENCE_NUMBER", sequence_number=4)
    assert seqs(page) == [5] and page.records[0].data == {"i": 4, "nested": {"a": [1, None]}}
    latest = svc.read("clicks", position="LATEST")
    assert latest.records == [] and latest.next_sequence_number == 6
    assert svc.get("clicks").last_sequence_number == 5


def test_concurrent_producers_never_share_a_sequence_number(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks")
    got: list[int] = []

    def produce(worker: int) -> None:
        for i in range(10):
            got.extend(svc.put_records("clicks", [{"w": worker, "i": i}] * 5).sequence_numbers)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(got) == list(range(1, 201))
    assert [r.sequence_number for r in svc.read("clicks", limit=1000).records] == list(range(1, 201))


def test_each_named_consumer_sees_every_record_from_its_checkpoint(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks")
    svc.put_records("clicks", [{"i": i} for i in range(10)])
    for consumer in ("etl", "audit"):
        seen = []
        while (batch := svc.read_consumer("clicks", consumer, limit=4)).records:
            seen += [r.data["i"] for r in batch.records]
            svc.commit("clicks", consumer, batch.lease)
        assert seen == list(range(10))
    late = svc.read_consumer("clicks", "late", position="LATEST")
    assert late.records == [] and svc.get_consumer("clicks", "late").checkpoint == 10
    assert {c.name: (c.checkpoint, c.lag) for c in svc.consumers("clicks")} == {"audit": (10, 0), "etl": (10, 0), "late": (10, 0)}


def test_two_workers_of_one_consumer_never_get_the_same_record(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks")
    for _ in range(2):
        svc.put_records("clicks", [{"i": i} for i in range(100)])
    taken: dict[int, list[int]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def work(worker: int) -> None:
        start.wait()
        while (batch := svc.read_consumer("clicks", "etl", limit=9)).records:
            taken[worker] += [r.sequence_number for r in batch.records]
            time.sleep(0.005)  # processing, while the other worker reads past this lease
            svc.commit("clicks", "etl", batch.lease)

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == list(range(1, 201))
    assert taken[0] and taken[1], "both workers should have had a share"
    assert svc.get_consumer("clicks", "etl").checkpoint == 200


def test_an_expired_lease_goes_to_the_next_reader_and_its_late_commit_conflicts(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks")
    svc.put_records("clicks", [{"i": i} for i in range(6)])
    slow = svc.read_consumer("clicks", "etl", limit=3, lease_s=1)
    fast = svc.read_consumer("clicks", "etl", limit=3)
    assert [r.sequence_number for r in fast.records] == [4, 5, 6]
    svc.commit("clicks", "etl", fast.lease)
    assert svc.get_consumer("clicks", "etl").checkpoint == 0, "records 1-3 are still out"
    time.sleep(1.1)
    again = svc.read_consumer("clicks", "etl", limit=100)
    assert [r.sequence_number for r in again.records] == [1, 2, 3]
    with pytest.raises(Conflict, match="not held"):
        svc.commit("clicks", "etl", slow.lease)
    assert svc.commit("clicks", "etl", again.lease).checkpoint == 6
    with pytest.raises(Conflict):
        svc.commit("clicks", "etl", again.lease)


@pytest.mark.parametrize("records, error, match", [
    ([], InvalidArgument, "empty"),
    ([{"a": 1}, [1, 2]], InvalidArgument, "record 1 is list, not a JSON object"),
    (["text"], InvalidArgument, "not a JSON object"),
    ([None], InvalidArgument, "null"),
    ({"a": 1}, InvalidArgument, "list of JSON objects"),
    ([{1: "non-string key"}], InvalidArgument, "cannot be written as JSON"),
    ([{"a": 1}] * 10_001, PayloadTooLarge, "at most 10000"),
    ([{"blob": "x" * (1 << 20)}], PayloadTooLarge, "at most 1,048,576 bytes"),
    # under the limit in characters, over it in UTF-8 bytes
    ([{"a": 1}, {"blob": "é" * 600_000}], PayloadTooLarge, "record 1 is 1,200,011 bytes"),
])
def test_bad_batches_are_refused_whole(shared: StreamService, records: object, error: type, match: str) -> None:
    before = shared.get("clicks").last_sequence_number
    with pytest.raises(error, match=match):
        shared.put_records("clicks", records)  # type: ignore[arg-type]
    assert shared.get("clicks").last_sequence_number == before


def test_a_record_just_under_the_size_limit_is_taken(shared: StreamService) -> None:
    blob = "é" * ((1 << 19) - 4)  # 2 bytes each, and {"b":"…"} adds 8: exactly 1,048,576 bytes
    put = shared.put_records("clicks", [{"b": blob}])
    assert shared.read("clicks", position="AT_SEQUENCE_NUMBER", sequence_number=put.first_sequence_number, limit=1).records[0].data == {"b": blob}


def test_a_batch_that_fails_midway_leaves_nothing_and_the_next_put_works(any_streams: StreamService) -> None:
    import sqlalchemy as sa

    from kiln.lake.streams import _tables as t

    svc = any_streams
    svc.create("clicks")
    svc.put_records("clicks", [{"i": 0}])
    with svc.ws.db.read() as conn:
        sid = conn.execute(sa.select(t.streams.c.id).where(t.streams.c.name == "clicks")).scalar_one()
    with svc.ws.db.write() as conn:  # a stray row where the 3rd record of the next batch goes
        conn.execute(t.records.insert().values(stream_id=sid, seq=4, time=0.0, data="{}"))
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        svc.put_records("clicks", [{"i": i} for i in range(1, 6)])
    with svc.ws.db.read() as conn:
        kept = conn.execute(sa.select(t.records.c.seq).where(t.records.c.stream_id == sid).order_by(t.records.c.seq)).scalars().all()
    assert kept == [1, 4] and svc.get("clicks").last_sequence_number == 1
    with svc.ws.db.write() as conn:
        conn.execute(t.records.delete().where(t.records.c.stream_id == sid, t.records.c.seq == 4))
    assert svc.put_records("clicks", [{"i": i} for i in range(1, 6)]).sequence_numbers == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("call", [
    lambda s: s.put_records("nope", [{"a": 1}]),
    lambda s: s.read("nope"),
    lambda s: s.read_consumer("nope", "etl"),
    lambda s: s.flush("nope"),
    lambda s: s.delete("nope"),
    lambda s: s.get_consumer("clicks", "nobody"),
])
def test_unknown_streams_and_consumers_are_not_found(shared: StreamService, call: object) -> None:
    with pytest.raises(NotFound):
        call(shared)  # type: ignore[operator]


@pytest.mark.parametrize("kwargs, match", [
    ({"position": "SOMEWHERE"}, "unknown position"),
    ({"position": "AT_SEQUENCE_NUMBER"}, "needs a sequence number"),
    ({"position": "TRIM_HORIZON", "sequence_number": 3}, "goes with AT_SEQUENCE_NUMBER"),
    ({"limit": 0}, "limit"),
    ({"limit": 10_001}, "limit"),
])
def test_bad_positions_are_refused(shared: StreamService, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        shared.read("clicks", **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "Bad_Name"}, "invalid stream name"),
    ({"name": "ok", "dataset": "../x"}, "invalid dataset name"),
    ({"name": "ok", "dataset": "a" * 60}, "too long to add '-dlq'"),
    ({"name": "ok", "columns": {"a": "uuid"}}, "unknown type"),
    ({"name": "ok", "columns": {}}, "at least one column"),
    ({"name": "ok", "source": "kafka://x/y"}, "unsupported stream source"),
    ({"name": "ok", "source": "nats://127.0.0.1:4222/../etc"}, "invalid NATS subject"),
    ({"name": "ok", "flush_rows": 0}, "flush_rows"),
    ({"name": "ok", "flush_interval_s": 0}, "flush_interval_s"),
])
def test_bad_stream_definitions_are_refused(shared: StreamService, kwargs: dict, match: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(InvalidArgument, match=match):
        shared.create(name, **kwargs)
    assert [s.name for s in shared.list()] == ["clicks"]


def test_create_twice_conflicts_and_delete_removes_records_and_consumers(streams: StreamService) -> None:
    streams.create("clicks")
    with pytest.raises(AlreadyExists):
        streams.create("clicks")
    streams.put_records("clicks", [{"a": 1}])
    streams.read_consumer("clicks", "etl")
    assert streams.delete("clicks").last_sequence_number == 1
    streams.create("clicks")
    assert streams.read("clicks").records == [] and streams.consumers("clicks") == []
    with streams.ws.db.read() as conn:
        events = audit.list_events(conn, resource="streams/clicks")
        assert {"streams.create", "streams.delete"} <= {e.action for e in events}
    assert streams.ws.verify_audit().ok
