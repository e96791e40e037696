"""The job record and its state machine, on the local executor, with real processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.errors import Conflict, InvalidArgument, NotFound

from .conftest import pid_alive, run_cmd, wait_state


def test_a_job_runs_logs_and_completes_with_a_run(client: kiln.Client) -> None:
    job = run_cmd(client, "print('hello'); import sys; print('to stderr', file=sys.stderr)")
    assert job.state == "Completed" and job.failure_reason is None and job.attempts == 1
    lines = client.jobs.logs(job.name).lines
    assert "hello" in lines and "to stderr" in lines
    run = client.runs.get(job.run_id)
    assert run.status == "Completed" and run.name == job.name
    actions = [e["action"] for e in client.audit.list(resource=f"jobs/{job.name}", limit=50)]
    assert "jobs.submit" in actions and "jobs.completed" in actions


def test_a_failing_command_fails_with_its_exit_code_and_last_lines(client: kiln.Client) -> None:
    job = run_cmd(client, "import sys; print('bad input row 7'); sys.exit(3)")
    assert job.state == "Failed"
    assert "exited with code 3" in job.failure_reason and "bad input row 7" in job.failure_reason
    assert client.runs.get(job.run_id).status == "Failed"


def test_the_time_limit_ends_a_hanging_job(client: kiln.Client) -> None:
    start = time.monotonic()
    job = run_cmd(client, "import time; time.sleep(60)", max_run_s=1)
    assert job.state == "Failed" and "time limit" in job.failure_reason
    assert time.monotonic() - start < 20


def test_stop_ends_every_process_even_children_ignoring_sigterm(client: kiln.Client, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, signal, time\n"
        f"with open({str(pids)!r}, 'w') as f:\n"
        "    for _ in range(2):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "            time.sleep(300); os._exit(0)\n"
        "        f.write(f'{pid}\\n')\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True); time.sleep(300)\n"
    )
    job = run_cmd(client, code, wait=False)
    wait_state(client, job.name, "Running")
    deadline = time.monotonic() + 20
    while "ready" not in client.jobs.logs(job.name).lines and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [int(p) for p in pids.read_text().split()]
    assert all(pid_alive(p) for p in children)
    client.jobs.stop(job.name)
    done = client.jobs.wait(job.name, timeout_s=60)
    assert done.state == "Stopped" and done.failure_reason == "stopped on request"
    assert not any(pid_alive(p) for p in children)


def test_stop_a_pending_job_and_a_finished_one(client: kiln.Client, tmp_path: Path) -> None:
    os.environ["KILN_JOBS_MAX_CONCURRENT"] = "1"  # read by runners: one slot
    try:
        slow = kiln.Client(settings=kiln.Client(home=str(tmp_path / "home")).settings)
        first = run_cmd(slow, "import time; time.sleep(30)", wait=False)
        wait_state(slow, first.name, "Running")
        queued = run_cmd(slow, "print('never')", wait=False)
        time.sleep(1.0)
        assert slow.jobs.get(queued.name).state == "Pending"  # waits for the one slot
        assert slow.jobs.stop(queued.name).state == "Stopped"
        slow.jobs.stop(first.name)
        assert slow.jobs.wait(first.name, timeout_s=30).state == "Stopped"
        with pytest.raises(Conflict, match="already ended"):
            slow.jobs.stop(first.name)
        slow.close()
    finally:
        del os.environ["KILN_JOBS_MAX_CONCURRENT"]


def test_a_failed_attempt_is_retried_with_backoff(client: kiln.Client, tmp_path: Path) -> None:
    marker = tmp_path / "tried"
    code = f"import os, sys\np = {str(marker)!r}\nif not os.path.exists(p):\n    open(p, 'w').close(); sys.exit(1)\nprint('second time lucky')"
    job = run_cmd(client, code, max_retries=2)
    assert job.state == "Completed" and job.attempts == 2
    lines = client.jobs.logs(job.name).lines
    assert "[kiln] retrying in 1 s" in lines and "second time lucky" in lines


def test_a_killed_runner_marks_its_job_failed_and_ends_its_code(client: kiln.Client) -> None:
    job = run_cmd(client, "import time; print('up', flush=True); time.sleep(300)", wait=False)
    wait_state(client, job.name, "Running")
    deadline = time.monotonic() + 20
    while "up" not in client.jobs.logs(job.name).lines and time.monotonic() < deadline:
        time.sleep(0.05)
    from kiln.jobs import _tables as t
    import sqlalchemy as sa

    with client.workspace.db.read() as conn:
        row = conn.execute(sa.select(t.jobs.c.pid, t.jobs.c.pgid).where(t.jobs.c.name == job.name)).one()
    os.kill(row.pid, signal.SIGKILL)  # the host "restarts" under the runner
    deadline = time.monotonic() + 10
    while pid_alive(row.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = wait_state(client, job.name, "Failed", timeout=30)
    assert "runner ended without recording a result" in failed.failure_reason
    assert failed.run_id and client.runs.get(failed.run_id).status == "Failed"  # set before its code ran
    deadline = time.monotonic() + 10
    while pid_alive(row.pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(row.pgid)


def test_a_queued_job_whose_runner_died_runs_again(client: kiln.Client) -> None:
    """After a restart, queued jobs run: a Pending job without a runner gets a new one."""
    from kiln.jobs import _tables as t

    job = run_cmd(client, "print('ran after all')", wait=False, name="queued")
    client.jobs.wait(job.name, timeout_s=30)
    with client.workspace.db.write() as conn:  # as if its runner died before claiming it
        conn.execute(t.jobs.update().where(t.jobs.c.name == "queued"), {
            "state": "Pending", "handle": "elsewhere:1:1", "heartbeat_at": time.time() - 3600, "started_at": None,
        })
    done = client.jobs.wait("queued", timeout_s=30)
    assert done.state == "Completed" and client.jobs.logs("queued").lines.count("ran after all") == 2


def test_logs_page_by_line_number(client: kiln.Client) -> None:
    job = run_cmd(client, "for i in range(25): print(f'line {i}')")
    first = client.jobs.logs(job.name, limit=10)
    rest = client.jobs.logs(job.name, after=first.next, limit=1000)
    assert not first.done and rest.done
    user = [line for line in first.lines + rest.lines if not line.startswith("[kiln]")]
    assert user == [f"line {i}" for i in range(25)]


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"inputs": {"raw": "ghost@1"}}, NotFound, "no dataset 'ghost"),
    ({"inputs": {"raw": "/no/such/file.csv"}}, NotFound, "no file or folder"),
    ({"inputs": {"Bad Name": "/tmp"}}, InvalidArgument, "invalid input name"),
    ({"outputs": {"out": "Not_A_Name!"}}, InvalidArgument, "invalid dataset name"),
    ({"environment": {"KILN_HOME": "/"}}, InvalidArgument, "set by Kiln"),
    ({"name": "../etc"}, InvalidArgument, "invalid job name"),
    ({"max_run_s": -1}, InvalidArgument, "time limit"),
])
def test_bad_requests_are_refused_before_anything_runs(client: kiln.Client, kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        run_cmd(client, "print(1)", **kwargs)
    assert client.jobs.list() == []


def test_an_unknown_job(client: kiln.Client) -> None:
    with pytest.raises(NotFound, match="kiln jobs ls"):
        client.jobs.get("ghost")
    with pytest.raises(NotFound):
        client.jobs.stop("ghost")


def test_processing_reads_datasets_and_registers_outputs_with_lineage(client: kiln.Client, tmp_path: Path) -> None:
    import pandas as pd

    src = tmp_path / "raw.csv"
    pd.DataFrame({"x": [1, 2, 3], "y": [10, 20, 30]}).to_csv(src, index=False)
    client.datasets.ingest("raw", str(src))
    script = tmp_path / "double.py"
    script.write_text(
        "import os, glob, pandas as pd\n"
        "df = pd.read_csv(glob.glob(os.path.join(os.environ['KILN_INPUT_RAW'], '*.csv'))[0])\n"
        "df['y'] = df['y'] * 2\n"
        "df.to_csv(os.path.join(os.environ['KILN_OUTPUT_CLEAN'], 'clean.csv'), index=False)\n"
    )
    job = client.processing.run(code=str(script), inputs={"raw": "raw"}, outputs={"clean": "doubled"}, logs=False)
    assert job.state == "Completed", job.failure_reason
    assert job.outputs["datasets"] == {"clean": "doubled@1"}
    version = client.datasets.get("doubled@1")
    assert version.lineage["parents"] == ["raw@1"] and version.lineage["job"] == job.name
    assert client.datasets.read("doubled@1").to_pandas()["y"].tolist() == [20, 40, 60]


def test_an_empty_output_fails_the_job_and_registers_nothing(client: kiln.Client) -> None:
    job = run_cmd(client, "print('wrote nothing')", outputs={"out": "never"})
    assert job.state == "Failed" and "output 'out' is empty" in job.failure_reason
    with pytest.raises(NotFound):
        client.datasets.get("never")


def test_a_job_killed_by_sigkill_names_the_likely_out_of_memory_killer(client: kiln.Client) -> None:
    job = run_cmd(client, "import os, signal; print('allocating', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    assert job.state == "Failed" and "SIGKILL" in job.failure_reason and "out-of-memory" in job.failure_reason


def test_a_server_may_run_no_users_code(tmp_path: Path) -> None:
    from kiln.core.errors import PermissionDenied

    c = kiln.Client(settings=load_settings(home=str(tmp_path / "h"), user_code="off"))
    with pytest.raises(PermissionDenied, match="KILN_USER_CODE=off"):
        run_cmd(c, "print(1)")
    assert c.jobs.list() == []
    c.close()


def test_gc_keeps_what_jobs_name_and_removes_an_unused_archive(client: kiln.Client, tmp_path: Path) -> None:
    from kiln.core.gc import collect_garbage
    from kiln.core.context import local_context
    from kiln.training._contract import pack_source

    script = tmp_path / "s.py"
    script.write_text("print('kept')\n")
    job = client.processing.run(code=str(script), logs=False)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "x.py").write_text("print('never run')\n")
    sha = pack_source(source_dir=stray, entry_point="x.py", out=tmp_path / "stray.tar.gz")
    from kiln.jobs._code import CodeService

    CodeService(client.workspace, local_context()).store(tmp_path / "stray.tar.gz")
    store = client.workspace.store
    report = collect_garbage(client.workspace, local_context(), grace_s=0, dry_run=False, now=time.time() + 10)
    assert not store.exists(f"jobs/code/{sha}.tar.gz")
    assert store.exists(f"jobs/code/{job.spec['code']}.tar.gz") and report is not None
