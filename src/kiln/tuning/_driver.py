"""The tuning job's program, run by the job runner (never in the API process): it starts
trials (training jobs, run by the executor like any other), reads the objective per step
from their logs, stops those the pruner gives up on, and tells the strategy how each ended.

Everything it knows is in Kiln's tables: a trial row is written (with its hyperparameters
and its training job's name) before the training job is submitted, and updated as the job
runs. A driver that starts again (its runner was killed, its host restarted: the job
watcher puts the job back to Pending) rebuilds the study from those rows, submits the
trials that were recorded but never submitted, and goes on where the last one stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.errors import AlreadyExists, Conflict, KilnError, NotFound
from kiln.jobs._runner import Outcome, RunningJob
from kiln.tuning import _tables as t
from kiln.tuning._ranges import parse_ranges
from kiln.tuning._strategy import Study, TrialRecord

__all__ = ["run", "trial_job_name"]

POLL_S = 0.1
_MAX_STEPS = 10_000  # objective values kept per trial


def trial_job_name(tuning_job: str, number: int, sampled: Mapping[str, Any]) -> str:
    """``<tuning-job>-<nnn>-<hash>``, as SageMaker names a tuning job's training jobs."""
    digest = hashlib.sha256(orjson.dumps({"job": tuning_job, "n": number, "p": dict(sampled)}, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]
    return f"{tuning_job}-{number + 1:03d}-{digest}"


def load_records(ws: Any, tuning_job: str) -> list[Any]:
    with ws.db.read() as conn:
        return conn.execute(sa.select(t.trials).where(t.trials.c.tuning_job == tuning_job).order_by(t.trials.c.number)).all()


def record_of(row: Any) -> TrialRecord:
    return TrialRecord(
        number=row.number, state=row.state, sampled=orjson.loads(row.sampled), objective=row.objective,
        intermediate=orjson.loads(row.intermediate or "[]"), early_stopped=bool(row.early_stopped),
    )


class _Driver:
    def __init__(self, job: RunningJob) -> None:
        from kiln.jobs._service import JobService

        self.job = job
        self.ws = job.ws
        self.spec = job.spec
        # Trials act for the tuning job's submitter; one made in-process keeps in-process rights.
        self.ctx = dataclasses.replace(job.ctx, source="local") if self.spec.get("source") == "local" else job.ctx
        self.jobs = JobService(self.ws, self.ctx)
        # The executor's launcher: on the local executor, the zygote forked warm for this
        # driver by the one that forked it (kiln.jobs._zygote, ``launcher``), which also started
        # importing Optuna in a thread as the runner began; elsewhere it starts now, while
        # Optuna is imported, not after.
        self.jobs.executor.warm()
        self.metric = self.spec["objective_metric_name"]
        self.ranges = parse_ranges(self.spec["hyperparameter_ranges"])
        self.max_jobs = int(self.spec["max_jobs"])
        self.parallel = int(self.spec["max_parallel_jobs"])
        self.study = Study(
            strategy=self.spec["strategy"], ranges=self.ranges, direction=self.spec["objective_type"], seed=int(self.spec.get("random_seed") or 0),
            max_jobs=self.max_jobs, early_stopping=self.spec.get("early_stopping_type") or "Off", name=self.job.name,
        )
        self.matcher = _objective_matcher(self.spec["training"].get("metric_definitions") or [], self.metric)
        self.cursor: dict[int, int] = {}  # trial number -> log line read up to
        self.values: dict[int, list[float]] = {}  # trial number -> objective per step
        self.stopping: set[int] = set()  # trials the pruner stopped

    # -- start / resume -------------------------------------------------------------------

    def resume(self) -> list[Any]:
        parents = self.spec.get("warm_start_parents") or []
        for parent in parents:
            prow = self._parent_spec(parent)
            if prow is None:
                self.job.log(f"warm start: parent tuning job {parent} is gone; left out")
                continue
            added = self.study.add_warm_start((record_of(r) for r in load_records(self.ws, parent)), parse_ranges(prow["hyperparameter_ranges"]))
            self.job.log(f"warm start ({self.spec.get('warm_start_type')}): {added} trial(s) of {parent}")
        rows = load_records(self.ws, self.job.name)
        for row in rows:
            rec = record_of(row)
            self.study.add_own(rec)
            self.values[row.number] = list(rec.intermediate)
            self.cursor[row.number] = 0
            if row.early_stopped and row.state in ("Pending", "Running"):
                self.stopping.add(row.number)
        if rows:
            self.job.log(f"resuming with {len(rows)} trial(s) already recorded")
            self.values = {n: [] for n in self.values}  # re-read from the logs, which hold every step
        for row in rows:
            if row.state == "Pending":
                self._submit(row.number, row.job, orjson.loads(row.hyperparameters))
        return rows

    def _parent_spec(self, parent: str) -> dict[str, Any] | None:
        from kiln.jobs import _tables as jt

        with self.ws.db.read() as conn:
            spec = conn.execute(sa.select(jt.jobs.c.spec).where(jt.jobs.c.name == parent, jt.jobs.c.kind == "tuning")).scalar()
        return orjson.loads(spec) if spec else None

    # -- one trial ------------------------------------------------------------------------

    def start_trial(self, number: int) -> None:
        sampled = self.study.ask(number)
        hps = self.study.hyperparameters(sampled)
        name = trial_job_name(self.job.name, number, sampled)
        with self.ws.mutation(self.ctx, action="tuning.trial", resource=f"tuning-jobs/{self.job.name}", details={"trial": number, "job": name}) as (conn, _):
            conn.execute(t.trials.insert(), {
                "tuning_job": self.job.name, "number": number, "job": name, "state": "Pending",
                "sampled": orjson.dumps(sampled).decode(), "hyperparameters": orjson.dumps(hps).decode(), "intermediate": "[]",
                "early_stopped": False, "created_at": time.time(),
            })
        self.values[number], self.cursor[number] = [], 0
        self.job.log(f"trial {number + 1}: {name} " + " ".join(f"{k}={v}" for k, v in hps.items()))
        self._submit(number, name, hps)

    def _submit(self, number: int, name: str, hps: Mapping[str, Any]) -> None:
        training = dict(self.spec["training"])
        training["hyperparameters"] = {**training.get("hyperparameters", {}), **hps, "_tuning_objective_metric": self.metric}
        training["parent_run_id"] = self.job.run_id
        training["tuning_job"] = self.job.name
        try:
            self.jobs.submit(kind="training", spec=training, name=name, time_limit_s=self.spec.get("max_run_s"),
                             max_attempts=int(self.spec.get("max_retries") or 0) + 1, cpus=1.0)
        except AlreadyExists:
            pass  # submitted before a restart: it runs, or has run, on its own
        except KilnError as exc:
            self._end(number, "Failed", None, f"the trial's training job could not start: {exc.message}")

    def poll(self, row: Any) -> None:
        """Follow one unfinished trial: its state, its objective per step, the pruner's word."""
        try:
            job = self.jobs.get(name=row.job)
        except NotFound:
            return
        number = row.number
        new = self._read_values(number, row.job)
        values = self.values[number]
        # Every step is reported, even of a trial that has just ended: the median rule and
        # Hyperband compare a running trial with the curves of those before it.
        if new and self.study.report(number, values) and not job.done:
            if number not in self.stopping:
                self.stopping.add(number)
                self.job.log(f"trial {number + 1} ({row.job}) stopped early at step {len(values)}: {self.metric} = {values[-1]:g}")
                try:
                    self.jobs.stop(name=row.job)
                except Conflict:
                    pass
        if new or (job.state == "Running" and row.state == "Pending"):
            with self.ws.db.write() as conn:
                conn.execute(t.trials.update().where(t.trials.c.tuning_job == self.job.name, t.trials.c.number == number),
                             {"state": "Running" if not job.done else row.state, "intermediate": orjson.dumps(values[-_MAX_STEPS:]).decode(),
                              "early_stopped": number in self.stopping})
        if not job.done:
            return
        final = job.metrics.get(self.metric)
        if final is None and values:
            final = values[-1]
        early = number in self.stopping and job.state != "Completed"
        if early:  # SageMaker: an early-stopped trial ends Stopped, with its last objective
            self._end(number, "Stopped", final, None, early=True)
        elif job.state == "Completed" and final is None:
            self._end(number, "Failed", None, f"the objective metric {self.metric!r} never appeared in the training job's log; "
                      "check the metric definitions' Regex against what the script prints")
        else:
            self._end(number, job.state, final if job.state in ("Completed", "Stopped") else None, job.failure_reason)

    def _read_values(self, number: int, name: str) -> bool:
        if self.matcher is None:
            return False
        found = False
        while True:
            page = self.jobs.logs(name=name, after=self.cursor.get(number, 0), limit=1000)
            for line in page.lines:
                for metric, value in self.matcher(line):
                    if metric == self.metric:
                        self.values[number].append(value)
                        found = True
            if page.next == self.cursor.get(number, 0) or not page.lines:
                return found
            self.cursor[number] = page.next
            if len(page.lines) < 1000:  # that was all there is for now
                return found

    def _end(self, number: int, state: str, objective: float | None, reason: str | None, *, early: bool = False) -> None:
        values = self.values.get(number, [])
        with self.ws.db.write() as conn:
            conn.execute(t.trials.update().where(t.trials.c.tuning_job == self.job.name, t.trials.c.number == number), {
                "state": state, "objective": objective, "failure_reason": reason, "ended_at": time.time(),
                "intermediate": orjson.dumps(values[-_MAX_STEPS:]).decode(), "early_stopped": early,
            })
        self.study.tell(number, state=state, objective=objective, early_stopped=early)
        shown = f"{self.metric} = {objective:g}" if objective is not None else (reason or "").splitlines()[0][:200] if reason else ""
        self.job.log(f"trial {number + 1} {state.lower()}" + (" (early stopping)" if early else "") + (f": {shown}" if shown else ""))

    # -- the loop -------------------------------------------------------------------------

    def loop(self) -> Outcome:
        self.resume()
        while True:
            rows = load_records(self.ws, self.job.name)
            active = [r for r in rows if r.state in ("Pending", "Running")]
            if self.job.stop_requested:
                return self._stop(active)
            for row in active:
                self.poll(row)
            rows = load_records(self.ws, self.job.name)
            active = [r for r in rows if r.state in ("Pending", "Running")]
            started = len(rows)
            while len(active) < self.parallel and started < self.max_jobs and not self.job.stop_requested:
                self.start_trial(started)
                started += 1
                active.append(None)
            if started >= self.max_jobs and not active:
                return self._outcome(load_records(self.ws, self.job.name))
            time.sleep(POLL_S)

    def _stop(self, active: list[Any]) -> Outcome:
        for row in active:
            try:
                self.jobs.stop(name=row.job)
            except (Conflict, NotFound):
                pass
        deadline = time.monotonic() + 60
        while active and time.monotonic() < deadline:
            for row in active:
                self.poll(row)
            active = [r for r in load_records(self.ws, self.job.name) if r.state in ("Pending", "Running")]
            if active:
                time.sleep(POLL_S)
        outcome = self._outcome(load_records(self.ws, self.job.name))
        outcome.stopped = True
        return outcome

    def _outcome(self, rows: list[Any]) -> Outcome:
        best = best_trial(rows, self.spec["objective_type"])
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        if best is None:
            return Outcome(failure=f"no trial reported the objective metric {self.metric!r}: {counts}; see the trials' logs")
        self.job.log(f"best training job: {best.job} ({self.metric} = {best.objective:g})")
        outputs = {"best_training_job": best.job, "best_trial": best.number + 1, "trials": counts}
        return Outcome(outputs=outputs, metrics={self.metric: float(best.objective)})


def best_trial(rows: list[Any], objective_type: str) -> Any | None:
    """The trial with the best objective: Completed ones, else early-stopped ones (as SageMaker)."""
    pool = [r for r in rows if r.state == "Completed" and r.objective is not None] or [r for r in rows if r.state == "Stopped" and r.objective is not None]
    if not pool:
        return None
    sign = -1.0 if objective_type == "Maximize" else 1.0
    return min(pool, key=lambda r: (sign * r.objective, r.number))


def _objective_matcher(definitions: list[dict[str, str]], metric: str) -> Any:
    from kiln.training._contract import metric_matcher

    mine = [d for d in definitions if d.get("Name") == metric]
    return metric_matcher(mine, limit=None) if mine else None


def run(job: RunningJob) -> Outcome:
    return _Driver(job).loop()
