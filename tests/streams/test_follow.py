"""Following a NATS source: the server's worker pulls without a manual pull, backs off
on errors and reports them on the stream, and a new worker carries on without duplicates."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument
from kiln.core.workspace import Workspace
from kiln.lake.streams import StreamService
from kiln.lake.streams._worker import StreamWorker, backoff_s, due_streams, run_due
from kiln.server.app import create_app
from tests.streams.test_nats import NATS_URL, _publish, _run, subject  # noqa: F401 - the fixture

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient warns once at import about httpx
    from fastapi.testclient import TestClient


def _wait(cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_the_servers_worker_pulls_a_followed_stream_and_a_restarted_one_adds_no_duplicates(ws: Workspace, subject: str) -> None:  # noqa: F811
    _publish(subject, [b'{"n": 1}', b'{"n": 2}'])
    with TestClient(create_app(ws, auth=False), base_url="http://127.0.0.1", client=("127.0.0.1", 50000), headers={"x-kiln-client": "test"}) as http:  # its lifespan starts the worker
        made = http.post("/v1/streams", json={"name": "clicks", "source": f"{NATS_URL}/{subject}", "follow": True})
        assert made.status_code == 201 and made.json()["follow"] is True
        _wait(lambda: http.get("/v1/streams/clicks").json()["last_sequence_number"] == 2)
        _publish(subject, [b'{"n": 3}'])
        shown = _wait(lambda: (s := http.get("/v1/streams/clicks").json())["last_sequence_number"] == 3 and s)
        assert shown["last_pull_at"] and shown["last_pull_error"] is None
    _publish(subject, [b'{"n": 4}', b'{"n": 5}'])  # while no server runs
    with TestClient(create_app(ws, auth=False), base_url="http://127.0.0.1", client=("127.0.0.1", 50000), headers={"x-kiln-client": "test"}) as http:
        _wait(lambda: http.get("/v1/streams/clicks").json()["last_sequence_number"] == 5)
        _publish(subject, [b'{"n": 6}'])
        _wait(lambda: http.get("/v1/streams/clicks").json()["last_sequence_number"] == 6)
        assert http.post("/v1/streams/clicks/unfollow").json()["follow"] is False
        records = http.get("/v1/streams/clicks/records").json()["records"]
    assert [r["data"]["n"] for r in records] == [1, 2, 3, 4, 5, 6], "each message once, in order"


def test_a_source_that_fails_is_reported_and_backed_off_while_the_worker_keeps_pulling_others(ws: Workspace, subject: str) -> None:  # noqa: F811
    svc = StreamService(ws, local_context())
    svc.create("down", source="nats://127.0.0.1:1/x", follow=True)
    missing = f"kilntest.{uuid.uuid4().hex[:10]}.late"
    svc.create("late", source=f"{NATS_URL}/{missing}", follow=True)
    svc.create("clicks", source=f"{NATS_URL}/{subject}", follow=True)
    _publish(subject, [b'{"n": 1}'])
    done = run_due(ws)
    assert done["pulled"] == {"clicks": 1} and set(done["pull_errors"]) == {"down", "late"}
    down = svc.get("down")
    assert "cannot reach NATS" in (down.last_pull_error or "") and down.pull_failures == 1 and down.last_pull_at
    assert "no JetStream stream captures" in (svc.get("late").last_pull_error or "")
    assert due_streams(ws)[0] == ["clicks"], "the failing ones back off"
    assert [backoff_s(n) for n in (0, 1, 2, 3, 20)] == [0, 0.5, 1, 2, 60]
    worker = StreamWorker(ws, interval_s=0.05).start()  # the server's worker, in a loop
    try:
        _wait(lambda: svc.get("down").pull_failures >= 3)
        _publish(subject, [b'{"n": 2}'])
        _wait(lambda: svc.get("clicks").last_sequence_number == 2)

        async def create(js: Any, _: Any) -> None:  # the missing JetStream stream appears
            await js.add_stream(name=f"KILNTEST_{missing.split('.')[1]}", subjects=[missing])

        _run(create)
        _publish(missing, [b'{"late": true}'])
        # The records commit first, then the pull's outcome is kept: a pull that works clears the error.
        late = _wait(lambda: (s := svc.get("late")).last_sequence_number == 1 and s.pull_failures == 0 and s, timeout=20)
        assert late.last_pull_error is None
    finally:
        worker.stop()

        async def delete(js: Any, _: Any) -> None:
            await js.delete_stream(f"KILNTEST_{missing.split('.')[1]}")

        _run(delete)
    svc.set_follow("down", follow=False)
    assert svc.get("down").last_pull_error is None and "down" not in due_streams(ws, now=time.time() + 3600)[0]


@pytest.mark.parametrize("args", [{"follow": True}, {"follow": True, "source": "nats://127.0.0.1:4222/a b"}])
def test_follow_needs_a_valid_source(ws: Workspace, args: dict[str, Any]) -> None:
    svc = StreamService(ws, local_context())
    with pytest.raises(InvalidArgument, match="source|subject"):
        svc.create("clicks", **args)
    assert svc.list() == []


def test_cli_follows_unfollows_and_shows_the_last_pull(cli: Any) -> None:
    assert cli("streams", "create", "down", "--source", "nats://127.0.0.1:1/x", "--follow").code == 0
    assert cli("streams", "pull", "down").code != 0
    shown = orjson.loads(cli("streams", "show", "down", "--json").out)
    assert shown["follow"] is True and "cannot reach NATS" in shown["last_pull_error"] and shown["last_pull_at"]
    assert "no longer pulled" in cli("streams", "unfollow", "down").out
    assert "pulls nats://127.0.0.1:1/x continuously" in cli("streams", "follow", "down").out
    bad = cli("streams", "create", "plain", "--follow")
    assert bad.code != 0 and "needs a source" in bad.err
