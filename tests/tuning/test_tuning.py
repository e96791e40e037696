"""Tuning jobs end to end: real trials (training jobs of a tiny script) on the local executor,
on SQLite and PostgreSQL; strategies, early stopping, warm start, and a driver that dies."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
import sqlalchemy as sa

import kiln
from kiln.core.errors import Conflict, InvalidArgument, NotFound
from kiln.jobs import _tables as jt

from .conftest import LR_KIND, SCORE, SCRIPTS, tune



def _objectives(job: kiln.tuning.TuningJob) -> list[float]:  # type: ignore[name-defined]
    return [t.objective for t in job.trials if t.objective is not None]


def test_a_bayesian_tuning_job_runs_its_trials_as_training_jobs(any_client: kiln.Client) -> None:
    job = tune(any_client, name="quad", max_jobs=4, max_parallel_jobs=2)
    assert job.state == "Completed", any_client.jobs.logs("quad").lines
    assert [t.number for t in job.trials] == [1, 2, 3, 4] and {t.state for t in job.trials} == {"Completed"}
    for trial in job.trials:
        assert re.fullmatch(rf"quad-{trial.number:03d}-[0-9a-f]{{8}}", trial.training_job)
        assert 0.0 <= trial.hyperparameters["lr"] <= 1.0 and trial.hyperparameters["kind"] in ("a", "b")
        training = any_client.jobs.get(trial.training_job)
        assert training.kind == "training" and training.state == "Completed"
        # SageMaker passes the objective's name to every trial among its reserved hyperparameters.
        assert training.spec["hyperparameters"]["_tuning_objective_metric"] == "score"
        assert training.metrics["score"] == trial.objective and trial.steps == 3
        run = any_client.runs.get(training.run_id)
        assert run.parent_run_id == job.run_id  # each trial's run is a child of the tuning job's run
    best = max(job.trials, key=lambda t: t.objective)
    assert job.best_training_job is not None and job.best_training_job.training_job == best.training_job
    tuning_job = any_client.jobs.get("quad")
    assert tuning_job.kind == "tuning" and tuning_job.outputs["best_training_job"] == best.training_job
    assert tuning_job.metrics["score"] == best.objective
    # The objective over time: every ended trial, with the best so far never getting worse.
    bests = [p.best for p in job.objective_over_time]
    assert len(bests) == 4 and bests == sorted(bests) and bests[-1] == best.objective
    assert {j.name for j in any_client.jobs.list(kind="training")} == {t.training_job for t in job.trials}


def test_the_same_seed_samples_the_same_trials(client: kiln.Client) -> None:
    first = tune(client, name="seeded-a", max_jobs=2, strategy="Random")
    second = tune(client, name="seeded-b", max_jobs=2, strategy="Random")
    other = tune(client, name="seeded-c", max_jobs=2, strategy="Random", random_seed=8)
    assert [t.hyperparameters for t in first.trials] == [t.hyperparameters for t in second.trials]
    assert [t.hyperparameters for t in first.trials] != [t.hyperparameters for t in other.trials]


def test_grid_walks_every_point_once_and_minimize_picks_the_lowest(client: kiln.Client) -> None:
    ranges = {"IntegerParameterRanges": [{"Name": "steps", "MinValue": "1", "MaxValue": "3"}],
              "CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]}]}
    job = tune(client, name="grid", strategy="Grid", hyperparameter_ranges=ranges, max_jobs=None, objective_type="Minimize")
    assert job.state == "Completed" and job.max_jobs == 6
    points = sorted((t.hyperparameters["steps"], t.hyperparameters["kind"]) for t in job.trials)
    assert points == [(s, k) for s in (1, 2, 3) for k in ("a", "b")]
    assert job.best_training_job.objective == min(_objectives(job))
    # lr is left at 0.5: kind a with one step scores lowest, 1 - 0.04
    assert job.best_training_job.hyperparameters == {"steps": 1, "kind": "a"}


def test_early_stopping_auto_stops_a_trial_worse_than_the_median(client: kiln.Client) -> None:
    ranges = {"CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b", "a2", "slow-bad"]}]}
    job = tune(client, name="early", strategy="Grid", hyperparameter_ranges=ranges, max_parallel_jobs=1,
               early_stopping_type="Auto", hyperparameters={"steps": 20, "pause": 0.0})
    assert job.state == "Completed", client.jobs.logs("early").lines
    by_kind = {t.hyperparameters["kind"]: t for t in job.trials}
    bad = by_kind["slow-bad"]
    # SageMaker: an early-stopped trial ends Stopped, with the last objective it reported.
    assert bad.state == "Stopped" and bad.early_stopped and bad.objective is not None and bad.objective < 0
    assert 1 <= bad.steps < 20
    assert client.jobs.get(bad.training_job).state == "Stopped"
    assert all(t.state == "Completed" and not t.early_stopped and t.steps == 20 for k, t in by_kind.items() if k != "slow-bad")
    assert job.best_training_job.hyperparameters["kind"] == "b"


def test_hyperband_runs_on_the_objective_per_step(client: kiln.Client) -> None:
    job = tune(client, name="hb", strategy="Hyperband", max_jobs=4, hyperparameters={"steps": 4})
    assert job.state == "Completed"
    assert len(job.trials) == 4 and all(t.steps >= 1 for t in job.trials)
    assert job.best_training_job.objective == max(_objectives(job))


def test_hyperband_stops_the_trials_worse_than_an_earlier_one_of_their_bracket(client: kiln.Client) -> None:
    """scripts/ladder.py: trial n scores about -n at each of 8 steps, each trial worse than all before it.
    Once trial 1 has completed, Hyperband knows the resource (8 steps: two brackets); trials 2 to 4 are
    three in two brackets, so at least one follows an earlier trial of its bracket and must be stopped
    at the bracket's first rung (its 2nd or 4th step). The study is named after the job, which brackets
    the trials the same way every run: this name puts 2 to 4 in one bracket (2 runs whole, 3 and 4 stop)."""
    ranges = {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.0", "MaxValue": "1.0"}]}
    job = tune(client, name="hb-ladder-4", entry_point="ladder.py", strategy="Hyperband", hyperparameter_ranges=ranges,
               max_jobs=4, max_parallel_jobs=1)
    assert job.state == "Completed", client.jobs.logs("hb-ladder-4").lines
    shown = [(t.number, t.state, t.steps, t.early_stopped) for t in job.trials]
    first, *later = job.trials
    assert first.state == "Completed" and not first.early_stopped and first.steps == 8, shown
    assert job.best_training_job is not None and job.best_training_job.number == 1
    pruned = [t for t in later if t.early_stopped]
    assert pruned, shown
    for trial in pruned:  # SageMaker: an early-stopped trial ends Stopped, with the last objective it reported
        assert trial.state == "Stopped" and 2 <= trial.steps < 8 and trial.objective is not None, shown
        assert client.jobs.get(trial.training_job).state == "Stopped"
    assert all(t.state == "Completed" and t.steps == 8 for t in later if not t.early_stopped), shown
    assert [t.number for t in pruned] == [3, 4], shown


def test_a_missing_objective_fails_the_trial_and_a_job_without_any_fails(client: kiln.Client) -> None:
    defs = [*SCORE, {"Name": "never", "Regex": r"never=([0-9.]+)"}]
    job = tune(client, name="nothing", max_jobs=2, metric_definitions=defs, objective_metric_name="never")
    assert job.state == "Failed" and "never" in job.failure_reason
    assert [t.state for t in job.trials] == ["Failed", "Failed"]
    assert all("never appeared" in t.failure_reason for t in job.trials)


def test_warm_start_seeds_the_study_with_the_parents_trials(client: kiln.Client) -> None:
    parent = tune(client, name="parent", max_jobs=3, max_parallel_jobs=3)
    assert parent.state == "Completed"
    narrower = {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.2", "MaxValue": "0.9"}]}
    child = tune(client, name="child", max_jobs=2, hyperparameter_ranges=narrower, warm_start_parents=["parent"],
                 warm_start_type="TransferLearning")
    assert child.state == "Completed" and child.warm_start_parents == ["parent"]
    fits = sum(0.2 <= t.hyperparameters["lr"] <= 0.9 for t in parent.trials)
    log = client.jobs.logs("child").lines
    assert f"[kiln] warm start (TransferLearning): {fits} trial(s) of parent" in log
    assert all(0.2 <= t.hyperparameters["lr"] <= 0.9 for t in child.trials)
    with pytest.raises(InvalidArgument, match="IdenticalDataAndAlgorithm"):
        tune(client, name="other-data", entry_point="quadratic.py", hyperparameters={}, warm_start_parents=["parent"],
             warm_start_type="IdenticalDataAndAlgorithm", source_dir=_other_source(client))
    with pytest.raises(NotFound):
        tune(client, name="orphan", warm_start_parents=["ghost"], warm_start_type="TransferLearning")


def _other_source(client: kiln.Client) -> str:
    import tempfile

    folder = tempfile.mkdtemp(dir=str(client.workspace.settings.home))
    with open(os.path.join(folder, "quadratic.py"), "w") as fh:
        fh.write((SCRIPTS / "quadratic.py").read_text() + "\n# another version\n")
    return folder


def _driver_pid(client: kiln.Client, name: str) -> int | None:
    with client.workspace.db.read() as conn:
        row = conn.execute(sa.select(jt.jobs.c.pid, jt.jobs.c.state).where(jt.jobs.c.name == name)).one()
    return row.pid if row.state == "Running" else None


def test_a_killed_driver_resumes_from_its_trials_without_repeating_one(client: kiln.Client) -> None:
    job = tune(client, name="resume", max_jobs=3, max_parallel_jobs=1, hyperparameters={"steps": 4, "pause": 0.2}, wait=False)
    deadline = time.monotonic() + 60
    while len(client.tuning.get("resume").trials) < 2:  # the first trial ended, the second is recorded
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = _driver_pid(client, "resume")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while True:  # a read settles the dead runner: the job goes back to Pending and a new driver resumes it
        job = client.tuning.get("resume")
        new = _driver_pid(client, "resume")
        if new is not None and new != pid:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    job = client.tuning.wait("resume", timeout_s=90)
    assert job.state == "Completed", client.jobs.logs("resume").lines
    assert [t.number for t in job.trials] == [1, 2, 3]
    assert len({t.training_job for t in job.trials}) == 3 and {t.state for t in job.trials} == {"Completed"}
    assert len(client.jobs.list(kind="training")) == 3  # no trial ran twice
    assert "[kiln] resuming with 2 trial(s) already recorded" in client.jobs.logs("resume").lines or \
        "[kiln] resuming with 1 trial(s) already recorded" in client.jobs.logs("resume").lines


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads processes from /proc")
def test_a_drivers_trials_start_from_a_zygote_forked_warm_for_it(client: kiln.Client) -> None:
    """The driver's launcher is forked from the zygote that forked the driver (not a fresh
    interpreter that imports everything and preloads a second model-worker zygote)."""
    tune(client, name="warm", max_jobs=1, max_parallel_jobs=1, hyperparameters={"steps": 40, "pause": 0.1}, wait=False)
    deadline = time.monotonic() + 60
    while not any(t.state == "Running" for t in client.tuning.get("warm").trials):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    driver = _driver_pid(client, "warm")
    trial = client.tuning.get("warm").trials[0].training_job
    with client.workspace.db.read() as conn:
        runner = conn.execute(sa.select(jt.jobs.c.pid).where(jt.jobs.c.name == trial)).scalar()
    assert driver is not None and runner is not None
    launchers = [p for p in _children(driver) if runner in _children(p)]
    assert len(launchers) == 1, "the trial's runner is forked by a launcher that is the driver's child"
    assert not [p for p in _children(launchers[0]) if "kiln.core._worker_zygote" in _cmdline(p)], "a second worker zygote"
    client.tuning.stop("warm")
    assert client.tuning.wait("warm", timeout_s=60).state == "Stopped"


def test_stopping_a_tuning_job_stops_its_running_trials(client: kiln.Client) -> None:
    tune(client, name="halt", max_jobs=4, max_parallel_jobs=2, hyperparameters={"steps": 100, "pause": 0.2}, wait=False)
    deadline = time.monotonic() + 60
    while sum(t.state == "Running" for t in client.tuning.get("halt").trials) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.tuning.stop("halt")
    job = client.tuning.wait("halt", timeout_s=60)
    assert job.state == "Stopped" and len(job.trials) == 2
    assert all(client.jobs.get(t.training_job).state == "Stopped" for t in job.trials)
    with pytest.raises(Conflict, match="tuning job 'halt' has already ended"):
        client.tuning.stop("halt")


BAD = [
    ({"hyperparameter_ranges": "{not json"}, "not valid JSON"),
    ({"hyperparameter_ranges": {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "1", "MaxValue": "0.5"}]}}, "must be below MaxValue"),
    ({"hyperparameter_ranges": {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}]}}, "MinValue > 0"),
    ({"hyperparameter_ranges": {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0", "MaxValue": "2", "ScalingType": "ReverseLogarithmic"}]}}, "MaxValue < 1"),
    ({"hyperparameter_ranges": {"IntegerParameterRanges": [{"Name": "steps", "MinValue": "1", "MaxValue": "x"}]}}, "is not an integer"),
    ({"hyperparameter_ranges": {"FloatRanges": []}}, "unknown key"),
    ({"hyperparameter_ranges": {}}, "at least one"),
    ({"strategy": "Grid"}, "continuous range"),
    ({"strategy": "Genetic"}, "unknown strategy"),
    ({"objective_metric_name": "validation:auc"}, "not captured by the metric definitions"),
    ({"objective_type": "Biggest"}, "Maximize or Minimize"),
    ({"max_jobs": 0}, "max_jobs"),
    ({"max_parallel_jobs": 0}, "max_parallel_jobs"),
    ({"early_stopping_type": "Sometimes"}, "Off or Auto"),
    ({"strategy": "Hyperband", "early_stopping_type": "Auto"}, "leave early stopping Off"),
    ({"warm_start_type": "TransferLearning"}, "needs warm_start_parents"),
    ({"hyperparameters": {"lr": 0.1}}, "both static hyperparameters and tuned"),
    ({"name": "x" * 51}, "at most 50"),
    ({"name": "Bad Name"}, "invalid"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_requests_are_refused_before_anything_runs(client: kiln.Client, change: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        tune(client, **change)
    assert client.tuning.list() == [] and client.jobs.list() == []


def test_a_built_in_algorithm_knows_its_hyperparameters(client: kiln.Client) -> None:
    ranges = {"IntegerParameterRanges": [{"Name": "max_deep", "MinValue": "1", "MaxValue": "3"}]}
    path = client.workspace.settings.home / "t.csv"
    path.write_text("1,0.5\n0,0.1\n" * 10)
    with pytest.raises(InvalidArgument, match="no hyperparameter 'max_deep'"):
        client.tuning.create(algorithm="random-forest", channels={"train": str(path)}, objective_metric_name="train:accuracy",
                             hyperparameter_ranges=ranges, hyperparameters={"predictor_type": "classifier"})


def test_unknown_tuning_job(client: kiln.Client) -> None:
    with pytest.raises(NotFound, match="kiln tune ls"):
        client.tuning.get("ghost")
    job = client.processing.run(command=["true"], name="plain", logs=False)
    with pytest.raises(NotFound):  # a job of another kind is no tuning job
        client.tuning.get(job.name)


def test_describe_json_round_trips_through_the_cli(client: kiln.Client, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from kiln.cli import _common
    from kiln.cli.main import app

    monkeypatch.setenv("KILN_HOME", str(client.workspace.settings.home))
    monkeypatch.setattr(_common, "_client", client)  # the CLI keeps one client per process: use this test's
    runner = CliRunner()
    args = ["tune", "--objective", "score", "--ranges", json.dumps(LR_KIND), "--max-jobs", "2", "--max-parallel-jobs", "2",
            "--entry-point", "quadratic.py", "--source-dir", str(SCRIPTS), "--metric-definitions", json.dumps(SCORE), "--name", "cli"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best_training_job" in result.output and "cli-001-" in result.output
    described = runner.invoke(app, ["tune", "describe", "cli", "--json"])
    data = json.loads(described.output)
    assert data["name"] == "cli" and len(data["trials"]) == 2 and data["best_training_job"]["training_job"].startswith("cli-00")
    listed = runner.invoke(app, ["tune", "ls", "--json"])
    assert [row["name"] for row in json.loads(listed.output)] == ["cli"]
    import subprocess
    import sys

    for extra, says in ((["--ranges", "{oops"], "--ranges is not valid JSON"), ([], "needs --objective")):
        argv = [sys.executable, "-m", "kiln", "tune", *(["--objective", "score"] if extra else []), *extra, "--entry-point", "quadratic.py",
                "--source-dir", str(SCRIPTS)]
        bad = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=60)
        assert bad.returncode != 0 and says in bad.stderr and "Traceback" not in bad.stderr + bad.stdout, bad.stderr
    assert [row["name"] for row in json.loads(runner.invoke(app, ["tune", "ls", "--json"]).output)] == ["cli"]  # nothing half-made


def test_after_a_server_restart_the_watcher_resumes_the_tuning_job(client: kiln.Client) -> None:
    """The host's processes died with the server (the driver and a running trial); the restarted
    server's job watcher settles them, and the tuning job goes on from its recorded trials."""
    import threading

    from kiln.core.config import load_settings
    from kiln.core.workspace import Workspace
    from kiln.jobs import _watcher

    from tests.jobs.conftest import pid_alive

    tune(client, name="restart", max_jobs=3, max_parallel_jobs=1, hyperparameters={"steps": 40, "pause": 0.1}, wait=False)
    deadline = time.monotonic() + 60
    while [(t.state, t.steps > 0) for t in client.tuning.get("restart").trials] != [("Running", True)]:  # its script is printing
        assert time.monotonic() < deadline
        time.sleep(0.05)
    trial = client.tuning.get("restart").trials[0].training_job
    with client.workspace.db.read() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(jt.jobs.c.name, jt.jobs.c.pid, jt.jobs.c.pgid).where(jt.jobs.c.name.in_(["restart", trial])))}
    os.kill(rows["restart"].pid, signal.SIGKILL)
    os.kill(rows[trial].pid, signal.SIGKILL)
    os.killpg(rows[trial].pgid, signal.SIGKILL)
    while pid_alive(rows["restart"].pid) or pid_alive(rows[trial].pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    fresh = Workspace(load_settings(home=str(client.settings.home)))  # the restarted server's workspace
    stop = threading.Event()
    stop.set()  # one pass
    try:
        _watcher._loop(fresh, stop)
    finally:
        fresh.close()
    job = client.tuning.wait("restart", timeout_s=90)
    assert job.state == "Completed", client.jobs.logs("restart").lines
    assert [t.number for t in job.trials] == [1, 2, 3]
    # The trial that died with the host is Failed with the reason; the two after it ran once each.
    assert job.trials[0].state == "Failed" and "runner ended" in job.trials[0].failure_reason
    assert [t.state for t in job.trials[1:]] == ["Completed", "Completed"] and len(client.jobs.list(kind="training")) == 3
