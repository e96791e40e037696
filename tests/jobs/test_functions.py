"""Functions (Lambda): real worker processes, real jobs, in-process and over HTTP."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, FunctionError, InvalidArgument, NotFound, PayloadTooLarge, PermissionDenied, ResourceExhausted
from kiln.jobs._function_pool import pools_for
from kiln.jobs._functions import FunctionService
from kiln.server.app import create_app
from tests.conftest import TRAVERSAL
from tests.faces.conftest import CliResult, SyncASGI, cli, http_client  # noqa: F401 - the cli fixture

from .conftest import pid_alive

APP = '''
import os, time

def handler(event, context):
    return {"pid": os.getpid(), "event": event}

def info(event, context):
    return {"name": context.function_name, "version": context.function_version, "id": context.aws_request_id,
            "memory": context.memory_limit_in_mb, "left_ms": context.get_remaining_time_in_millis(),
            "env": os.environ.get("GREETING"), "cwd_has_code": os.path.exists("app.py"),
            "secrets": sorted(k for k in os.environ if k.startswith("KILN_"))}

def one(event):
    return event * 2

def boom(event, context):
    raise ValueError(f"bad event {event}")

def slow(event, context):
    time.sleep(event)
    return os.getpid()

def hog(event, context):
    if event:
        block = bytearray(event << 20)
        return len(block)
    return os.getpid()

def not_json(event, context):
    return {1, 2}

def crash(event, context):
    os._exit(3)
'''

MAP = '''
def double(row, context):
    if row["x"] % 3 == 0:
        return None
    if row["x"] == 4:
        return [{"x": 4, "y": 8}, {"x": 4, "y": 9}]
    return {"x": row["x"], "y": row["x"] * 2}

def fail_at_five(row):
    return {"y": 1 / (row["x"] - 5)}

def sleepy(row):
    import time
    time.sleep(30)
'''


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    (folder / "mapper.py").write_text(MAP)
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("def handler(event, context):\n    return 'pkg'\n")
    return folder


def _client(tmp_path: Path, **settings: Any) -> kiln.Client:
    return kiln.Client(settings=load_settings(home=str(tmp_path / "home"), **settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    from .conftest import stop_all

    c = _client(tmp_path)
    try:
        yield c
    finally:
        stop_all(c)
        c.close()


def _pid(client: kiln.Client, name: str) -> int:
    return int(client.functions.invoke(name, None)["pid"])


# -- create, invoke, update, delete -------------------------------------------------------------


def test_create_invoke_update_delete(client: kiln.Client, code: Path) -> None:
    fn = client.functions.create("echo", handler="app:handler", code=code, timeout_s=5, memory_mb=512, description="echoes")
    assert (fn.version, fn.latest_version, fn.handler, fn.timeout_s, fn.memory_mb, fn.description) == (1, 1, "app:handler", 5.0, 512, "echoes")
    assert client.functions.invoke("echo", {"a": [1, 2]})["event"] == {"a": [1, 2]}
    assert client.functions.invoke("echo", None)["event"] is None

    two = client.functions.update("echo", handler="app:one")
    assert (two.version, two.latest_version, two.description, two.timeout_s) == (2, 2, "echoes", 5.0)
    assert client.functions.invoke("echo", 21) == 42
    assert client.functions.invoke("echo@1", 21)["event"] == 21  # the old version still runs as it was
    assert client.functions.update("echo", description="doubles").version == 2  # a description alone: in place
    assert client.functions.update("echo", handler="app:one").version == 2  # nothing changed: no version
    assert [(f.name, f.version, f.description) for f in client.functions.list()] == [("echo", 2, "doubles")]
    assert client.functions.get("echo@1").latest_version == 2

    assert client.functions.delete("echo") == [1, 2]
    with pytest.raises(NotFound, match="does not exist"):
        client.functions.invoke("echo", 1)
    actions = [e["action"] for e in client.audit.list(resource="functions/echo")]
    assert sorted(set(actions)) == ["functions.create", "functions.delete", "functions.update"]


def test_create_refuses_a_second_function_of_the_name_and_a_missing_version(client: kiln.Client, code: Path) -> None:
    client.functions.create("f", handler="app:handler", code=code)
    with pytest.raises(AlreadyExists, match="update"):
        client.functions.create("f", handler="app:one", code=code)
    with pytest.raises(NotFound, match="no version 7 .latest is 1"):
        client.functions.get("f@7")


# -- warm workers ---------------------------------------------------------------------------------


def test_a_warm_worker_serves_the_next_calls(client: kiln.Client, code: Path) -> None:
    client.functions.create("warm", handler="app:handler", code=code)
    pids = {_pid(client, "warm") for _ in range(5)}
    assert len(pids) == 1
    assert pools_for(client.workspace).workers("warm") == 1


def test_an_exception_reaches_the_caller_with_its_traceback_and_the_worker_survives(client: kiln.Client, code: Path, tmp_path: Path) -> None:
    client.functions.create("f", handler="app:boom", code=code)
    with pytest.raises(FunctionError) as info:
        client.functions.invoke("f", 7)
    assert info.value.message == "ValueError: bad event 7"
    trace = info.value.details["traceback"]
    assert 'File "<path>/app.py", line 17, in boom' in trace and trace.rstrip().endswith("ValueError: bad event 7")
    assert str(tmp_path) not in trace and "_function_worker" not in trace
    pool = pools_for(client.workspace)
    (_, worker, _), = pool._functions["f"].idle
    with pytest.raises(FunctionError, match="bad event 8"):
        client.functions.invoke("f", 8)
    assert [w for _, w, _ in pool._functions["f"].idle] == [worker] and worker.alive


def test_the_same_worker_answers_after_an_exception(client: kiln.Client, tmp_path: Path) -> None:
    folder = tmp_path / "flaky"
    folder.mkdir()
    (folder / "flaky.py").write_text("import os\ndef handler(event, context):\n    if event == 'fail':\n        raise KeyError(event)\n    return os.getpid()\n")
    client.functions.create("flaky", handler="flaky:handler", code=folder)
    pid = client.functions.invoke("flaky", "ok")
    with pytest.raises(FunctionError, match="^KeyError: 'fail'$"):
        client.functions.invoke("flaky", "fail")
    assert client.functions.invoke("flaky", "ok") == pid


def test_a_call_past_its_time_limit_kills_the_worker_and_the_next_call_gets_a_fresh_one(client: kiln.Client, code: Path) -> None:
    client.functions.create("slow", handler="app:slow", code=code, timeout_s=0.5)
    pid = client.functions.invoke("slow", 0)
    started = time.monotonic()
    with pytest.raises(FunctionError, match=r"function slow@1 did not answer within 0.5 s; its worker process was stopped"):
        client.functions.invoke("slow", 30)
    assert time.monotonic() - started < 5
    assert not pid_alive(pid)
    fresh = client.functions.invoke("slow", 0)
    assert fresh != pid and pid_alive(fresh)


def test_a_crash_is_a_function_error_and_the_next_call_works(client: kiln.Client, code: Path) -> None:
    client.functions.create("crash", handler="app:crash", code=code)
    with pytest.raises(FunctionError, match=r"crashed its worker process \(exit code 3\)"):
        client.functions.invoke("crash", 1)
    client.functions.update("crash", handler="app:one")
    assert client.functions.invoke("crash", 2) == 4


def test_the_memory_limit_refuses_a_large_allocation_and_the_worker_lives_on(client: kiln.Client, code: Path) -> None:
    client.functions.create("hog", handler="app:hog", code=code, memory_mb=256)
    pid = client.functions.invoke("hog", 0)
    assert client.functions.invoke("hog", 16) == 16 << 20
    with pytest.raises(FunctionError, match="^MemoryError"):
        client.functions.invoke("hog", 512)
    assert client.functions.invoke("hog", 0) == pid


def test_a_handler_with_one_parameter_and_the_context(client: kiln.Client, code: Path) -> None:
    client.functions.create("one", handler="app:one", code=code)
    assert client.functions.invoke("one", "ab") == "abab"
    client.functions.create("info", handler="app:info", code=code, timeout_s=7, memory_mb=300, environment={"GREETING": "hi"})
    first, second = client.functions.invoke("info", {}), client.functions.invoke("info", {})
    assert {k: first[k] for k in ("name", "version", "memory", "env", "cwd_has_code", "secrets")} == {
        "name": "info", "version": "1", "memory": "300", "env": "hi", "cwd_has_code": True, "secrets": [],
    }
    assert 0 < first["left_ms"] <= 7000 and first["id"] != second["id"]
    client.functions.create("pkg", handler="pkg:handler", code=code)
    assert client.functions.invoke("pkg") == "pkg"


def test_a_result_json_cannot_hold_is_a_function_error_naming_its_type(client: kiln.Client, code: Path) -> None:
    client.functions.create("nj", handler="app:not_json", code=code)
    with pytest.raises(FunctionError, match="JSON cannot hold.*set"):
        client.functions.invoke("nj", 1)


def test_a_payload_past_the_request_limit_is_refused(tmp_path: Path, code: Path) -> None:
    with _client(tmp_path, max_request_mb=0.01) as c:
        c.functions.create("echo", handler="app:handler", code=code)
        with pytest.raises(PayloadTooLarge, match="KILN_MAX_REQUEST_MB"):
            c.functions.invoke("echo", "x" * 20_000)
        with pytest.raises(InvalidArgument, match="not JSON"):
            c.functions.invoke("echo", {1, 2})


def test_calls_past_the_concurrency_limit_wait_then_are_refused(tmp_path: Path, code: Path) -> None:
    with _client(tmp_path, functions_concurrency=1, functions_queue_s=0.3) as c:
        c.functions.create("slow", handler="app:slow", code=code, timeout_s=10)
        c.functions.invoke("slow", 0)
        busy = threading.Thread(target=c.functions.invoke, args=("slow", 1.5))
        busy.start()
        time.sleep(0.3)
        with pytest.raises(ResourceExhausted, match=r"already runs 1 call\(s\) at once"):
            c.functions.invoke("slow", 0)
        busy.join()
        assert c.functions.invoke("slow", 0)


def test_idle_workers_are_stopped(tmp_path: Path, code: Path) -> None:
    with _client(tmp_path, functions_idle_s=0.2) as c:
        c.functions.create("f", handler="app:handler", code=code)
        pid = _pid(c, "f")
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid)
        assert _pid(c, "f") != pid


def test_closing_the_client_stops_its_workers(tmp_path: Path, code: Path) -> None:
    c = _client(tmp_path)
    c.functions.create("f", handler="app:handler", code=code)
    pid = _pid(c, "f")
    c.close()
    assert not pid_alive(pid)


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("handler", "words"), [
    ("no-colon", "invalid handler"),
    ("app", "invalid handler"),
    ("../x:y", "invalid handler"),
    ("/abs/app:handler", "invalid handler"),
    ("app:", "invalid handler"),
    (":handler", "invalid handler"),
    ("app:handler:x", "invalid handler"),
    ("missing:handler", "module 'missing' is not in the code folder"),
    ("pkg.missing:handler", "module 'pkg.missing' is not in the code folder"),
    ("app:nothing", "defines no 'nothing'"),
])
def test_bad_handlers_are_refused_at_create(client: kiln.Client, code: Path, handler: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        client.functions.create("f", handler=handler, code=code)
    assert client.functions.list() == []
    (event,) = client.audit.list(resource="functions/f")
    assert (event["action"], event["outcome"]) == ("functions.create", "failure")


def test_code_that_does_not_compile_is_refused_at_create(client: kiln.Client, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "app.py").write_text("def handler(event, context)\n    return 1\n")
    with pytest.raises(InvalidArgument, match=r"app.py does not compile: .* \(line 1\)"):
        client.functions.create("f", handler="app:handler", code=folder)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": 901}, "timeout_s"),
    ({"memory_mb": 64}, "memory_mb"),
    ({"environment": {"KILN_HOME": "/"}}, "set by Kiln"),
    ({"environment": {"A B": "x"}}, "is invalid"),
])
def test_bad_limits_and_variables_are_refused(client: kiln.Client, code: Path, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        client.functions.create("f", handler="app:handler", code=code, **kwargs)


@pytest.mark.parametrize("value", TRAVERSAL)
def test_traversal_strings_are_refused_as_names(client: kiln.Client, code: Path, value: str) -> None:
    with pytest.raises(InvalidArgument):
        client.functions.create(value, handler="app:handler", code=code)
    for call in (client.functions.get, client.functions.delete, client.functions.invoke):
        with pytest.raises((InvalidArgument, NotFound)):
            call(value)
    assert client.functions.list() == []


def test_a_viewer_reads_but_cannot_create_or_invoke(client: kiln.Client, code: Path) -> None:
    client.functions.create("f", handler="app:one", code=code)
    viewer = FunctionService(client.workspace, Context(actor="v", role="viewer"))
    assert viewer.get(name="f").version == 1
    for call in (lambda: viewer.invoke(name="f", payload=1), lambda: viewer.delete(name="f"), lambda: viewer.update(name="f", description="x")):
        with pytest.raises(PermissionDenied):
            call()


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[kiln.Client, httpx.Client]]:
    from kiln.core.workspace import Workspace

    ws = Workspace(load_settings(home=str(tmp_path / "server")))
    app = create_app(ws, auth=False, allowed_hosts=["testserver"])
    sdk = kiln.Client("http://testserver", token="", http_transport=SyncASGI(app))
    try:
        with http_client(app) as http:
            yield sdk, http
    finally:
        sdk.close()
        ws.close()


def test_invoke_over_http_is_json_in_json_out(remote: tuple[kiln.Client, httpx.Client], code: Path) -> None:
    sdk, http = remote
    sdk.functions.create("echo", handler="app:handler", code=code)
    resp = http.post("/v1/functions/echo/invoke", json={"x": 1})
    assert resp.status_code == 200 and resp.json()["event"] == {"x": 1}
    assert resp.json()["pid"] != os.getpid()  # the API's process runs no user code
    assert http.post("/v1/functions/echo/invoke", json=[1, "a"]).json()["event"] == [1, "a"]
    assert http.post("/v1/functions/echo/invoke").json()["event"] is None
    bad = http.post("/v1/functions/echo/invoke", content=b"{nope", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]
    assert sdk.functions.invoke("echo", {"y": 2})["event"] == {"y": 2}

    sdk.functions.update("echo", handler="app:boom")
    resp = http.post("/v1/functions/echo/invoke", json=3)
    assert resp.status_code == 424
    error = resp.json()["error"]
    assert (error["code"], error["message"]) == ("function_error", "ValueError: bad event 3")
    assert "<path>/app.py" in error["details"]["traceback"]
    with pytest.raises(FunctionError) as info:
        sdk.functions.invoke("echo", 4)
    assert info.value.details["traceback"].rstrip().endswith("ValueError: bad event 4")


def test_a_payload_past_the_request_limit_is_413_over_http(remote: tuple[kiln.Client, httpx.Client], code: Path) -> None:
    sdk, http = remote
    sdk.functions.create("echo", handler="app:handler", code=code)
    resp = http.post("/v1/functions/echo/invoke", json="x" * (7 << 20))
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


# -- map ------------------------------------------------------------------------------------------


def test_map_over_a_dataset_into_a_new_version_with_lineage(client: kiln.Client, code: Path) -> None:
    client.datasets.ingest("nums", pd.DataFrame({"x": range(10)}))
    client.functions.create("double", handler="mapper:double", code=code)
    lines: list[str] = []
    job = client.functions.map("double", dataset="nums@1", output="doubled", batch_size=4, logs=lines.append)
    assert job.state == "Completed", job.failure_reason
    assert job.kind == "function-map" and job.outputs == {"datasets": {"output": "doubled@1"}}
    assert job.metrics == {"rows_in": 10.0, "rows_out": 7.0}
    out = client.datasets.get("doubled@1")
    assert out.lineage == {"parents": ["nums@1"], "job": job.name, "function": "double@1"}
    table = client.datasets.head("doubled@1", n=100).to_pandas()
    assert table.to_dict("list") == {"x": [1, 2, 4, 4, 5, 7, 8], "y": [2, 4, 8, 9, 10, 14, 16]}
    assert any("10/10 rows (100%), 7 out" in line for line in lines)


def test_a_map_that_raises_fails_with_the_row_and_traceback_and_registers_nothing(client: kiln.Client, code: Path) -> None:
    client.datasets.ingest("nums", pd.DataFrame({"x": range(10)}))
    client.functions.create("bad", handler="mapper:fail_at_five", code=code)
    job = client.functions.map("bad", dataset="nums", output="never", batch_size=3)
    assert job.state == "Failed"
    reason = job.failure_reason or ""
    assert reason.startswith("function bad@1 failed: row 5: ZeroDivisionError: division by zero")
    assert 'File "<path>/mapper.py", line 10, in fail_at_five' in reason
    with pytest.raises(NotFound):
        client.datasets.get("never")


def test_stopping_a_map_ends_its_worker_mid_batch(client: kiln.Client, code: Path) -> None:
    from .conftest import wait_state

    client.datasets.ingest("nums", pd.DataFrame({"x": range(3)}))
    client.functions.create("sleepy", handler="mapper:sleepy", code=code, timeout_s=60)
    job = client.functions.map("sleepy", dataset="nums@1", output="never", wait=False)
    wait_state(client, job.name, "Running")
    deadline = time.monotonic() + 30
    while not (pgid := _pgid(client, job.name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    client.jobs.stop(job.name)
    assert wait_state(client, job.name, "Stopped", "Failed", "Completed").state == "Stopped"
    assert time.monotonic() - started < 10 and pgid and not pid_alive(pgid)


def _pgid(client: kiln.Client, name: str) -> int | None:
    import sqlalchemy as sa

    from kiln.jobs import _tables as t

    with client.workspace.db.read() as conn:
        return conn.execute(sa.select(t.jobs.c.pgid).where(t.jobs.c.name == name)).scalar()


def test_map_refuses_a_missing_dataset_or_function_before_it_starts(client: kiln.Client, code: Path) -> None:
    client.functions.create("double", handler="mapper:double", code=code)
    with pytest.raises(NotFound):
        client.functions.map("double", dataset="ghost@1", output="o")
    with pytest.raises(NotFound):
        client.functions.map("ghost", dataset="ghost@1", output="o")
    with pytest.raises(InvalidArgument):
        client.functions.map("double", dataset="../x", output="o")
    assert client.jobs.list() == []


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_create_invoke_and_map(cli: Any, code: Path, tmp_path: Path) -> None:
    res: CliResult = cli("functions", "create", "echo", "--handler", "app:handler", "--code", str(code), "--timeout", "5", "--env", "GREETING=hi")
    assert res.code == 0, res.err
    res = cli("functions", "invoke", "echo", "--payload", '{"a": 1}')
    assert res.code == 0, res.err
    assert '"a": 1' in res.out
    event = tmp_path / "event.json"
    event.write_text("[1, 2]")
    assert '"event": [\n    1,\n    2\n  ]' in cli("functions", "invoke", "echo", "--payload-file", str(event)).out
    assert cli("functions", "update", "echo", "--handler", "app:boom").code == 0
    res = cli("functions", "invoke", "echo", "--payload", "5")
    assert res.code == FunctionError.exit_code
    assert "Traceback" in res.err and "ValueError: bad event 5" in res.err
    assert cli("functions", "invoke", "echo", "--payload", "{nope").code == InvalidArgument.exit_code
    res = cli("functions", "ls", "--json")
    assert '"version": 2' in res.out
    assert "app:boom" in cli("functions", "describe", "echo").out

    with kiln.Client(home=str(tmp_path / "kiln")) as other:
        other.datasets.ingest("nums", pd.DataFrame({"x": range(10)}))
    assert cli("functions", "create", "double", "--handler", "mapper:double", "--code", str(code)).code == 0
    res = cli("functions", "map", "double", "--dataset", "nums@1", "--output", "doubled", "--batch-size", "5")
    assert res.code == 0, res.err
    assert "registered 7 rows as dataset doubled@1" in res.out
    assert cli("functions", "delete", "echo", "--yes").code == 0
    assert cli("functions", "describe", "echo").code == NotFound.exit_code
