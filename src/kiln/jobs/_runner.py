"""The job runner: the process that runs one job, wherever an executor starts it.

``python -m kiln.jobs._runner NAME`` (the local executor) or a Ray task calling
:func:`main` opens the workspace from the settings it was given, waits for a
slot while the job is Pending, claims it (Pending → Running, exactly once),
then hands it to the program of its kind (training, processing...). The
program prepares the job's folder and runs the user's code through
:meth:`RunningJob.execute`: a process group of its own, its output streamed
into the job's log, the time limit and a stop enforced. The runner keeps a
heartbeat in the job record, retries a failed attempt with backoff when the
job allows more than one, and records the outcome with an audit event. It is
Kiln's code: users' code only ever runs in the process groups it starts.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.workspace import Workspace
from kiln.jobs import _tables as t
from kiln.jobs._local import this_host
from kiln.jobs._proc import ExitStatus, run_group

__all__ = ["Outcome", "PROGRAMS", "RunningJob", "main"]

log = logging.getLogger("kiln.jobs")

# kind -> "module:function" taking a RunningJob and returning an Outcome.
PROGRAMS: dict[str, str] = {
    "training": "kiln.training._program:run",
    "processing": "kiln.jobs._processing:run",
    "function-map": "kiln.jobs._functions:run_map",
    "transform": "kiln.serving._transform:run",
    "tuning": "kiln.tuning._driver:run",
    "automl": "kiln.automl._program:run",
}
HEARTBEAT_S = 2.0
LOG_FLUSH_S = 0.5
MAX_LOG_BYTES = 64 << 20
MAX_BACKOFF_S = 60.0


@dataclass
class Outcome:
    """What a program's attempt came to.

    Attributes:
        failure: None on success, else the reason a person reads (``failure_reason``).
        retriable: whether another attempt may succeed (a crash, not bad input).
        stopped: the attempt ended because the job was asked to stop.
        outputs: what the job produced (model version, dataset versions, stored folders).
        metrics: final metric values.
    """

    failure: str | None = None
    retriable: bool = False
    stopped: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def backoff_s(attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: 1 s, 2 s, 4 s... up to a minute."""
    return min(MAX_BACKOFF_S, 2.0 ** max(attempt - 1, 0))


class _LogSink:
    """Buffers output lines and appends them to the job's log in batches (every 0.5 s)."""

    def __init__(self, ws: Workspace, job: str, start_seq: int, start_bytes: int) -> None:
        self.ws, self.job = ws, job
        self.seq, self.bytes = start_seq, start_bytes
        self._pending: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._truncated = False
        self.tail: list[str] = []

    def write(self, line: str) -> None:
        with self._lock:
            if not line.startswith("[kiln] "):
                self.tail.append(line)  # the tail a failure reason quotes: the code's own lines
            if len(self.tail) > 200:
                del self.tail[:100]
            if self._truncated:
                return
            if self.bytes + len(line) > MAX_LOG_BYTES:
                self._truncated = True
                line = f"[kiln] log truncated at {MAX_LOG_BYTES >> 20} MB; the job goes on"
            self.bytes += len(line) + 1
            self._pending.append((time.time(), line))

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        rows = []
        for at, text in batch:
            self.seq += 1
            rows.append({"job": self.job, "seq": self.seq, "at": at, "text": text})
        with self.ws.db.write() as conn:
            conn.execute(t.job_logs.insert(), rows)
            conn.execute(t.jobs.update().where(t.jobs.c.name == self.job), {"log_lines": self.seq, "log_bytes": self.bytes})

    def tail_text(self, lines: int = 30) -> str:
        with self._lock:
            return "\n".join(self.tail[-lines:])


class RunningJob:
    """What a program gets: the job's record and spec, its folder, its log, and a way to
    run users' code under the job's limits."""

    def __init__(self, ws: Workspace, row: Any, sink: _LogSink, stop: threading.Event) -> None:
        self.ws = ws
        self.name: str = row.name
        self.kind: str = row.kind
        self.spec: dict[str, Any] = orjson.loads(row.spec)
        self.submitter: str = row.created_by
        self.role: str = row.role
        self.time_limit_s: float | None = row.time_limit_s
        self.attempt = 0
        self.max_attempts: int = row.max_attempts
        self.run_id: str | None = row.run_id
        # The job acts for its submitter, with the submitter's role, and is named in the audit.
        self.ctx = Context(actor=f"job:{row.name}", role=row.role, source="job", request_id=row.name)
        self.folder = ws.settings.home / "jobs" / row.name
        self._sink = sink
        self._stop = stop
        self._attempt_started = time.monotonic()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def log(self, message: str) -> None:
        """A line of Kiln's own in the job's log."""
        for line in message.splitlines() or [""]:
            self._sink.write(f"[kiln] {line}")

    def output(self, line: str) -> None:
        """A line of users' code that ran elsewhere (a remote host relayed by Ray) in the job's log."""
        self._sink.write(line)

    def log_tail(self, lines: int = 30) -> str:
        return self._sink.tail_text(lines)

    def user_env(self, extra: Mapping[str, str] = ()) -> dict[str, str]:  # type: ignore[assignment]
        """The environment users' code runs with: this process's, without Kiln's secrets
        (database URLs, the audit key, tokens, cloud keys), plus the job's names.

        A job submitted in-process (``kiln train`` without a server: its submitter owns the
        workspace) also gets the workspace's settings, so ``kiln.load_run()`` logs into the
        job's run; a job submitted over REST does not (its metrics come from its log).
        """
        from kiln.core.worker import worker_env

        # In-process submitters own the workspace: their code gets this process's environment
        # whole (the runner's settings included). Over REST it gets no secret of the server's.
        env = dict(os.environ) if self.spec.get("source") == "local" else worker_env()
        env.pop("KILN_JOB_NO_SLOT", None)
        env.update({"PYTHONUNBUFFERED": "1", "KILN_JOB_NAME": self.name, "KILN_JOB_KIND": self.kind})
        if self.run_id:
            env["KILN_RUN_ID"] = self.run_id
        env.update(dict(extra))
        return env

    def remaining_s(self) -> float | None:
        if self.time_limit_s is None:
            return None
        return self.time_limit_s - (time.monotonic() - self._attempt_started)

    def execute(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path,
        env: Mapping[str, str],
        on_line: Callable[[str], None] | None = None,
        memory_mb: int | None = None,
        prefix: str = "",
        also_stop: Callable[[], bool] | None = None,
    ) -> ExitStatus:
        """Run users' code in its own process group under the job's time limit and stop.

        ``prefix`` marks its log lines (``[algo-2] ``); ``also_stop`` ends it early too (a
        sibling host failed).
        """
        def line(text: str) -> None:
            self._sink.write(prefix + text if prefix else text)
            if on_line is not None:
                on_line(text)

        def started(pgid: int) -> None:
            with self.ws.db.write() as conn:
                conn.execute(t.jobs.update().where(t.jobs.c.name == self.name), {"pgid": pgid})

        def should_stop() -> bool:
            return self._stop.is_set() or (also_stop is not None and also_stop())

        remaining = self.remaining_s()
        return run_group(
            argv, cwd=cwd, env=env, on_line=line, time_limit_s=max(remaining, 0.0) if remaining is not None else None,
            should_stop=should_stop, on_start=started, memory_mb=memory_mb,
        )


def _load_program(kind: str) -> Callable[[RunningJob], Outcome]:
    spec = PROGRAMS.get(kind)
    if spec is None:
        raise LookupError(f"no program runs jobs of kind {kind!r}")
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def _row(ws: Workspace, name: str) -> Any:
    with ws.db.read() as conn:
        return conn.execute(sa.select(t.jobs).where(t.jobs.c.name == name)).first()


class _Heartbeat(threading.Thread):
    """Keeps ``heartbeat_at`` fresh and turns the record's ``stop_requested`` into ``stop``."""

    def __init__(self, ws: Workspace, name: str, stop: threading.Event, sink: _LogSink) -> None:
        super().__init__(name="kiln-job-heartbeat", daemon=True)
        self.ws, self.job, self.stop, self.sink = ws, name, stop, sink
        self.done = threading.Event()

    def run(self) -> None:
        last_beat = 0.0
        while not self.done.wait(LOG_FLUSH_S):
            try:
                self.sink.flush()
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    last_beat = time.monotonic()
                    with self.ws.db.write() as conn:
                        conn.execute(t.jobs.update().where(t.jobs.c.name == self.job), {"heartbeat_at": time.time()})
                        wanted = conn.execute(sa.select(t.jobs.c.stop_requested).where(t.jobs.c.name == self.job)).scalar()
                    if wanted:
                        self.stop.set()
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the job; retried next beat
                log.warning("job %s: heartbeat failed", self.job, exc_info=True)


def _wait_for_slot(ws: Workspace, name: str, stop: threading.Event) -> Any:
    """Hold one of the machine's job slots (``KILN_JOBS_MAX_CONCURRENT``) while Pending."""
    from filelock import FileLock, Timeout

    slots = ws.settings.jobs_max_concurrent or (os.cpu_count() or 1)
    folder = ws.settings.home / "jobs" / ".slots"
    folder.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        for i in range(slots):
            lock = FileLock(str(folder / f"slot-{i}.lock"))
            try:
                lock.acquire(timeout=0)
                return lock
            except Timeout:
                continue
        stop.wait(0.5)
        row = _row(ws, name)
        if row is None or row.state != "Pending" or row.stop_requested:
            return None
    return None


def _claim(ws: Workspace, name: str) -> bool:
    """Pending → Running, exactly once, whichever runners race for it."""
    now = time.time()
    with ws.db.write() as conn:
        claimed = conn.execute(
            t.jobs.update().where(t.jobs.c.name == name, t.jobs.c.state == "Pending", t.jobs.c.stop_requested == sa.false()),
            {"state": "Running", "started_at": now, "heartbeat_at": now, "host": this_host(), "pid": os.getpid(), "attempts": 1},
        ).rowcount
    return bool(claimed)


def _start_run(job: RunningJob) -> None:
    """The job's experiment run, where its parameters, metrics and lineage go."""
    if job.run_id:
        return
    from kiln.tracking._runs import RunService

    experiment = job.spec.get("experiment") or f"{job.kind}-jobs"
    params = {k: (v if isinstance(v, (str, int, float, bool)) else orjson.dumps(v).decode()) for k, v in (job.spec.get("hyperparameters") or {}).items()}
    info = RunService(job.ws, job.ctx).create(
        experiment_name=experiment, run_name=job.name, params=params, parent_run_id=job.spec.get("parent_run_id"),
        tags={"kiln.job": job.name, "kiln.job_kind": job.kind, "kiln.submitter": job.submitter}, source=f"job:{job.name}",
    )
    job.run_id = info.id
    with job.ws.db.write() as conn:
        conn.execute(t.jobs.update().where(t.jobs.c.name == job.name), {"run_id": info.id})


def _finish_run(job: RunningJob, state: str, reason: str | None, metrics: Mapping[str, float]) -> None:
    if not job.run_id:
        return
    from kiln.tracking._runs import RunService

    now = time.time()
    points = [{"key": k, "value": float(v), "timestamp": now, "step": 0} for k, v in metrics.items()]
    try:
        RunService(job.ws, job.ctx).finish(run_id=job.run_id, status="Completed" if state == "Completed" else "Failed", failure_reason=reason, metrics=points)
    except Exception:  # noqa: BLE001 - the run may already be finished by the user's own code
        log.info("job %s: run %s not finished by the runner", job.name, job.run_id, exc_info=True)


def _finish_run_by_id(ws: Workspace, name: str, reason: str) -> None:
    """End the run of a job that was failed from outside its runner (found dead)."""
    row = _row(ws, name)
    if row is None or not row.run_id:
        return
    from kiln.tracking._runs import RunService

    ctx = Context(actor="system:jobs", role="admin", source="server", request_id=f"reconcile-{name}")
    try:
        RunService(ws, ctx).finish(run_id=row.run_id, status="Failed", failure_reason=reason)
    except Exception:  # noqa: BLE001 - already finished
        pass


def _record(ws: Workspace, job: RunningJob, state: str, outcome: Outcome) -> None:
    reason = outcome.failure if state != "Completed" else None
    with ws.mutation(job.ctx, action=f"jobs.{state.lower()}", resource=f"jobs/{job.name}", role="viewer",
                     details={"kind": job.kind, "submitter": job.submitter, "attempts": job.attempt}) as (conn, details):
        if reason:
            details["reason"] = reason[:300]
        conn.execute(
            t.jobs.update().where(t.jobs.c.name == job.name),
            {"state": state, "failure_reason": reason, "ended_at": time.time(), "attempts": job.attempt,
             "outputs": orjson.dumps(outcome.outputs).decode(), "metrics": orjson.dumps(outcome.metrics).decode()},
        )


def _run_attempts(ws: Workspace, job: RunningJob, stop: threading.Event) -> tuple[str, Outcome]:
    program = _load_program(job.kind)
    outcome = Outcome(failure="never ran")
    while job.attempt < job.max_attempts:
        job.attempt += 1
        job._attempt_started = time.monotonic()
        with ws.db.write() as conn:
            conn.execute(t.jobs.update().where(t.jobs.c.name == job.name), {"attempts": job.attempt})
        if job.max_attempts > 1:
            job.log(f"attempt {job.attempt} of {job.max_attempts}")
        outcome = program(job)
        if outcome.stopped or stop.is_set():
            return "Stopped", Outcome(failure="stopped on request", outputs=outcome.outputs, metrics=outcome.metrics)
        if outcome.failure is None:
            return "Completed", outcome
        job.log(f"attempt {job.attempt} failed: {outcome.failure.splitlines()[0][:300] if outcome.failure else ''}")
        if not outcome.retriable or job.attempt >= job.max_attempts:
            break
        wait = backoff_s(job.attempt)
        job.log(f"retrying in {wait:g} s")
        if stop.wait(wait):
            return "Stopped", Outcome(failure="stopped on request")
    return "Failed", outcome


def main(name: str, env: Mapping[str, str] | None = None) -> str:
    """Run job ``name`` to its end; returns its final state (or "" when another runner has it)."""
    if env:
        os.environ.update(env)
    ws = Workspace()
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        row = _row(ws, name)
        if row is None or row.state != "Pending":
            return ""
        sink = _LogSink(ws, name, row.log_lines, row.log_bytes)
        beat = _Heartbeat(ws, name, stop, sink)
        beat.start()
        from kiln.jobs._models import DRIVER_KINDS

        needs_slot = not os.environ.get("KILN_JOB_NO_SLOT") and row.kind not in DRIVER_KINDS
        slot = _wait_for_slot(ws, name, stop) if needs_slot else None
        try:
            if stop.is_set() or not _claim(ws, name):
                return ""
            job = RunningJob(ws, _row(ws, name), sink, stop)
            job.folder.mkdir(parents=True, exist_ok=True)
            job.log(f"job {name} ({job.kind}) started on {this_host()}")
            try:
                _start_run(job)
                state, outcome = _run_attempts(ws, job, stop)
            except Exception as exc:  # noqa: BLE001 - a fault of Kiln's own, recorded, never a stuck job
                job.log("internal error in Kiln's job runner:\n" + traceback.format_exc())
                state, outcome = "Failed", Outcome(failure=f"internal error in Kiln's job runner ({type(exc).__name__}: {exc}); see the job's log")
            job.log(f"job {name} {state.lower()}" + (f": {outcome.failure.splitlines()[0]}" if state != "Completed" and outcome.failure else ""))
            beat.done.set()
            beat.join(timeout=5)
            sink.flush()
            _finish_run(job, state, outcome.failure, outcome.metrics)
            _record(ws, job, state, outcome)
            if not os.environ.get("KILN_KEEP_JOB_FOLDERS"):
                import shutil

                shutil.rmtree(job.folder, ignore_errors=True)
            return state
        finally:
            beat.done.set()
            if slot is not None:
                slot.release()
    finally:
        ws.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(0 if main(sys.argv[1]) in ("Completed", "") else 1)
