"""SIGKILL of `kiln server` under a steady producer loses no acknowledged record."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import kiln
from kiln.core.errors import KilnError
from kiln.sdk.streams import PendingRecord


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update(KILN_HOME=str(home), KILN_CONFIG=str(home / "none.toml"))
    proc = subprocess.Popen([sys.executable, "-m", "kiln", "server", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        assert proc.poll() is None, "the server exited on start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not answer within 30 s")


def test_sigkill_mid_stream_loses_no_acknowledged_record(tmp_path: Path) -> None:
    home, port = tmp_path / "kiln", _free_port()
    proc = _start(home, port)
    client = kiln.Client(f"http://127.0.0.1:{port}", home=str(home))  # the server's token file
    # The server's worker flushes every 0.2 s meanwhile, so the kill can land mid-flush too.
    client.streams.create("clicks", flush_rows=40, flush_interval_s=0.2)
    sent: list[tuple[int, PendingRecord]] = []
    stop = threading.Event()
    producer = client.streams.producer("clicks", max_batch=20, linger_ms=5)

    def produce() -> None:
        i = 0
        while not stop.is_set():
            sent.append((i, producer.put({"i": i, "pad": "x" * 50})))
            i += 1
            if i % 20 == 0:
                time.sleep(0.005)

    def acked() -> int:
        return sum(1 for _, p in sent if p.done() and p._batch.error is None)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        while acked() < 200:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = acked()
        proc = _start(home, port)
        while acked() < at_kill + 200:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
        with pytest.raises(KilnError, match="not acknowledged"):
            producer.close(timeout=30)
    try:
        assert producer.errors, "the kill should have failed some in-flight batches"
        confirmed = {p.result(0): i for i, p in sent if p.done() and p._batch.error is None}
        log: dict[int, int] = {}
        after = 0
        while True:
            page = client.streams.read("clicks", position="AFTER_SEQUENCE_NUMBER", sequence_number=after, limit=10_000)
            if not page.records:
                break
            log.update({r.sequence_number: r.data["i"] for r in page.records})
            after = page.records[-1].sequence_number
        missing = {seq: i for seq, i in confirmed.items() if log.get(seq) != i}
        assert not missing, f"{len(missing)} acknowledged records lost or changed"
        assert sorted(log) == list(range(1, len(log) + 1)), "sequence numbers stay contiguous across the kill"
        deadline = time.time() + 10
        while client.streams.get("clicks").pending and time.time() < deadline:
            time.sleep(0.1)
        assert client.streams.get("clicks").pending == 0, "the restarted server's worker flushes on its own"
        client.streams.flush("clicks")
        assert client.datasets.get("clicks").row_count == len(log), "every logged record is flushed exactly once"
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
