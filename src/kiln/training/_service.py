"""Creating training jobs (SageMaker script mode and built-in algorithms): the request is
checked here, before anything runs, so a bad one is refused with a 4xx and leaves no job."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.jobs._code import code_key
from kiln.jobs._inputs import resolve_source
from kiln.jobs._models import Job
from kiln.jobs._processing_service import check_environment, check_relative
from kiln.jobs._service import JobService
from kiln.training._contract import check_channel, check_hyperparameters, metric_matcher
from kiln.training._spec import training_options

__all__ = ["ALGORITHMS", "TrainingService"]

ALGORITHMS = ("xgboost", "lightgbm", "linear-learner", "random-forest", "kmeans", "knn")
MAX_INSTANCES = 64
DATA_PARALLEL = ("xgboost", "lightgbm")


class TrainingService:
    """Training jobs."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    @training_options()
    def create(self, *, name: str | None = None, base_job_name: str | None = None, **training: Any) -> Job:
        """Start a training job: a script (``entry_point`` in the uploaded ``code``, SageMaker
        script mode) or a built-in ``algorithm``, with named channels (datasets or files).

        Takes the options of :class:`~kiln.training._spec.TrainingOptions` as keyword arguments.
        Its ``model/`` folder is registered as a version of ``model_name`` (default: the
        job's base name) when it succeeds.

        Raises:
            InvalidArgument: neither or both of entry_point and algorithm, a bad name,
                hyperparameter, channel, metric definition or variable.
            NotFound: a channel's dataset or file does not exist.
        """
        self.ctx.require("editor")
        JobService(self.ws, self.ctx).executor.warm()  # the runner's parent warms up while the request is checked
        spec, base = self.check_spec(base_job_name=base_job_name, **training)
        return JobService(self.ws, self.ctx).submit(
            kind="training", spec=spec, name=name, base_name=base, time_limit_s=training["max_run_s"],
            max_attempts=int(training["max_retries"]) + 1, cpus=1.0,
        )

    def check_spec(
        self,
        *,
        code: str | None,
        entry_point: str | None,
        algorithm: str | None,
        target: str | None,
        hyperparameters: Mapping[str, Any] | None,
        channels: Mapping[str, str] | None,
        metric_definitions: Sequence[Mapping[str, str]] | None,
        instance_count: int,
        instance_type: str,
        framework: str | None,
        framework_version: str | None,
        model_name: str | None,
        environment: Mapping[str, Any] | None,
        experiment: str | None,
        base_job_name: str | None,
        max_run_s: float | None = None,
        max_retries: int = 0,
    ) -> tuple[dict[str, Any], str]:
        """A training job's spec and base name, checked as :meth:`create` checks them (tuning
        jobs check their training job's definition once, then submit one per trial). Takes
        every training option; ``max_run_s`` and ``max_retries`` say how a job runs, and the
        caller passes them to the submission, not the spec.

        Raises:
            InvalidArgument, NotFound: as :meth:`create`.
        """
        if bool(entry_point) == bool(algorithm):
            raise InvalidArgument("a training job runs a script (entry_point) or a built-in algorithm; give exactly one")
        if algorithm:
            if algorithm not in ALGORITHMS:
                raise InvalidArgument(f"unknown algorithm {algorithm!r}; built-in algorithms: {', '.join(ALGORITHMS)}")
            if code:
                raise InvalidArgument("a built-in algorithm takes no code")
        else:
            check_relative(str(entry_point), what="entry_point")
            if not code:
                raise InvalidArgument("entry_point needs its code: pass source_dir (the SDK and CLI upload it)")
            if not str(entry_point).endswith((".py", ".sh")):
                raise InvalidArgument(f"entry_point {entry_point!r} must be a Python (.py) or shell (.sh) script")
        if code is not None and not self.ws.store.exists(code_key(code)):
            raise InvalidArgument(f"no code archive {code[:12]}…; upload the source first")
        hps = check_hyperparameters(hyperparameters or {})
        if target is not None:
            if not algorithm:
                raise InvalidArgument("target names the label column of a built-in algorithm; a script reads its own data")
            hps = {**hps, "target": target}
        if channels is not None and not isinstance(channels, Mapping):
            raise InvalidArgument('channels is an object of name: source, e.g. {"train": "cancer@1"}')
        chans = {check_channel(c): resolve_source(self.ws, self.ctx, src, what=f"channel {c}").as_dict() for c, src in (channels or {}).items()}
        if algorithm and "train" not in chans:
            raise InvalidArgument(f"the built-in {algorithm} reads channel 'train' (and 'validation' if given); got {sorted(chans)}")
        if not isinstance(instance_count, int) or not 1 <= instance_count <= MAX_INSTANCES:
            raise InvalidArgument(f"instance_count must be between 1 and {MAX_INSTANCES}")
        if algorithm and instance_count > 1 and algorithm not in DATA_PARALLEL:
            raise InvalidArgument(
                f"the built-in {algorithm} trains on one host; use instance_count 1 "
                f"({' and '.join(DATA_PARALLEL)} train data-parallel across hosts)"
            )
        executor = JobService(self.ws, self.ctx).executor
        if not executor.capabilities.multi_host and instance_count > 8:
            raise InvalidArgument("the local executor runs at most 8 hosts of one job on this machine; use KILN_EXECUTOR=ray for more")
        defs = [dict(d) for d in metric_definitions or []]
        metric_matcher(defs)  # refuses a bad definition now, naming it
        if algorithm and not metric_definitions:
            defs = _builtin_metrics(algorithm)
        for label, value in (("model_name", model_name), ("experiment", experiment), ("base_job_name", base_job_name)):
            if value is not None:
                check_name(value, kind=label.replace("_", " "))
        base = base_job_name or (algorithm or re.sub(r"[^a-z0-9_-]", "-", str(entry_point).rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()).strip("-_") or "training")
        spec = {
            "code": code, "entry_point": entry_point, "algorithm": algorithm, "hyperparameters": hps, "channels": chans,
            "metric_definitions": defs, "instance_count": instance_count, "instance_type": str(instance_type or "local")[:64],
            "framework": framework or _framework_of(algorithm), "framework_version": framework_version,
            "model_name": model_name or check_name(base, kind="model"), "environment": check_environment(environment),
            "experiment": experiment or "training-jobs",
        }
        return spec, base


def _framework_of(algorithm: str | None) -> str | None:
    if algorithm in ("xgboost", "lightgbm"):
        return algorithm
    return "sklearn" if algorithm else None


def _builtin_metrics(algorithm: str) -> list[dict[str, str]]:
    try:
        from kiln.training.builtin import metric_definitions
    except ImportError:  # the built-ins' module is optional until merged
        return []
    return list(metric_definitions(algorithm))
