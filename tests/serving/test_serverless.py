"""Serverless endpoints as real processes: scale to zero, a cold start on the first request
after idle, 429 beyond the concurrency limit, the worker's memory capped."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import pytest

from kiln.serving._metrics import snapshot
from kiln.serving._spec import ServerlessSpec, VariantSpec
from tests.serving._http_support import alive, custom_package, log, state, supervisor, wait_for, write_spec


def _serving(run_dir: Path) -> list[dict]:
    return [w for w in state(run_dir).get("workers", []) if w["role"] == "serving"]


@pytest.fixture
def endpoint(tmp_path: Path):
    package = custom_package(tmp_path / "pkg", 2.0)
    run_dir = tmp_path / "run"
    variant = VariantSpec(model_ref="m@1", folder=str(package), trusted=True)
    write_spec(run_dir, 1, [variant], serverless=ServerlessSpec(memory_mb=1024, max_concurrency=2, idle_s=1.5), timeout_s=20)
    with supervisor(run_dir) as proc:
        yield run_dir, state(run_dir)["url"], proc


def test_idle_scale_to_zero_cold_start_and_throttling(endpoint) -> None:
    run_dir, url, _ = endpoint
    first = _serving(run_dir)[0]["pid"]
    limits = Path(f"/proc/{first}/limits").read_text()
    assert "Max address space" in limits and str(1024 << 20) in limits  # memory_mb caps the worker
    # Idle past the timeout: no worker holds the model; the endpoint stays ready.
    wait_for(lambda: state(run_dir).get("asleep"), timeout=30, what="the endpoint to sleep")
    wait_for(lambda: not alive(first), timeout=30, what="the idle worker to exit")
    assert _serving(run_dir) == [] and state(run_dir)["ready"]
    # The first request wakes a worker, which answers it; the cold start is recorded.
    resp = httpx.post(url + "/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == [6.0]
    assert state(run_dir)["wakes"] == 1
    counters = wait_for(lambda: snapshot(run_dir).get("AllTraffic", {}).get("cold_start_us"), timeout=5, what="the cold start's time")
    assert counters > 0 and snapshot(run_dir)["AllTraffic"]["cold_starts"] == 2
    assert b"kiln_cold_start_seconds" in httpx.get(url + "/metrics").content
    # Beyond max_concurrency (2): 429 with SageMaker's ThrottlingException, at once.
    def slow(_: int) -> tuple[int, float, dict]:
        start = time.monotonic()
        r = httpx.post(url + "/invocations", content=b"555,0", headers={"Content-Type": "text/csv"}, timeout=30)
        return r.status_code, time.monotonic() - start, r.json()

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(slow, range(6)))
    ok = [a for a in answers if a[0] == 200]
    throttled = [a for a in answers if a[0] == 429]
    assert len(ok) >= 2 and len(throttled) >= 1, answers
    assert all(t[1] < 0.9 for t in throttled), throttled  # refused at once, never queued behind the slow ones
    assert throttled[0][2]["__type"] == "ThrottlingException" and "maximum concurrency" in throttled[0][2]["message"]
    # Idle again: the worker goes, and a later request wakes one again. Until the released
    # worker has exited it may still take a new connection from the shared socket (a warm
    # answer, no wake), so the request waits for it to be gone, as the first one did.
    second = _serving(run_dir)[0]["pid"]
    wait_for(lambda: state(run_dir).get("asleep") and not _serving(run_dir), timeout=30, what="the endpoint to sleep again")
    wait_for(lambda: not alive(second), timeout=30, what="the released worker to exit")
    assert httpx.post(url + "/invocations", content=b"1,1", headers={"Content-Type": "text/csv"}, timeout=60).json() == [4.0]
    assert state(run_dir)["wakes"] == 2, log(run_dir)


@pytest.mark.parametrize("protocol", ["sagemaker", "v2"])
def test_throttling_in_process_on_both_protocols(tmp_path: Path, protocol: str) -> None:
    from kiln.serving._runtime import Servable
    from kiln.serving._spec import EndpointSpec
    from tests.serving._http_support import serve

    package = custom_package(tmp_path / "pkg", 1.0)
    spec = EndpointSpec(name="sl", variants=(VariantSpec(model_ref="m@1", folder=str(package), trusted=True),), serverless=ServerlessSpec(max_concurrency=1))
    with serve(spec, {"AllTraffic": Servable.load(package, trusted=True, name="m")}) as (url, app):
        def call(_: int) -> int:
            if protocol == "v2":
                body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [555.0, 0.0]}]}
                return httpx.post(url + "/v2/models/m/infer", json=body, timeout=30).status_code
            return httpx.post(url + "/invocations", content=b"555,0", headers={"Content-Type": "text/csv"}, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            codes = sorted(pool.map(call, range(3)))
        assert codes[0] == 200 and 429 in codes, codes
        assert app.metrics.variant("AllTraffic").throttled == codes.count(429) and app.in_flight == 0
        assert httpx.get(url + "/v2/models/m").status_code == 200  # metadata is not limited
