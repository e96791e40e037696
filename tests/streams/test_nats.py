"""A NATS JetStream subject as a stream's source, against the machine's NATS on 127.0.0.1:4222."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest

from kiln.core.errors import NotFound, Unavailable
from kiln.lake.streams import StreamService
from tests.conftest import NATS_URL
from tests.streams.conftest import datasets


async def _admin(coro: Any) -> Any:
    nc = await nats.connect(NATS_URL, connect_timeout=2)
    try:
        return await coro(nc.jetstream(), nc)
    finally:
        await nc.close()


def _run(coro: Any) -> Any:
    return asyncio.run(_admin(coro))


@pytest.fixture
def subject(nats_url: str) -> Iterator[str]:
    """A fresh JetStream stream capturing one subject, deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    stream, subj = f"KILNTEST_{tag}", f"kilntest.{tag}.clicks"

    async def create(js: Any, _: Any) -> None:
        await js.add_stream(name=stream, subjects=[subj])

    try:
        _run(create)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"NATS JetStream is not reachable at {NATS_URL}: {exc} (.ci/run starts nats-server -js)")
    yield subj

    async def delete(js: Any, _: Any) -> None:
        await js.delete_stream(stream)

    _run(delete)


def _publish(subject: str, payloads: list[bytes]) -> None:
    async def go(js: Any, _: Any) -> None:
        for data in payloads:
            await js.publish(subject, data)

    _run(go)


def test_pull_appends_messages_once_and_dead_letters_the_ones_that_are_not_objects(streams: StreamService, subject: str) -> None:
    streams.create("clicks", source=f"{NATS_URL}/{subject}", columns={"user": "string"})
    _publish(subject, [b'{"user": "a"}', b"not json", b'{"user": "b"}', b"[1, 2]", b'{"user": "c"}'])
    first = streams.pull("clicks", timeout_s=1)
    assert (first.fetched, first.added, first.invalid, first.last_sequence_number) == (5, 5, 2, 5)
    assert streams.pull("clicks", timeout_s=0.2).fetched == 0, "acked after commit: nothing comes back"
    _publish(subject, [b'{"user": "d"}'])
    assert streams.pull("clicks", timeout_s=1).added == 1
    result = streams.flush("clicks")
    assert (result.rows, result.dead_letter_rows) == (4, 2)
    ds = datasets(streams)
    assert ds.read_table("clicks").column("user").to_pylist() == ["a", "b", "c", "d"]
    reasons = ds.read_table("clicks-dlq").column("reason").to_pylist()
    assert any("not JSON" in r for r in reasons) and any("not an object" in r for r in reasons)


def test_a_message_redelivered_after_commit_is_not_added_twice(streams: StreamService, subject: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies between the commit and the acks: NATS redelivers, Kiln skips."""
    streams.create("clicks", source=f"{NATS_URL}/{subject}")

    async def short_ack_wait(js: Any, _: Any) -> None:
        from nats.js.api import ConsumerConfig

        name = await js.find_stream_name_by_subject(subject)
        await js.add_consumer(name, ConsumerConfig(durable_name="kiln-clicks", filter_subject=subject, ack_wait=1))

    _run(short_ack_wait)
    _publish(subject, [b'{"n": 1}', b'{"n": 2}'])
    from nats.aio.msg import Msg

    async def lost_ack(self: Msg) -> None:
        return None

    monkeypatch.setattr(Msg, "ack", lost_ack)
    assert streams.pull("clicks", timeout_s=1).added == 2
    monkeypatch.undo()
    time.sleep(1.2)
    again = streams.pull("clicks", timeout_s=1)
    assert (again.fetched, again.added, again.duplicates) == (2, 0, 2)
    assert streams.pull("clicks", timeout_s=0.2).fetched == 0
    assert [r.data["n"] for r in streams.read("clicks").records] == [1, 2]


def test_pull_errors_say_what_to_do(streams: StreamService, nats_url: str) -> None:
    streams.create("nowhere", source="nats://127.0.0.1:1/x")
    with pytest.raises(Unavailable, match="cannot reach NATS"):
        streams.pull("nowhere", timeout_s=0.2)
    streams.create("orphan", source=f"{NATS_URL}/kilntest.{uuid.uuid4().hex}.none")
    with pytest.raises(NotFound, match="no JetStream stream captures"):
        streams.pull("orphan", timeout_s=0.2)
