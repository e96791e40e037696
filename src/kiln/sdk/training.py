"""SDK: training jobs (``client.training``), SageMaker script mode and built-in algorithms."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kiln.jobs._models import Job
from kiln.sdk._base import Namespace
from kiln.sdk.jobs import Jobs, upload_source
from kiln.training import _ops as ops

__all__ = ["Training"]


class Training(Namespace):
    """``client.training``: start training jobs and follow them."""

    def run(
        self,
        *,
        entry_point: str | None = None,
        source_dir: str | os.PathLike[str] | None = None,
        dependencies: Sequence[str | os.PathLike[str]] = (),
        algorithm: str | None = None,
        target: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        channels: Mapping[str, str] | None = None,
        metric_definitions: Sequence[Mapping[str, str]] | None = None,
        instance_count: int = 1,
        instance_type: str = "local",
        framework: str | None = None,
        framework_version: str | None = None,
        model_name: str | None = None,
        environment: Mapping[str, str] | None = None,
        name: str | None = None,
        base_job_name: str | None = None,
        max_run_s: float | None = None,
        max_retries: int = 0,
        experiment: str | None = None,
        wait: bool = True,
        logs: bool | Callable[[str], None] = True,
    ) -> Job:
        """Train with a script (``entry_point`` in ``source_dir``, SageMaker script mode) or a
        built-in ``algorithm``, on ``channels`` (``{"train": "dataset@v or path"}``).

        Waits and streams the log by default (``wait=False`` returns the Pending job). The
        job's ``model/`` is registered as a version of ``model_name`` (``job.outputs["model"]``).
        """
        code = None
        entry = entry_point
        if entry_point is not None:
            code, entry = upload_source(self._t, entry_point=entry_point, source_dir=source_dir, dependencies=dependencies)
        job: Job = self._call(
            ops.CREATE, name=name, base_job_name=base_job_name, code=code, entry_point=entry, algorithm=algorithm, target=target,
            hyperparameters=dict(hyperparameters or {}), channels=dict(channels or {}),
            metric_definitions=[dict(d) for d in metric_definitions] if metric_definitions else None,
            instance_count=instance_count, instance_type=instance_type, framework=framework, framework_version=framework_version,
            model_name=model_name, environment=dict(environment or {}), max_run_s=max_run_s, max_retries=max_retries, experiment=experiment,
        )
        if not wait:
            return job
        return Jobs(self._t).wait(job.name, logs=logs)
