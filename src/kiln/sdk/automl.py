"""SDK: AutoML (``client.automl``), SageMaker Autopilot over Kiln's jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from kiln.automl import _ops as ops
from kiln.automl._models import AutoMLJob, AutoMLReport, CandidateScript
from kiln.jobs._models import Job
from kiln.sdk._base import Namespace
from kiln.sdk.jobs import Jobs

__all__ = ["AutoML", "LINE_PREFIX"]

LINE_PREFIX = "AUTOML "  # the engine's leaderboard lines in the job's log


class AutoML(Namespace):
    """``client.automl(dataset, target=...)``: run an AutoML job; list, describe and read its report."""

    def __call__(
        self,
        dataset: str,
        *,
        target: str,
        problem_type: str | None = None,
        metric: str | None = None,
        time_budget_s: float = 600.0,
        mode: str | None = None,
        model_name: str | None = None,
        name: str | None = None,
        n_jobs: int | None = None,
        seed: int = 0,
        max_candidates: int | None = None,
        wait: bool = True,
        on_candidate: Callable[[dict[str, Any]], None] | None = None,
        logs: bool | Callable[[str], None] = False,
    ) -> Job:
        """Search models for ``time_budget_s`` seconds to predict column ``target`` of
        ``dataset`` (``name@version``); the best (an ensemble, or with ``mode="hpo"`` the best
        tuned candidate) is registered as a version of ``model_name`` (``job.outputs["model"]``).

        With ``wait``, follows the job: ``on_candidate`` gets each evaluated candidate's
        leaderboard row as it comes, ``logs`` the log lines."""
        job: Job = self._call(
            ops.CREATE, dataset=dataset, target=target, problem_type=problem_type, metric=metric, time_budget_s=time_budget_s,
            mode=mode, model_name=model_name, name=name, n_jobs=n_jobs, seed=seed, max_candidates=max_candidates,
        )
        if not wait:
            return job
        return self.wait(job.name, on_candidate=on_candidate, logs=logs)

    def wait(self, name: str, *, on_candidate: Callable[[dict[str, Any]], None] | None = None,
             logs: bool | Callable[[str], None] = False, timeout_s: float | None = None) -> Job:
        """Wait for AutoML job ``name`` to end, passing each candidate's row to ``on_candidate``."""
        emit: Callable[[str], None] | None = (lambda line: print(line, flush=True)) if logs is True else (logs or None)  # type: ignore[assignment]

        def on_line(line: str) -> None:
            if line.startswith(LINE_PREFIX) and on_candidate is not None:
                try:
                    on_candidate(orjson.loads(line[len(LINE_PREFIX):]))
                except orjson.JSONDecodeError:
                    pass
            if emit is not None:
                emit(line)

        return Jobs(self._t).wait(name, logs=on_line, timeout_s=timeout_s)

    def list(self, *, limit: int = 100) -> list[Job]:
        """AutoML jobs, newest first."""
        return self._call(ops.LIST, limit=limit)  # type: ignore[no-any-return]

    def describe(self, name: str) -> AutoMLJob:
        """An AutoML job with its leaderboard (growing while it runs) and best model."""
        return self._call(ops.DESCRIBE, name=name)  # type: ignore[no-any-return]

    def report(self, name: str, *, html: bool = False) -> AutoMLReport:
        """The finished job's report (``.report``, a dict; ``.html`` with ``html=True``)."""
        return self._call(ops.REPORT, name=name, html=html)  # type: ignore[no-any-return]

    def script(self, name: str, candidate: str) -> CandidateScript:
        """Candidate ``candidate`` as a runnable Python script that refits it and predicts."""
        return self._call(ops.SCRIPT, name=name, candidate=candidate)  # type: ignore[no-any-return]
