"""The executor contract kit: every backend (local processes, a local Ray on loopback) runs
the same jobs and must agree. A new executor is done when it passes this module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import kiln
from kiln.core.config import load_settings
from kiln.core.errors import NotFound, Unavailable
from kiln.jobs import _tables as t
from kiln.jobs._base import Launch, open_executor
from kiln.jobs._ray import RayExecutor

from .conftest import pid_alive, run_cmd, stop_all, wait_state

pytestmark = pytest.mark.xdist_group("executor-kit")  # one Ray per module, on one worker


@pytest.fixture(params=["local", "ray"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[kiln.Client]:
    """A workspace whose jobs run on the executor named by the parameter."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    client = kiln.Client(settings=load_settings(home=str(tmp_path / "home"), executor=request.param))
    try:
        yield client
    finally:
        stop_all(client)
        client.close()


def _record(client: kiln.Client, name: str) -> sa.Row:
    with client.workspace.db.read() as conn:
        return conn.execute(sa.select(t.jobs.c.handle, t.jobs.c.pid, t.jobs.c.pgid, t.jobs.c.executor).where(t.jobs.c.name == name)).one()


def _wait_line(client: kiln.Client, name: str, line: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in client.jobs.logs(name).lines:
        assert time.monotonic() < deadline, f"no {line!r} in the log of {name}"
        time.sleep(0.05)


def _until(check, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_job_runs_and_completes_with_its_log(kit: kiln.Client) -> None:
    job = run_cmd(kit, "print('hello'); import sys; print('to stderr', file=sys.stderr)")
    assert job.state == "Completed" and job.failure_reason is None and job.executor == kit.settings.executor
    lines = kit.jobs.logs(job.name).lines
    assert "hello" in lines and "to stderr" in lines
    assert kit.runs.get(job.run_id).status == "Completed"


def test_a_failing_job_fails_with_its_reason(kit: kiln.Client) -> None:
    job = run_cmd(kit, "import sys; print('bad row 7'); sys.exit(3)")
    assert job.state == "Failed"
    assert "exited with code 3" in job.failure_reason and "bad row 7" in job.failure_reason


def test_alive_answers_and_stop_ends_the_job_and_every_process_it_started(kit: kiln.Client, tmp_path: Path) -> None:
    executor = open_executor(kit.settings.executor)
    assert executor.capabilities.multi_host == executor.capabilities.remote == (executor.name == "ray")
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('ready', flush=True); time.sleep(300)\n"
    )
    job = run_cmd(kit, code, wait=False)
    _wait_line(kit, job.name, "ready")
    row = _record(kit, job.name)
    assert row.executor == kit.settings.executor and row.handle.startswith("ray:" if executor.name == "ray" else "")
    assert executor.alive(row.handle) is True and kit.jobs.get(job.name).state == "Running"
    if executor.name == "ray":  # a second launch of a job (reconcile) finds its runner, queues no other
        assert executor.submit(Launch(job=job.name)) == row.handle
    procs = [int(p) for p in pids.read_text().split()]
    assert all(pid_alive(p) for p in procs)
    kit.jobs.stop(job.name)
    done = kit.jobs.wait(job.name, timeout_s=30)
    assert done.state == "Stopped" and done.failure_reason == "stopped on request"
    assert _until(lambda: not any(pid_alive(p) for p in procs))
    assert _until(lambda: executor.alive(row.handle) is False)  # the runner (or its actor) is gone
    assert executor.alive("somewhere-else:1:1") is None  # a handle it cannot read: the heartbeat decides


def test_a_job_whose_runner_dies_is_marked_failed(kit: kiln.Client) -> None:
    """Local: the runner process is killed. Ray: the worker process of the runner's actor."""
    job = run_cmd(kit, "import time; print('up', flush=True); time.sleep(300)", wait=False)
    _wait_line(kit, job.name, "up")
    row = _record(kit, job.name)
    os.kill(row.pid, signal.SIGKILL)
    failed = wait_state(kit, job.name, "Failed", timeout=30)
    assert "runner ended without recording a result" in failed.failure_reason
    assert kit.runs.get(failed.run_id).status == "Failed"
    assert _until(lambda: not pid_alive(row.pgid))  # the user's code did not outlive its runner


def test_two_hosts_train_and_the_leader_model_is_registered(kit: kiln.Client, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import json, os\n"
        "host = os.environ['SM_CURRENT_HOST']\n"
        "addresses = json.loads(os.environ['KILN_HOST_ADDRESSES'])\n"
        "rows = open(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'data.csv')).read().split()\n"
        "print(f'SM_CURRENT_HOST={host} hosts={json.loads(os.environ[\"SM_HOSTS\"])} peers={sorted(addresses)} rows={len(rows)}')\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'model.txt'), 'w').write(host)\n"
    )
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("1,2\n3,4\n")
    job = kit.training.run(entry_point="train.py", source_dir=str(src), channels={"train": str(data)}, instance_count=2, logs=False)
    assert job.state == "Completed", job.failure_reason
    lines = kit.jobs.logs(job.name).lines
    for host in ("algo-1", "algo-2"):
        assert f"[{host}] SM_CURRENT_HOST={host} hosts=['algo-1', 'algo-2'] peers=['algo-1', 'algo-2'] rows=2" in lines
    assert kit.models.read_file(job.outputs["model"], "model.txt") == b"algo-1"


@pytest.mark.parametrize(("algorithm", "hps", "model_file"), [
    ("xgboost", {"num_round": 20, "objective": "binary:logistic", "max_depth": 3, "eta": 0.3}, "xgboost-model"),
    ("lightgbm", {"num_boost_round": 20, "num_leaves": 8, "min_data_in_leaf": 5, "early_stopping_rounds": 0}, "model.txt"),
])
def test_builtin_boosters_train_data_parallel_on_two_hosts(kit: kiln.Client, tmp_path: Path, algorithm: str, hps: dict, model_file: str) -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from kiln.training.builtin import load_builtin

    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    Xt, yt, Xv, yv = X[order[:426]], y[order[:426]], X[order[426:]], y[order[426:]]
    (tmp_path / "data").mkdir()
    for i in range(4):  # two files per host
        np.savetxt(tmp_path / "data" / f"part-{i}.csv", np.column_stack([yt[i::4], Xt[i::4]]), delimiter=",", fmt="%.8g")
    job = kit.training.run(algorithm=algorithm, channels={"train": str(tmp_path / "data")}, instance_count=2, hyperparameters=hps, logs=False)
    assert job.state == "Completed", job.failure_reason
    lines = kit.jobs.logs(job.name).lines
    assert f"[algo-1] channel train: {len(yt[0::4]) + len(yt[2::4])} rows, 30 features" in lines
    assert f"[algo-2] channel train: {len(yt[1::4]) + len(yt[3::4])} rows, 30 features" in lines
    joined = "joined the collective: rank" if algorithm == "xgboost" else "joins the LightGBM network"
    assert all(any(ln.startswith(f"[{h}] {h} {joined}") for ln in lines) for h in ("algo-1", "algo-2")), lines
    folder = tmp_path / "model"
    folder.mkdir()
    for name in (model_file, "kiln-algorithm.json"):
        (folder / name).write_bytes(kit.models.read_file(job.outputs["model"], name))
    model, joint = load_builtin(folder), _one_host(algorithm, hps, Xt, yt, Xv)
    assert np.mean(model.predict(Xv) == yv) >= np.mean((joint > 0.5) == yv) - 0.02
    if algorithm == "xgboost":  # allreduced histograms: the very model one host grows on all the rows
        np.testing.assert_allclose(model.predict_proba(Xv)[:, 1], joint, atol=1e-5)


def _one_host(algorithm: str, hps: dict, Xt, yt, Xv):  # type: ignore[no-untyped-def]
    """The same library call on all the rows in this process (what one host learns): P(class 1) on Xv."""
    if algorithm == "xgboost":
        import xgboost as xgb

        params = {k: v for k, v in hps.items() if k != "num_round"}
        return xgb.train(params, xgb.DMatrix(Xt, label=yt), num_boost_round=hps["num_round"]).predict(xgb.DMatrix(Xv))
    import lightgbm as lgb

    params = {"objective": "binary", "verbosity": -1, **{k: v for k, v in hps.items() if k not in ("num_boost_round", "early_stopping_rounds")}}
    return lgb.train(params, lgb.Dataset(Xt, label=yt), num_boost_round=hps["num_boost_round"]).predict(Xv)


def test_a_builtin_host_that_fails_fails_the_job_and_its_peer_stops_waiting(kit: kiln.Client, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-0.csv").write_text("1,0.5,2\n0,0.1,3\n")
    (tmp_path / "data" / "part-1.csv").write_text("1,0.5,two\n")  # algo-2's shard
    job = kit.training.run(algorithm="xgboost", channels={"train": str(tmp_path / "data")}, instance_count=2,
                           hyperparameters={"num_round": 2}, max_run_s=120, logs=False)
    assert job.state == "Failed"
    assert "(on algo-2)" in job.failure_reason and "two" in job.failure_reason, job.failure_reason


def _two_host_source(tmp_path: Path, body: str) -> str:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text("import os, sys, time\nhost = os.environ['SM_CURRENT_HOST']\n" + body)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "data.csv").write_text("1,2\n")
    return str(src)


@pytest.mark.parametrize("failing", ["algo-1", "algo-2"])
def test_a_failing_host_fails_the_job_with_its_reason_and_stops_the_other(kit: kiln.Client, tmp_path: Path, failing: str) -> None:
    pid_file = tmp_path / "other.pid"
    src = _two_host_source(tmp_path, (
        f"if host == {failing!r}:\n"
        f"    while not os.path.exists({str(pid_file)!r}): time.sleep(0.05)\n"
        "    open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write(f'bad data on {host}')\n"
        "    sys.exit(2)\n"
        f"open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid())); os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
        "time.sleep(300)\n"
    ))
    job = kit.training.run(entry_point="train.py", source_dir=src, channels={"train": str(tmp_path / "data")}, instance_count=2, logs=False)
    assert job.state == "Failed"
    assert f"bad data on {failing}" in job.failure_reason and f"(on {failing})" in job.failure_reason
    assert _until(lambda: not pid_alive(int(pid_file.read_text())))
    with pytest.raises(NotFound):
        kit.models.get(job.spec["model_name"])  # nothing registered


@pytest.mark.usefixtures("ray_cluster")
def test_ray_refuses_more_hosts_than_the_cluster_can_ever_place(tmp_path: Path) -> None:
    client = kiln.Client(settings=load_settings(home=str(tmp_path / "home"), executor="ray"))
    try:
        src = _two_host_source(tmp_path, "print(host)\n")
        job = client.training.run(entry_point="train.py", source_dir=src, channels={"train": str(tmp_path / "data")}, instance_count=8, logs=False)
        assert job.state == "Failed" and "instance_count 8 needs 8 hosts of 1 CPU each" in job.failure_reason
    finally:
        stop_all(client)
        client.close()


def test_the_test_ray_listens_on_loopback_only(ray_cluster: object) -> None:
    import ipaddress

    import psutil

    ray = ray_cluster
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # type: ignore[attr-defined]
    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in ours]
    assert listening, "found none of Ray's sockets"

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return (getattr(address, "ipv4_mapped", None) or address).is_loopback

    assert all(loopback(c.laddr.ip) for c in listening), [(c.pid, c.laddr.ip) for c in listening if not loopback(c.laddr.ip)]


def test_ray_is_imported_only_when_a_job_goes_to_ray() -> None:
    code = ("import sys; from kiln.jobs._base import open_executor; e = open_executor('ray'); "
            "assert e.capabilities.multi_host and e.alive('ray:kiln-job-x:00') is None; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(Unavailable, match=r"pip install 'kiln\[ray\]'"):
        RayExecutor("ray").submit(Launch(job="never"))
