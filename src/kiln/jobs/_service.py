"""Jobs: one record and state machine for every kind (DESIGN.md §4), and the operations
every face shares: list, describe, logs, stop.

Stages that run jobs (training, processing, functions) check their request, then call
:meth:`JobService.submit`; the executor starts the job's runner, which does the rest.
A job whose runner is gone (killed, or its host restarted) is found by
:meth:`JobService.reconcile`, which every read runs and the server runs on a timer:
a Running job becomes Failed with a reason, a Pending one gets a new runner.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.jobs import _tables as t
from kiln.jobs._base import Executor, Launch, open_executor
from kiln.jobs._local import process_alive, this_host
from kiln.jobs._models import DRIVER_KINDS, JOB_KINDS, JOB_STATES, RESUMABLE_KINDS, Job, JobLogs
from kiln.jobs._proc import kill_group

__all__ = ["JobService", "job_name", "require_user_code"]

# A runner that has not beaten its heart for this long is gone (it beats every 2 s).
STALE_S = 30.0
MAX_LOG_PAGE = 10_000
_SETTINGS_ENV = ("home", "database_url", "storage_url", "s3_endpoint_url", "audit_key", "jobs_max_concurrent")


def require_user_code(ws: Workspace) -> None:
    """Refuse to run users' code where the server's settings say so (``KILN_USER_CODE=off``)."""
    value = str(ws.settings.user_code).strip().lower()
    if value == "off":
        raise PermissionDenied("this Kiln runs no users' code (KILN_USER_CODE=off): jobs and functions are refused here")
    if value != "on":
        raise InvalidArgument(f"setting user_code is {value!r}; use on or off")


def job_name(base: str) -> str:
    """A new job's name: ``base`` plus the time, as SageMaker names jobs (``train-2026-12-06-17-55-01-123``)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    base = base[: 63 - len(stamp) - 1].rstrip("-_") or "job"
    return f"{base}-{stamp}"


def _job(row: Any) -> Job:
    return Job(
        name=row.name, kind=row.kind, state=row.state, failure_reason=row.failure_reason, executor=row.executor,
        spec=orjson.loads(row.spec), created_at=row.created_at, created_by=row.created_by, role=row.role,
        started_at=row.started_at, ended_at=row.ended_at, attempts=row.attempts, max_attempts=row.max_attempts,
        time_limit_s=row.time_limit_s, stop_requested=bool(row.stop_requested), run_id=row.run_id,
        outputs=orjson.loads(row.outputs or "{}"), metrics=orjson.loads(row.metrics or "{}"),
        host=row.host, heartbeat_at=row.heartbeat_at,
    )


class JobService:
    """Every job, whatever its kind."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx
        self._executor: Executor | None = None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = open_executor(self.ws.settings.executor)
        return self._executor

    # -- submit (called by the stages that run jobs, after they checked the request) ---------

    def submit(
        self,
        *,
        kind: str,
        spec: Mapping[str, Any],
        name: str | None = None,
        base_name: str | None = None,
        time_limit_s: float | None = None,
        max_attempts: int = 1,
        cpus: float = 1.0,
        gpus: float = 0.0,
    ) -> Job:
        """Record a Pending job and have the executor start its runner.

        Raises:
            InvalidArgument: bad name, kind, time limit or attempts.
            AlreadyExists: a job of that name exists.
            PermissionDenied: the caller is not an editor.
        """
        if kind not in JOB_KINDS:
            raise InvalidArgument(f"unknown job kind {kind!r}; one of {list(JOB_KINDS)}")
        require_user_code(self.ws)
        if name is not None:
            check_name(name, kind="job")
        else:
            name = job_name(check_name(base_name or kind, kind="job"))
        if time_limit_s is not None and not (0 < float(time_limit_s) <= 28 * 86_400):
            raise InvalidArgument("the time limit (max_run) must be between 1 second and 28 days")
        if not 1 <= int(max_attempts) <= 30:
            raise InvalidArgument("max_attempts must be between 1 and 30 (max_retries between 0 and 29)")
        now = time.time()
        row = {
            "name": name, "kind": kind, "state": "Pending", "failure_reason": None, "executor": self.ws.settings.executor,
            # Whether the submitter owns the workspace (in-process) decides what its code may see.
            "handle": "", "spec": orjson.dumps({**spec, "source": "local" if self.ctx.source == "local" else "rest"}).decode(), "created_at": now, "created_by": self.ctx.actor,
            "role": self.ctx.role, "time_limit_s": float(time_limit_s) if time_limit_s is not None else None,
            "max_attempts": int(max_attempts), "attempts": 0, "stop_requested": False, "outputs": "{}", "metrics": "{}",
        }
        with self.ws.mutation(self.ctx, action="jobs.submit", resource=f"jobs/{name}", details={"kind": kind}) as (conn, _):
            if conn.execute(sa.select(t.jobs.c.name).where(t.jobs.c.name == name)).first() is not None:
                raise AlreadyExists(f"job {name!r} exists; pick another name or leave it out for a generated one")
            conn.execute(t.jobs.insert(), row)
        self._launch(name, cpus=cpus, gpus=gpus)
        return self.get(name=name)

    def _launch(self, name: str, *, cpus: float = 1.0, gpus: float = 0.0, previous: str | None = None) -> None:
        marker = f"launching:{uuid.uuid4().hex}"
        with self.ws.db.write() as conn:
            cond = [t.jobs.c.name == name, t.jobs.c.state == "Pending"]
            if previous is not None:
                cond.append(t.jobs.c.handle == previous)
            if not conn.execute(t.jobs.update().where(*cond), {"handle": marker, "heartbeat_at": time.time()}).rowcount:
                return  # another process launched it, or it is no longer Pending
            kind = conn.execute(sa.select(t.jobs.c.kind).where(t.jobs.c.name == name)).scalar()
        try:
            launch = Launch(job=name, env=self._runner_env(), cpus=cpus, gpus=gpus, launches_jobs=kind in DRIVER_KINDS)
            handle = self.executor.submit(launch)
        except Exception as exc:  # noqa: BLE001 - recorded on the job, which must not stay Pending
            self._fail(name, f"the {self.executor.name} executor could not start the job: {exc}")
            raise
        with self.ws.db.write() as conn:
            conn.execute(t.jobs.update().where(t.jobs.c.name == name, t.jobs.c.handle == marker), {"handle": handle})

    def _runner_env(self) -> dict[str, str]:
        """The settings a runner opens the same workspace with, wherever it runs."""
        s = self.ws.settings
        env = {f"KILN_{k.upper()}": str(getattr(s, k)) for k in _SETTINGS_ENV if getattr(s, k) not in ("", None)}
        env["KILN_EXECUTOR"] = s.executor
        return env

    # -- reads ------------------------------------------------------------------------------

    def get(self, *, name: str) -> Job:
        """One job: its state, spec, outputs and metrics.

        Raises:
            NotFound: no job has that name.
        """
        check_name(name, kind="job")
        self.ctx.require("viewer")
        self.reconcile(names=[name])
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(t.jobs).where(t.jobs.c.name == name)).first()
        if row is None:
            raise NotFound(f"job {name!r} does not exist; `kiln jobs ls` lists jobs")
        return _job(row)

    def list(self, *, kind: str | None = None, state: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first, optionally of one kind or in one state."""
        self.ctx.require("viewer")
        if kind is not None and kind not in JOB_KINDS:
            raise InvalidArgument(f"unknown job kind {kind!r}; one of {list(JOB_KINDS)}")
        if state is not None and state not in JOB_STATES:
            raise InvalidArgument(f"unknown job state {state!r}; one of {list(JOB_STATES)}")
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        self.reconcile()
        q = sa.select(t.jobs).order_by(t.jobs.c.created_at.desc()).limit(limit)
        if kind is not None:
            q = q.where(t.jobs.c.kind == kind)
        if state is not None:
            q = q.where(t.jobs.c.state == state)
        with self.ws.db.read() as conn:
            return [_job(r) for r in conn.execute(q)]

    def logs(self, *, name: str, after: int = 0, limit: int = 1000) -> JobLogs:
        """Log lines of a job after line number ``after`` (0: from the start), up to ``limit``.

        ``next`` is the number to pass as ``after`` to read on; ``done`` is true once the job
        has ended and every line has been read.
        """
        job = self.get(name=name)
        if after < 0 or not 1 <= limit <= MAX_LOG_PAGE:
            raise InvalidArgument(f"after must be ≥ 0 and limit between 1 and {MAX_LOG_PAGE}")
        with self.ws.db.read() as conn:
            rows = conn.execute(
                sa.select(t.job_logs.c.seq, t.job_logs.c.text).where(t.job_logs.c.job == name, t.job_logs.c.seq > after)
                .order_by(t.job_logs.c.seq).limit(limit)
            ).all()
            total = conn.execute(sa.select(t.jobs.c.log_lines).where(t.jobs.c.name == name)).scalar() or 0
        nxt = rows[-1].seq if rows else after
        return JobLogs(job=name, lines=[r.text for r in rows], next=nxt, state=job.state, done=job.done and (nxt >= total or not rows))

    # -- stop ---------------------------------------------------------------------------------

    def stop(self, *, name: str) -> Job:
        """Stop a job: a Pending one at once, a Running one as soon as its runner has ended
        every process it started (SIGTERM, then SIGKILL after a grace period).

        Raises:
            NotFound: no such job.
            Conflict: the job has already ended.
        """
        check_name(name, kind="job")
        with self.ws.mutation(self.ctx, action="jobs.stop", resource=f"jobs/{name}") as (conn, details):
            row = conn.execute(sa.select(t.jobs).where(t.jobs.c.name == name)).first()
            if row is None:
                raise NotFound(f"job {name!r} does not exist; `kiln jobs ls` lists jobs")
            if row.state in ("Completed", "Failed", "Stopped"):
                raise Conflict(f"job {name!r} has already ended ({row.state}); there is nothing to stop")
            details["state"] = row.state
            values: dict[str, Any] = {"stop_requested": True}
            if row.state == "Pending":
                values.update(state="Stopped", failure_reason="stopped on request before it started", ended_at=time.time())
            conn.execute(t.jobs.update().where(t.jobs.c.name == name), values)
        if row.state == "Running" and row.handle and not row.handle.startswith("launching:"):
            try:
                self.executor.stop(row.handle)
            except Exception:  # noqa: BLE001 - the flag in the record stops it anyway
                pass
        return self.get(name=name)

    # -- liveness -----------------------------------------------------------------------------

    def reconcile(self, *, names: list[str] | None = None, relaunch: bool = True) -> list[str]:
        """Fail Running jobs whose runner is gone and restart Pending ones whose runner is gone.

        Returns the names of the jobs it changed.
        """
        q = sa.select(t.jobs).where(t.jobs.c.state.in_(("Pending", "Running")))
        if names is not None:
            q = q.where(t.jobs.c.name.in_(names))
        with self.ws.db.read() as conn:
            rows = conn.execute(q).all()
        changed = []
        for row in rows:
            if self._runner_alive(row):
                continue
            if row.state == "Running" and row.kind in RESUMABLE_KINDS and not row.stop_requested:
                if self._requeue(row) and relaunch:
                    self._launch(row.name, previous=row.handle)
                changed.append(row.name)
            elif row.state == "Running":
                if self._fail(row.name, "the job's runner ended without recording a result: its process was killed or its host restarted", expect="Running"):
                    if row.pgid and row.host == this_host():
                        kill_group(row.pgid, grace_s=2.0)
                    changed.append(row.name)
            elif relaunch:
                self._launch(row.name, previous=row.handle)
                changed.append(row.name)
        return changed

    def _runner_alive(self, row: Any) -> bool:
        handle = row.handle or ""
        now = time.time()
        beat = row.heartbeat_at or row.created_at
        if handle.startswith("launching:") or not handle:
            return now - beat < STALE_S
        if row.state == "Running" and row.host == this_host() and row.pid:
            return process_alive(row.pid)
        try:
            alive = self.executor.alive(handle) if row.executor == self.ws.settings.executor else None
        except Exception:  # noqa: BLE001 - unknown: fall back on the heartbeat
            alive = None
        if alive is not None:
            return alive
        return now - beat < STALE_S

    def _requeue(self, row: Any) -> bool:
        """A resumable job whose runner is gone goes back to Pending, to be picked up again."""
        ctx = Context(actor="system:jobs", role="admin", source="server", request_id=f"reconcile-{row.name}")
        with self.ws.mutation(ctx, action="jobs.resumed", resource=f"jobs/{row.name}", details={"reason": "its runner was gone"}) as (conn, _):
            return bool(conn.execute(
                t.jobs.update().where(t.jobs.c.name == row.name, t.jobs.c.state == "Running", t.jobs.c.handle == row.handle),
                {"state": "Pending", "heartbeat_at": time.time()},
            ).rowcount)

    def _fail(self, name: str, reason: str, *, expect: str | None = None) -> bool:
        ctx = Context(actor="system:jobs", role="admin", source="server", request_id=f"reconcile-{name}")
        with self.ws.mutation(ctx, action="jobs.failed", resource=f"jobs/{name}", details={"reason": reason[:300]}) as (conn, _):
            cond = [t.jobs.c.name == name]
            if expect:
                cond.append(t.jobs.c.state == expect)
            else:
                cond.append(t.jobs.c.state.in_(("Pending", "Running")))
            done = conn.execute(t.jobs.update().where(*cond), {"state": "Failed", "failure_reason": reason, "ended_at": time.time()}).rowcount
        if done:
            from kiln.jobs._runner import _finish_run_by_id

            _finish_run_by_id(self.ws, name, reason)
        return bool(done)
