"""SDK: training jobs (``client.training``), SageMaker script mode and built-in algorithms."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kiln.jobs._models import Job
from kiln.sdk._base import Namespace
from kiln.sdk.jobs import Jobs, upload_source
from kiln.training import _ops as ops
from kiln.training._spec import training_options

__all__ = ["Training", "training_request"]


def training_request(
    t: Any, training: Mapping[str, Any], *, source_dir: str | os.PathLike[str] | None, dependencies: Sequence[str | os.PathLike[str]],
) -> dict[str, Any]:
    """The training options as ``training.create`` and ``tuning.create`` take them: a script's
    source uploaded (its ``code`` hash), mappings and lists copied as plain JSON values."""
    out = dict(training)
    out["code"] = None
    if out["entry_point"] is not None:
        out["code"], out["entry_point"] = upload_source(t, entry_point=out["entry_point"], source_dir=source_dir, dependencies=dependencies)
    defs = out["metric_definitions"]
    out.update(hyperparameters=dict(out["hyperparameters"] or {}), channels=dict(out["channels"] or {}),
               metric_definitions=[dict(d) for d in defs] if defs else None, environment=dict(out["environment"] or {}))
    return out


class Training(Namespace):
    """``client.training``: start training jobs and follow them."""

    @training_options(exclude=("code",))
    def run(
        self,
        *,
        source_dir: str | os.PathLike[str] | None = None,
        dependencies: Sequence[str | os.PathLike[str]] = (),
        name: str | None = None,
        base_job_name: str | None = None,
        wait: bool = True,
        logs: bool | Callable[[str], None] = True,
        **training: Any,
    ) -> Job:
        """Train with a script (``entry_point`` in ``source_dir``, SageMaker script mode) or a
        built-in ``algorithm``, on ``channels`` (``{"train": "dataset@v or path"}``); the other
        options are those of :class:`~kiln.training._spec.TrainingOptions`.

        Waits and streams the log by default (``wait=False`` returns the Pending job). The
        job's ``model/`` is registered as a version of ``model_name`` (``job.outputs["model"]``).
        """
        request = training_request(self._t, training, source_dir=source_dir, dependencies=dependencies)
        job: Job = self._call(ops.CREATE, name=name, base_job_name=base_job_name, **request)
        if not wait:
            return job
        return Jobs(self._t).wait(job.name, logs=logs)
