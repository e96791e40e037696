"""SDK: tuning jobs (``client.tuning``), SageMaker Automatic Model Tuning over training jobs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kiln.sdk._base import Namespace
from kiln.sdk.jobs import Jobs
from kiln.sdk.training import training_request
from kiln.training._spec import training_options
from kiln.tuning import _ops as ops
from kiln.tuning._models import TuningJob

__all__ = ["Tuning"]


class Tuning(Namespace):
    """``client.tuning``: start tuning jobs, follow them, read their trials."""

    @training_options(exclude=("code",))
    def create(
        self,
        *,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, Any] | str,
        name: str | None = None,
        base_tuning_job_name: str | None = None,
        objective_type: str = "Maximize",
        strategy: str = "Bayesian",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        early_stopping_type: str = "Off",
        warm_start_parents: Sequence[str] | None = None,
        warm_start_type: str | None = None,
        random_seed: int | None = None,
        source_dir: str | os.PathLike[str] | None = None,
        dependencies: Sequence[str | os.PathLike[str]] = (),
        wait: bool = False,
        logs: bool | Callable[[str], None] = False,
        **training: Any,
    ) -> TuningJob:
        """Start a tuning job over a script (``entry_point`` in ``source_dir``) or a built-in
        ``algorithm``, defined by the options of ``client.training.run``; ``hyperparameter_ranges``
        is SageMaker's ParameterRanges (a dict or its JSON).

        Returns the Pending job (``wait=True``: the job once it has ended, its log streamed with ``logs``).
        """
        if isinstance(hyperparameter_ranges, str):
            from kiln.tuning._ranges import parse_ranges, ranges_json

            hyperparameter_ranges = ranges_json(parse_ranges(hyperparameter_ranges))
        request = training_request(self._t, training, source_dir=source_dir, dependencies=dependencies)
        job: TuningJob = self._call(
            ops.CREATE, objective_metric_name=objective_metric_name, hyperparameter_ranges=dict(hyperparameter_ranges), name=name,
            base_tuning_job_name=base_tuning_job_name, objective_type=objective_type, strategy=strategy, max_jobs=max_jobs,
            max_parallel_jobs=max_parallel_jobs, early_stopping_type=early_stopping_type,
            warm_start_parents=list(warm_start_parents) if warm_start_parents else None, warm_start_type=warm_start_type,
            random_seed=random_seed, **request,
        )
        return self.wait(job.name, logs=logs) if wait else job

    def get(self, name: str) -> TuningJob:
        """A tuning job with its best training job, every trial and the objective over time."""
        return self._call(ops.GET, name=name)  # type: ignore[no-any-return]

    def list(self, *, state: str | None = None, limit: int = 100) -> list[TuningJob]:
        return self._call(ops.LIST, state=state, limit=limit)  # type: ignore[no-any-return]

    def stop(self, name: str) -> TuningJob:
        """Stop a tuning job and its running trials."""
        return self._call(ops.STOP, name=name)  # type: ignore[no-any-return]

    def wait(self, name: str, *, logs: bool | Callable[[str], None] = False, timeout_s: float | None = None) -> TuningJob:
        """Wait until tuning job ``name`` ends (its own log, trial by trial, with ``logs``)."""
        Jobs(self._t).wait(name, logs=logs, timeout_s=timeout_s)
        return self.get(name)
