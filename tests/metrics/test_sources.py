"""The platform's own metrics and logs, from real processes: a running endpoint's
invocations, errors and latencies collected into the store (once: a second collection adds
nothing), its log, the API server's /metrics in Prometheus' format, and a finished job's
duration, state and log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import kiln
from kiln.core.auth import TokenService
from kiln.core.config import load_settings
from kiln.core.errors import KilnError
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.metrics._retention import enforce_retention
from kiln.server.app import create_app
from tests.faces.conftest import SyncASGI
from tests.serving.conftest import custom_model, delete_all, wait_for

PY = sys.executable


def _sum(client: kiln.Client, ns: str, metric: str, stat: str = "Sum", **dims: str) -> float:
    got = client.metrics.query(ns, metric, dimensions=dims, start=time.time() - 600, end=time.time() + 60, period=60, statistics=[stat])
    return sum(p.values[stat] or 0 for p in got.datapoints) if stat in ("Sum", "SampleCount") else got.datapoints[-1].values[stat]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from kiln.serving import _service

    monkeypatch.setattr(_service, "START_LIMIT_S", 60.0)
    ws = Workspace(load_settings(home=str(tmp_path / "home")))
    client = kiln.Client(settings=ws.settings)
    version = client.models.register("times", path=custom_model(tmp_path / "m", 3.0))
    client.models.trust(f"times@{version.version}")
    assert client.endpoints.create("e1", model="times@1").state == "InService"
    try:
        yield ws, client
    finally:
        delete_all(client)
        client.close()
        ws.close()


def test_an_endpoints_traffic_becomes_metrics_once_and_its_log_and_prometheus_show_it(served: Any) -> None:
    ws, client = served
    for _ in range(5):
        assert client.endpoints.invoke("e1", "1,2", content_type="text/csv").body
    for _ in range(2):
        with pytest.raises(KilnError):
            client.endpoints.invoke("e1", b"x", content_type="application/x-unknown")

    def collected() -> bool:
        client.metrics.collect()
        return _sum(client, "kiln/endpoints", "Invocations", endpoint="e1") == 7

    wait_for(collected, timeout=30, what="7 invocations collected")
    assert _sum(client, "kiln/endpoints", "Invocation4XXErrors", endpoint="e1") == 2
    assert _sum(client, "kiln/endpoints", "Invocation5XXErrors", endpoint="e1") == 0
    assert _sum(client, "kiln/endpoints", "ModelLatency", "SampleCount", endpoint="e1") == 7
    assert _sum(client, "kiln/endpoints", "ModelLatency", "p99", endpoint="e1") > 0
    client.metrics.collect()  # nothing new: nothing counted twice
    assert _sum(client, "kiln/endpoints", "Invocations", endpoint="e1") == 7

    page = client.logs.read("endpoint/e1")
    assert page.lines and not page.done
    word = page.lines[0].text.split()[0]
    matching = client.logs.read("endpoint/e1", grep=word)
    assert matching.lines and all(word in line.text for line in matching.lines)
    assert client.logs.read("endpoint/e1", grep="no-such-text-anywhere").lines == []
    assert all(line.seq > page.next for line in client.logs.read("endpoint/e1", offset=page.next).lines)

    token = TokenService(ws, local_context()).create(name="viewer", role="viewer").token
    app = create_app(ws, auth=True)
    with httpx.Client(transport=SyncASGI(app), base_url="http://127.0.0.1") as http:
        assert http.get("/metrics").status_code == 401
        r = http.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    invocations = [s for s in families["kiln_invocations"].samples if s.labels["endpoint"] == "e1"]
    assert sum(s.value for s in invocations) == 7
    assert any(s.labels["endpoint"] == "e1" for s in families["kiln_model_latency_seconds"].samples)

    client.endpoints.delete("e1")
    assert client.logs.read("endpoint/e1").lines  # kept after the endpoint is gone, until it ages out


def test_a_finished_jobs_duration_state_and_log(mws: Workspace, client: kiln.Client) -> None:
    job = client.processing.run(command=[PY, "-c", "print('hello'); print('world')"], name="j1", logs=False)
    assert job.state == "Completed"
    client.metrics.collect()
    client.metrics.collect()
    assert _sum(client, "kiln/jobs", "Jobs", kind="processing", state="Completed") == 1
    assert _sum(client, "kiln/jobs", "JobDuration", "SampleCount", kind="processing") == 1
    page = client.logs.read("job/j1")
    assert "hello" in [line.text for line in page.lines] and page.done
    assert [line.text for line in client.logs.read("job/j1", grep="wor").lines] == ["world"]
    assert client.logs.read("job/j1", since="1h").lines == page.lines
    assert client.logs.read("job/j1", since=str(time.time() + 3600)).lines == []
    assert list(line.text for line in client.logs.follow("job/j1", grep="^h")) == ["hello"]
    enforce_retention(mws, now=time.time() + 31 * 86_400)
    gone = client.logs.read("job/j1")
    assert gone.lines == [] and gone.done
    assert client.jobs.logs("j1").done  # the jobs stage's own reader ends too
