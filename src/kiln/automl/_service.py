"""AutoML jobs (SageMaker Autopilot): the request is checked here, before anything runs, so
a bad one is refused with a 4xx and leaves no job; the search runs as a job (kind
``automl``) in the job executor, never in the API process."""

from __future__ import annotations

import os
from typing import Any

import orjson

from kiln.automl._base import check_metric, check_mode, check_problem_type
from kiln.automl._models import AutoMLJob, AutoMLReport, CandidateScript
from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, NotFound
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.jobs._models import Job
from kiln.jobs._service import JobService

__all__ = ["AutoMLService", "MAX_BUDGET_S", "MIN_BUDGET_S"]

MIN_BUDGET_S = 5.0
MAX_BUDGET_S = 7 * 86_400.0
DEFAULT_BUDGET_S = 600.0
MIN_ROWS = 10


def report_prefix(job: str) -> str:
    """Where a job's report lives in the object store (under the job's own folder)."""
    return f"jobs/{job}/automl/"


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class AutoMLService:
    """AutoML jobs: create, list, describe, report, candidate scripts."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def create(
        self,
        *,
        dataset: str,
        target: str,
        problem_type: str | None = None,
        metric: str | None = None,
        time_budget_s: float = DEFAULT_BUDGET_S,
        mode: str | None = None,
        model_name: str | None = None,
        name: str | None = None,
        n_jobs: int | None = None,
        seed: int = 0,
        max_candidates: int | None = None,
    ) -> Job:
        """Start an AutoML job on ``dataset`` (``name@version``) to predict column ``target``.

        The problem type and metric are inferred when left out (Autopilot's defaults: F1 for
        binary, Accuracy for multiclass, MSE for regression). The job searches candidates for
        ``time_budget_s`` seconds in all (the registration included), builds an ensemble
        (``mode`` Ensembling) or keeps the best tuned candidate (HyperparameterTuning), and
        registers the result as a version of ``model_name`` (default: the dataset's name
        plus ``-automl``) that serves raw rows.

        Raises:
            InvalidArgument: a bad name, problem type, metric, mode, budget or thread count; a
                target the dataset lacks; too few rows.
            NotFound: the dataset (version) does not exist.
        """
        self.ctx.require("editor")
        from kiln.jobs._inputs import resolve_source

        if not isinstance(target, str) or not target.strip():
            raise InvalidArgument("target names the column to predict; give --target COLUMN")
        problem = check_problem_type(problem_type)
        chosen_metric = check_metric(metric, problem)
        chosen_mode = check_mode(mode)
        try:
            budget = float(time_budget_s)
        except (TypeError, ValueError):
            raise InvalidArgument(f"time_budget_s must be a number of seconds, not {str(time_budget_s)[:30]!r}") from None
        if not MIN_BUDGET_S <= budget <= MAX_BUDGET_S:
            raise InvalidArgument(f"time_budget_s must be between {MIN_BUDGET_S:g} s and {MAX_BUDGET_S:g} s (7 days); got {budget:g}")
        threads = default_threads() if n_jobs is None else n_jobs
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 1024:
            raise InvalidArgument("n_jobs (threads) must be a whole number between 1 and 1024; leave it out for every core")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
            raise InvalidArgument("seed must be a whole number between 0 and 2**31 - 1")
        if max_candidates is not None and (not isinstance(max_candidates, int) or isinstance(max_candidates, bool) or not 1 <= max_candidates <= 10_000):
            raise InvalidArgument("max_candidates must be a whole number between 1 and 10000, or left out (the budget decides)")
        for label, value in (("model name", model_name), ("job", name)):
            if value is not None:
                check_name(value, kind=label)
        source = resolve_source(self.ws, self.ctx, dataset, what="dataset")
        if source.kind != "dataset":
            source = self._check_file(source.value)
        else:
            source = type(source)(kind="dataset", value=source.value, format="parquet")
            self._check_dataset(source.value, target)
        base = check_name(source.value.split("@", 1)[0].rsplit("/", 1)[-1].rsplit(".", 1)[0].lower().replace(".", "-")[:40].strip("-_") or "automl", kind="dataset")
        spec = {
            "dataset": source.as_dict(), "target": target, "problem_type": problem, "metric": chosen_metric, "time_budget_s": budget,
            "mode": chosen_mode, "model_name": model_name or f"{base}-automl", "n_jobs": threads, "seed": seed, "max_candidates": max_candidates,
        }
        jobs = JobService(self.ws, self.ctx)
        jobs.executor.warm()
        # The job's own limit is a backstop a little past the budget: the search ends itself in time.
        return jobs.submit(kind="automl", spec=spec, name=name, base_name=f"{base}-automl", time_limit_s=budget * 1.5 + 60, cpus=float(threads))

    def _check_dataset(self, ref: str, target: str) -> None:
        from kiln.lake.datasets import DatasetService

        version = DatasetService(self.ws, self.ctx).get(ref)
        names = [c.name for c in version.columns]
        if target not in names:
            close = [n for n in names if n.lower() == target.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidArgument(f"dataset {ref} has no column {target!r}{hint}; its columns: {', '.join(names[:30])}")
        if version.row_count < MIN_ROWS:
            raise InvalidArgument(f"dataset {ref} has {version.row_count} rows; AutoML needs at least {MIN_ROWS}")
        if len(names) < 2:
            raise InvalidArgument(f"dataset {ref} has only the target column; AutoML needs feature columns too")

    def _check_file(self, path: str) -> Any:
        from kiln.jobs._inputs import InputSource

        if not path.endswith((".csv", ".parquet")):
            raise InvalidArgument(f"{path!r}: AutoML reads a dataset (name@version), or locally a .csv or .parquet file")
        return InputSource("path", path)

    def list(self, *, limit: int = 100) -> list[Job]:
        """AutoML jobs, newest first."""
        return JobService(self.ws, self.ctx).list(kind="automl", limit=limit)

    def _job(self, name: str) -> Job:
        job = JobService(self.ws, self.ctx).get(name=name)
        if job.kind != "automl":
            raise NotFound(f"job {name!r} is a {job.kind} job, not an AutoML job; `kiln automl-jobs list` lists those")
        return job

    def describe(self, *, name: str) -> AutoMLJob:
        """An AutoML job with its leaderboard (as it grows while the job runs) and best model.

        Raises:
            NotFound: no AutoML job has that name.
        """
        job = self._job(name)
        out = job.outputs or {}
        board = out.get("leaderboard")
        if board is None:
            board = leaderboard_from_log(JobService(self.ws, self.ctx), name)
        return AutoMLJob(job=job, problem_type=out.get("problem_type"), metric=out.get("metric"), best=out.get("best"),
                         model=out.get("model"), leaderboard=board)

    def report(self, *, name: str, html: bool = False) -> AutoMLReport:
        """The report of a finished AutoML job (JSON; the HTML page too with ``html``).

        Raises:
            NotFound: no AutoML job has that name.
            Conflict: the job has not completed, so it has no report.
        """
        job = self._job(name)
        key = self._report_key(job)
        report = orjson.loads(self.ws.store.read_bytes(key + "report.json"))
        page = self.ws.store.read_bytes(key + "report.html").decode() if html else None
        return AutoMLReport(job=name, report=report, html=page)

    def script(self, *, name: str, candidate: str) -> CandidateScript:
        """Candidate ``candidate`` of a finished job as a runnable script that refits it.

        Raises:
            NotFound: no such job, or no evaluated candidate of that name.
            Conflict: the job has not completed.
        """
        job = self._job(name)  # authorizes (viewer) before anything else is looked at
        check_name(candidate, kind="candidate")
        key = self._report_key(job)
        scripts = orjson.loads(self.ws.store.read_bytes(key + "report.json")).get("scripts", {})
        if candidate not in scripts:
            raise NotFound(f"job {name} has no script for candidate {candidate!r}; its candidates: {', '.join(sorted(scripts)) or 'none'}")
        text = self.ws.store.read_bytes(key + scripts[candidate]).decode()
        return CandidateScript(job=name, candidate=candidate, script=text)

    def _report_key(self, job: Job) -> str:
        key = (job.outputs or {}).get("report")
        if job.state != "Completed" or not key:
            raise Conflict(f"AutoML job {job.name} is {job.state}: a report exists once it has completed"
                           + (f" ({job.failure_reason})" if job.failure_reason else ""))
        return str(key)


def leaderboard_from_log(jobs: JobService, name: str) -> list[dict[str, Any]]:
    """The candidates a running job has evaluated so far, from its ``AUTOML {json}`` log lines."""
    from kiln.automl._engine import LINE_PREFIX

    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = jobs.logs(name=name, after=after, limit=5000)
        for line in page.lines:
            if line.startswith(LINE_PREFIX):
                try:
                    rows.append(orjson.loads(line[len(LINE_PREFIX):]))
                except orjson.JSONDecodeError:
                    continue
        if page.done or not page.lines or page.next == after:
            break
        after = page.next
    return rows
