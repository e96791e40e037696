"""The supervisor and its workers as real processes: replacement after SIGKILL, blue/green
on SIGHUP under load, recycling a stuck worker, drain on SIGTERM, state.json, metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiln.serving._metrics import snapshot
from kiln.serving._spec import VariantSpec
from tests.serving._http_support import alive, custom_package, log, state, supervisor, wait_for, write_spec


def _variant(folder: Path, **fields: Any) -> VariantSpec:
    return VariantSpec(name=fields.pop("name", "AllTraffic"), model_ref=fields.pop("model_ref", "m@1"), folder=str(folder), trusted=True, **fields)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pkgs")
    return {"one": custom_package(root / "one", 1.0), "two": custom_package(root / "two", 2.0)}


class Load:
    """Threads sending requests continuously, each on its own kept-alive connection."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.answers: list[tuple[float, float]] = []  # (time, answer)
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        client = httpx.Client(base_url=self.url, timeout=10)
        while not self._stop.is_set():
            try:
                resp = client.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv"})
                if resp.status_code != 200:
                    self.failures.append((time.monotonic(), f"{resp.status_code} {resp.text[:200]}"))
                else:
                    self.answers.append((time.monotonic(), resp.json()[0]))
            except httpx.HTTPError as exc:
                self.failures.append((time.monotonic(), repr(exc)))
                client.close()
                client = httpx.Client(base_url=self.url, timeout=10)
        client.close()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        wait_for(lambda: len(self.answers) >= 10, timeout=20, what="the load to get answers")
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


@pytest.fixture
def two_workers(packages: dict[str, Path], tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    run_dir = tmp_path / "run"
    write_spec(run_dir, 1, [_variant(packages["one"])], workers=2, timeout_s=1.0)
    with supervisor(run_dir) as proc:
        yield run_dir, proc


def _workers(run_dir: Path, role: str = "serving") -> list[dict[str, Any]]:
    return [w for w in state(run_dir).get("workers", []) if w["role"] == role]


def test_state_json_describes_the_endpoint(two_workers: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, proc = two_workers
    st = state(run_dir)
    assert st["pid"] == proc.pid and st["ready"] is True and st["generation"] == 1 and st["error"] is None
    assert st["url"] == f"http://127.0.0.1:{st['port']}" and len(_workers(run_dir)) == 2
    assert httpx.get(st["url"] + "/ping").status_code == 200


def test_a_killed_worker_is_replaced_while_the_other_keeps_answering(two_workers: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, _ = two_workers
    url = state(run_dir)["url"]
    victim = _workers(run_dir)[0]["pid"]
    with Load(url) as load:
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: len(ws := _workers(run_dir)) == 2 and victim not in {w["pid"] for w in ws} and all(w["ready"] for w in ws), timeout=60, what="a replacement")
        replaced_at = time.monotonic()
        n = len(load.answers)
        wait_for(lambda: len(load.answers) > n + 20, timeout=20, what="answers after the replacement")
    # At most the requests in flight on the killed worker (one per client connection) failed.
    assert len(load.failures) <= 2, load.failures
    assert any(killed_at < t < replaced_at for t, _ in load.answers), "no answer while the worker was being replaced"
    assert all(t < replaced_at for t, _ in load.failures)


def test_blue_green_update_under_load_fails_no_request(packages: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_spec(run_dir, 1, [_variant(packages["one"])], workers=2)
    with supervisor(run_dir) as proc:
        url = state(run_dir)["url"]
        old = {w["pid"] for w in _workers(run_dir)}
        with Load(url, threads=3) as load:
            write_spec(run_dir, 2, [_variant(packages["two"], model_ref="m@2")], workers=2)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: state(run_dir).get("generation") == 2, timeout=60, what="generation 2 to serve")
            switched = time.monotonic()
            wait_for(lambda: not _workers(run_dir, "draining") and not any(alive(p) for p in old), timeout=40, what="the old workers to drain")
            drained = time.monotonic()
            n = len(load.answers)
            wait_for(lambda: len(load.answers) > n + 20, timeout=20, what="answers from the new generation")
        assert load.failures == []
        assert {a for t, a in load.answers if t < switched - 0.5} == {3.0}
        assert {a for t, a in load.answers if t > drained} == {6.0}
        assert state(run_dir)["error"] is None and {w["generation"] for w in state(run_dir)["workers"]} == {2}


def test_a_generation_that_cannot_load_is_dropped_and_the_old_one_keeps_serving(packages: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_spec(run_dir, 1, [_variant(packages["one"])], workers=1)
    with supervisor(run_dir) as proc:
        pid = _workers(run_dir)[0]["pid"]
        write_spec(run_dir, 2, [_variant(tmp_path / "missing")], workers=1)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: state(run_dir).get("error"), timeout=60, what="the failed update to be reported")
        st = state(run_dir)
        assert st["generation"] == 1 and "generation 2 did not start" in st["error"] and st["pending_generation"] is None
        assert _workers(run_dir)[0]["pid"] == pid and alive(pid)
        assert httpx.post(st["url"] + "/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}).json() == [3.0]


def test_an_endpoint_whose_model_cannot_load_exits_with_the_reason(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_spec(run_dir, 1, [_variant(tmp_path / "missing")], workers=1)
    with supervisor(run_dir, ready=False) as proc:
        assert proc.wait(timeout=60) == 3
    st = state(run_dir)
    assert st["status"] == "failed" and "could not start" in st["error"] and not st["ready"]


def test_a_stuck_worker_is_recycled_and_the_endpoint_keeps_answering(two_workers: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, _ = two_workers
    url = state(run_dir)["url"]
    before = {w["pid"] for w in _workers(run_dir)}
    resp = httpx.post(url + "/invocations", content=b"777,0", headers={"Content-Type": "text/csv"}, timeout=20)
    assert resp.status_code == 424 and "did not answer within 1 s" in resp.json()["error"]["message"]
    wait_for(lambda: len(after := {w["pid"] for w in _workers(run_dir)}) == 2 and len(after - before) == 1 and all(w["ready"] for w in _workers(run_dir)), timeout=60, what="the stuck worker's replacement")
    stuck = (before - {w["pid"] for w in _workers(run_dir)}).pop()
    wait_for(lambda: not alive(stuck), timeout=45, what="the stuck worker to exit")
    assert httpx.post(url + "/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}).json() == [3.0]


def test_sigterm_drains_the_workers_and_exits(two_workers: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, proc = two_workers
    pids = [w["pid"] for w in _workers(run_dir)]
    with httpx.Client(base_url=state(run_dir)["url"]) as http:
        assert http.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not any(alive(p) for p in pids)
    assert state(run_dir)["status"] == "stopped" and state(run_dir)["workers"] == []


def test_metrics_sum_every_worker_and_keep_the_counts_of_dead_ones(two_workers: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, _ = two_workers
    url = state(run_dir)["url"]
    for _ in range(20):  # new connections: the workers share them
        httpx.post(url + "/invocations", content=b"1,2", headers={"Content-Type": "text/csv"})
    wait_for(lambda: snapshot(run_dir).get("AllTraffic", {}).get("invocations") == 20, timeout=10, what="20 invocations in the files")
    assert len(list((run_dir / "metrics").glob("worker-*.json"))) == 2
    assert snapshot(run_dir)["AllTraffic"]["cold_starts"] == 2
    assert 'kiln_invocations_total{endpoint="ep",variant="AllTraffic"} 20' in httpx.get(url + "/metrics").text
    victim = _workers(run_dir)[0]["pid"]
    os.kill(victim, signal.SIGTERM)  # a drained worker writes its last counts
    wait_for(lambda: len(_workers(run_dir)) == 2 and victim not in {w["pid"] for w in _workers(run_dir)} and all(w["ready"] for w in _workers(run_dir)), timeout=60, what="a replacement")
    snap = snapshot(run_dir)["AllTraffic"]
    assert snap["invocations"] == 20 and snap["cold_starts"] == 3


def test_the_supervisor_takes_its_workers_with_it_when_killed(packages: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_spec(run_dir, 1, [_variant(packages["one"])], workers=1)
    with supervisor(run_dir) as proc:
        pid = _workers(run_dir)[0]["pid"]
        proc.kill()
        proc.wait()
        wait_for(lambda: not alive(pid), timeout=10, what="the worker to die with its supervisor")
    assert "Traceback" not in log(run_dir)


_ = sys


def test_capture_files_reach_the_store_through_the_supervisor(packages: dict[str, Path], tmp_path: Path) -> None:
    from kiln.core.storage import LocalStore
    from kiln.serving._spec import CaptureSpec
    from kiln.serving._supervisor import Supervisor

    run_dir = tmp_path / "run"
    write_spec(run_dir, 1, [_variant(packages["one"])], workers=1, capture=CaptureSpec(enabled=True, percent=100))
    store = LocalStore(tmp_path / "objects")
    sup = Supervisor(run_dir, ship=store.put_file)
    sup.start()
    try:
        wait_for(lambda: sup.step(0.05) or sup.status == "ready", timeout=60, what="ready")
        for i in range(3):
            assert httpx.post(sup.url + "/invocations", content=b"1,%d" % i, headers={"Content-Type": "text/csv"}).status_code == 200
        sup._on_signal(signal.SIGTERM, None)  # as SIGTERM would: the worker closes its files as it exits
        wait_for(lambda: sup.step(0.05), timeout=30, what="the supervisor to stop")
    finally:
        sup._teardown()
    keys = [k for k, _, _ in store.list("capture/ep/AllTraffic")]
    assert len(keys) == 1 and keys[0].endswith(".jsonl")
    assert len(store.read_bytes(keys[0]).splitlines()) == 3
