"""Endpoints as a managed resource, in-process: create → InService → invoke → update
(blue/green) → delete, trust and hashes checked before a spec is written, a failed start
Failed with its log's reason, a dead supervisor restarted."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest

import kiln
from kiln.core.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from kiln.jobs._local import process_alive
from kiln.serving._service import EndpointService, endpoint_dir

from .conftest import custom_model, register, wait_for

pytestmark = pytest.mark.xdist_group("endpoints")


def _row(client: kiln.Client, name: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from kiln.serving import _tables as t

    with client.workspace.db.read() as conn:
        return conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()


def test_create_invoke_describe_delete(client: kiln.Client, models: dict[str, str]) -> None:
    ep = client.endpoints.create("churn", model="times@1")
    assert (ep.state, ep.generation, [(v.name, v.model, v.trusted) for v in ep.variants]) == ("InService", 1, [("AllTraffic", "times@1", True)])
    assert ep.url and ep.url.startswith("http://127.0.0.1:") and ep.port and ep.url.endswith(str(ep.port))
    got = client.endpoints.invoke("churn", b"[[1, 2], [0, 1]]", content_type="application/json")
    assert (orjson.loads(got.body), got.invoked_variant) == ([9.0, 3.0], "AllTraffic")
    assert [e.name for e in client.endpoints.list()] == ["churn"]
    assert client.endpoints.list(state="Failed") == []
    pid = _row(client, "churn").supervisor_pid
    gone = client.endpoints.delete("churn")
    assert gone.state == "Deleting"
    assert not process_alive(pid)
    assert not endpoint_dir(client.settings.home, "churn").exists()
    with pytest.raises(NotFound, match="kiln endpoints ls"):
        client.endpoints.get("churn")
    actions = {e["action"] for e in client.audit.list(resource="endpoints/churn") if e["outcome"] == "success"}
    assert {"endpoints.create", "endpoints.delete"} <= actions


def test_variants_weights_and_target_variant(client: kiln.Client, models: dict[str, str]) -> None:
    ep = client.endpoints.create("ab", variants=[{"name": "blue", "model": "times@1", "weight": 1}, {"name": "green", "model": "times@2", "weight": 1}])
    assert [(v.name, v.model, v.weight) for v in ep.variants] == [("blue", "times@1", 1.0), ("green", "times@2", 1.0)]
    for variant, want in (("blue", [3.0]), ("green", [5.0])):
        got = client.endpoints.invoke("ab", "[[1]]", target_variant=variant)
        assert (got.invoked_variant, orjson.loads(got.body)) == (variant, want)
    seen = {client.endpoints.invoke("ab", "[[1]]").invoked_variant for _ in range(40)}
    assert seen == {"blue", "green"}


def test_update_is_blue_green(client: kiln.Client, models: dict[str, str]) -> None:
    client.endpoints.create("bg", model="times@1")
    answers: list[object] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answers.append(orjson.loads(client.endpoints.invoke("bg", "[[1]]").body))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        wait_for(lambda: answers, what="answers from the old generation")
        ep = client.endpoints.update("bg", model="times@2")
        wait_for(lambda: [5.0] in answers[-3:], what="answers from the new generation")
    finally:
        stop.set()
        thread.join()
    assert (ep.state, ep.generation, ep.variants[0].model) == ("InService", 2, "times@2")
    assert errors == [] and [3.0] in answers
    assert sorted(p.name for p in endpoint_dir(client.settings.home, "bg").glob("gen-*.json")) == ["gen-1.json", "gen-2.json"]
    # What is left out stays: the workers and limits of generation 1, the model resolved anew only when named.
    again = client.endpoints.update("bg", timeout_s=30)
    assert (again.generation, again.timeout_s, again.variants[0].model) == (3, 30.0, "times@2")


def test_code_no_admin_trusted_is_refused_before_anything_runs(client: kiln.Client, models: dict[str, str]) -> None:
    with pytest.raises(PermissionDenied, match="kiln models trust stranger@1"):
        client.endpoints.create("nope", model=models["stranger"])
    assert client.endpoints.list() == [] and not endpoint_dir(client.settings.home, "nope").exists()


def test_a_package_failing_its_hashes_is_never_served(client: kiln.Client, models: dict[str, str]) -> None:
    import sqlalchemy as sa

    from kiln.registry._tables import model_versions

    with client.workspace.db.read() as conn:
        prefix = conn.execute(sa.select(model_versions.c.prefix).where(model_versions.c.name == "times", model_versions.c.version == 2)).scalar()
    stored = Path(client.settings.storage_url) / prefix / "weights.txt"
    stored.write_text("666")  # changed in the store after registration
    with pytest.raises(InvalidArgument, match="weights.txt"):
        client.endpoints.create("tampered", model="times@2")
    assert client.endpoints.list() == [] and not endpoint_dir(client.settings.home, "tampered").exists()


def test_a_start_that_fails_ends_failed_with_the_log_reason(client: kiln.Client, tmp_path: Path) -> None:
    register(client, "broken", custom_model(tmp_path / "b", broken="the weights are missing"))
    ep = client.endpoints.create("broken", model="broken")
    assert ep.state == "Failed"
    assert "the weights are missing" in (ep.failure_reason or "")
    assert str(tmp_path) not in (ep.failure_reason or "") and str(client.settings.home) not in (ep.failure_reason or "")
    with pytest.raises(Exception, match="Failed"):
        client.endpoints.invoke("broken", "[[1]]")


def test_a_dead_supervisor_is_restarted_on_the_same_port(client: kiln.Client, models: dict[str, str]) -> None:
    ep = client.endpoints.create("phoenix", model="times@1")
    old = _row(client, "phoenix").supervisor_pid
    os.killpg(old, signal.SIGKILL)
    wait_for(lambda: not process_alive(old), what="the supervisor's end")
    changed = EndpointService(client.workspace, client._t.ctx).reconcile()
    assert changed == ["phoenix"]
    back = client.endpoints.wait("phoenix")
    row = _row(client, "phoenix")
    assert (back.state, back.url, row.restarts) == ("InService", ep.url, 1) and row.supervisor_pid != old
    wait_for(lambda: client.endpoints.get("phoenix").state == "InService" and _row(client, "phoenix").deadline_at is None, what="ready again")
    assert orjson.loads(client.endpoints.invoke("phoenix", "[[2]]").body) == [6.0]
    assert "endpoints.restarted" in {e["action"] for e in client.audit.list(resource="endpoints/phoenix")}


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": "Bad/Name", "model": "times@1"}, InvalidArgument, "invalid endpoint name"),
    ({"name": "x", "model": "../etc"}, InvalidArgument, "invalid model"),
    ({"name": "x"}, InvalidArgument, "exactly one of model"),
    ({"name": "x", "model": "times@1", "port": 80}, InvalidArgument, "1024-65535"),
    ({"name": "x", "model": "times@1", "workers": 0}, InvalidArgument, "workers"),
    ({"name": "x", "model": "times@1", "max_payload_mb": 101}, InvalidArgument, "max_payload_mb"),
    ({"name": "x", "variants": [{"name": "../a", "model": "times@1"}]}, InvalidArgument, "invalid variant name"),
    ({"name": "x", "variants": [{"name": "a", "model": "times@1"}, {"name": "a", "model": "times@2"}]}, InvalidArgument, "unique"),
    ({"name": "x", "variants": [{"name": "a", "model": "times@1", "weight": 0}]}, InvalidArgument, "add up to 0"),
    ({"name": "x", "model": "ghost"}, NotFound, "ghost"),
    ({"name": "x", "model": "times@9"}, NotFound, "no version 9"),
])
def test_bad_requests_are_refused_and_create_nothing(client: kiln.Client, models: dict[str, str], kwargs: dict, error: type, match: str) -> None:
    svc = EndpointService(client.workspace, client._t.ctx)
    with pytest.raises(error, match=match):
        svc.create(**kwargs)
    assert client.endpoints.list() == []


def test_names_ports_and_states_conflict(client: kiln.Client, models: dict[str, str]) -> None:
    ep = client.endpoints.create("one", model="times@1", wait=False)
    with pytest.raises(AlreadyExists):
        client.endpoints.create("one", model="times@1")
    with pytest.raises(Conflict, match="Creating"):
        client.endpoints.update("one", model="times@2")
    ep = client.endpoints.wait("one")
    with pytest.raises(Conflict, match="port"):
        client.endpoints.create("two", model="times@1", port=ep.port)


def test_an_update_that_fails_rolls_back_and_the_old_generation_serves_on(client: kiln.Client, models: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.serving import _service

    register(client, "broken", custom_model(tmp_path / "b", broken="cannot load the new weights"))
    client.endpoints.create("steady", model="times@1")
    monkeypatch.setattr(_service, "START_LIMIT_S", 2.0)
    ep = client.endpoints.update("steady", model="broken@1", wait=False)
    assert (ep.state, ep.generation) == ("Updating", 2)
    assert orjson.loads(client.endpoints.invoke("steady", "[[1]]").body) == [3.0]  # the old generation answers meanwhile
    back = client.endpoints.wait("steady", timeout_s=30)
    assert (back.state, back.generation, back.variants[0].model) == ("InService", 1, "times@1")
    assert "rolled back to generation 1" in (back.failure_reason or "")
    assert orjson.loads(client.endpoints.invoke("steady", "[[1]]").body) == [3.0]
    assert [p.name for p in endpoint_dir(client.settings.home, "steady").glob("gen-*.json")] == ["gen-1.json"]


def test_a_shadow_variant_is_described_apart(client: kiln.Client, models: dict[str, str]) -> None:
    ep = client.endpoints.create("shadowed", model="times@1", shadow={"name": "candidate", "model": "times@2"})
    assert (ep.shadow and (ep.shadow.name, ep.shadow.model, ep.shadow.shadow)) == ("candidate", "times@2", True)
    assert [v.name for v in ep.variants] == ["AllTraffic"]
    got = client.endpoints.invoke("shadowed", "[[1]]")
    assert (orjson.loads(got.body), got.invoked_variant) == ([3.0], "AllTraffic")  # the shadow's answer is never returned
    from kiln.serving._metrics import snapshot

    run_dir = endpoint_dir(client.settings.home, "shadowed")
    wait_for(lambda: snapshot(run_dir).get("candidate", {}).get("invocations", 0) >= 1, what="the shadow's copy of the request")
    assert client.endpoints.update("shadowed", remove_shadow=True).shadow is None


def test_the_server_watcher_brings_endpoints_back_after_a_restart(client: kiln.Client, models: dict[str, str]) -> None:
    """Every process of the endpoint dies (its host's server went down); a new server's watcher starts it again."""
    import threading as th

    from kiln.core.config import load_settings
    from kiln.core.workspace import Workspace
    from kiln.serving import _watcher

    ep = client.endpoints.create("comeback", model="times@1")
    os.killpg(_row(client, "comeback").supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not EndpointService(client.workspace, client._t.ctx)._alive(_row(client, "comeback")), what="the endpoint's end")
    fresh = Workspace(load_settings(home=str(client.settings.home)))  # the restarted server's workspace
    stop = th.Event()
    stop.set()  # one pass
    try:
        _watcher._loop(fresh, stop)
    finally:
        fresh.close()
    back = client.endpoints.wait("comeback")
    assert (back.state, back.url, back.restarts) == ("InService", ep.url, 1)
    wait_for(lambda: client.endpoints.get("comeback").ready and _row(client, "comeback").deadline_at is None, what="ready again")
    assert orjson.loads(client.endpoints.invoke("comeback", "[[1]]").body) == [3.0]


def test_metrics_snapshots_are_persisted_per_variant(client: kiln.Client, models: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from kiln.serving._watcher import persist_metrics

    client.endpoints.create("counted", variants=[{"name": "a", "model": "times@1"}, {"name": "b", "model": "times@2"}])
    seen: list[Path] = []

    def snapshot(run_dir: Path) -> dict[str, dict[str, float]]:
        seen.append(Path(run_dir))
        return {"a": {"invocations": 3, "errors_4xx": 1}, "b": {"invocations": 1}}

    monkeypatch.setitem(sys.modules, "kiln.serving._metrics", types.SimpleNamespace(snapshot=snapshot))
    assert persist_metrics(client.workspace, now=1000.0) == 2
    assert persist_metrics(client.workspace, now=2000.0) == 2
    points = client.endpoints.metrics("counted")
    assert [(p.variant, p.at, p.values["invocations"]) for p in points] == [("a", 1000.0, 3), ("b", 1000.0, 1), ("a", 2000.0, 3), ("b", 2000.0, 1)]
    assert seen[0] == endpoint_dir(client.settings.home, "counted")
    assert [p.at for p in client.endpoints.metrics("counted", since=1500.0)] == [2000.0, 2000.0]
    client.endpoints.delete("counted")
    with pytest.raises(NotFound):
        client.endpoints.metrics("counted")


def test_an_endpoint_on_postgresql(pg_schema_url: str, tmp_path: Path) -> None:
    from kiln.core.config import load_settings

    from .conftest import delete_all

    client = kiln.Client(settings=load_settings(home=str(tmp_path / "pg-home"), database_url=pg_schema_url))
    try:
        register(client, "times", custom_model(tmp_path / "m", 2.0))
        assert client.endpoints.create("pg-ep", model="times@1").state == "InService"
        assert orjson.loads(client.endpoints.invoke("pg-ep", "[[1, 1]]").body) == [4.0]
        assert client.endpoints.update("pg-ep", workers=2).generation == 2
    finally:
        delete_all(client)
        client.close()


def test_a_failed_endpoint_is_fixed_by_an_update_and_an_untrusted_update_changes_nothing(client: kiln.Client, models: dict[str, str], tmp_path: Path) -> None:
    register(client, "broken", custom_model(tmp_path / "b", broken="no weights"))
    assert client.endpoints.create("fixme", model="broken").state == "Failed"
    ep = client.endpoints.update("fixme", model="times@1")
    assert (ep.state, ep.generation, ep.failure_reason) == ("InService", 2, None)
    assert orjson.loads(client.endpoints.invoke("fixme", "[[1]]").body) == [3.0]
    with pytest.raises(PermissionDenied):
        client.endpoints.update("fixme", model=models["stranger"])
    after = client.endpoints.get("fixme")
    assert (after.state, after.generation, after.variants[0].model) == ("InService", 2, "times@1")
    assert sorted(p.name for p in endpoint_dir(client.settings.home, "fixme").glob("gen-*.json")) == ["gen-1.json", "gen-2.json"]


def test_capture_and_metrics_from_the_real_workers(client: kiln.Client, models: dict[str, str]) -> None:
    """Captured requests land in the store as CONTRACTS.md §4 lines under capture/<endpoint>/<variant>/,
    and the watcher keeps the workers' counters per variant."""
    from kiln.serving._watcher import persist_metrics

    client.endpoints.create("cap", model="times@1", capture_percent=100, capture_modes=["Input", "Output"])
    for i in range(3):
        client.endpoints.invoke("cap", "[[1, 2]]", inference_id=f"req-{i}")
    store = client.workspace.store
    keys = wait_for(lambda: [k for k, _, _ in store.list("capture/cap/AllTraffic")], timeout=30, what="captured files in the store")
    lines = [orjson.loads(line) for k in keys for line in store.read_bytes(k).splitlines()]
    assert len(lines) == 3 and {ln["eventMetadata"]["inferenceId"] for ln in lines} == {"req-0", "req-1", "req-2"}
    data = lines[0]["captureData"]
    assert (data["endpointInput"]["data"], data["endpointInput"]["mode"], data["endpointOutput"]["data"]) == ("[[1, 2]]", "INPUT", "[9.0]")
    assert keys[0].split("/")[3:5] == [time.strftime("%Y", time.gmtime()), time.strftime("%m", time.gmtime())]
    wait_for(lambda: persist_metrics(client.workspace) and client.endpoints.metrics("cap")[-1].values.get("invocations") == 3, what="metrics")
    assert client.endpoints.metrics("cap")[-1].variant == "AllTraffic"


def test_a_sleeping_serverless_endpoint_stays_in_service_and_wakes_on_invoke(client: kiln.Client, models: dict[str, str]) -> None:
    client.endpoints.create("sl", model="times@1", serverless={"idle_timeout_s": 1, "max_concurrency": 2, "memory_mb": 2048})
    run_dir = endpoint_dir(client.settings.home, "sl")
    state = lambda: orjson.loads((run_dir / "state.json").read_bytes())  # noqa: E731
    wait_for(lambda: state().get("asleep") and not state()["workers"], what="the endpoint to sleep")
    assert client.endpoints.get("sl").state == "InService"  # asleep is not dead: no restart, no Failed
    assert orjson.loads(client.endpoints.invoke("sl", "[[1, 1]]").body) == [6.0]
    assert state()["wakes"] == 1 and client.endpoints.get("sl").state == "InService"
