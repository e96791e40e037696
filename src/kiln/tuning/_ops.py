"""Tuning's operations, declared once (see :mod:`kiln.core.ops`). A script's source travels
first through the jobs' code upload (``POST /v1/jobs/code``); a tuning job names it by hash."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.training._spec import TRAINING_OPTIONS
from kiln.tuning._models import TuningJob

_SVC = "kiln.tuning._service:TuningService"

ALL = declare(
    Operation(
        name="tuning.create", method="POST", path="/v1/tuning-jobs", role="editor", service=_SVC, call="create",
        response=TuningJob, status=201, kind="tuning job",
        body=(
            "objective_metric_name", "hyperparameter_ranges", "name", "base_tuning_job_name", "objective_type", "strategy",
            "max_jobs", "max_parallel_jobs", "early_stopping_type", "warm_start_parents", "warm_start_type", "random_seed",
            *TRAINING_OPTIONS,  # the training job's options, as training.create takes them
        ),
    ),
    Operation(name="tuning.list", method="GET", path="/v1/tuning-jobs", role="viewer", service=_SVC, call="list",
              response=list[TuningJob], kind="tuning job"),
    Operation(name="tuning.get", method="GET", path="/v1/tuning-jobs/{name}", role="viewer", service=_SVC, call="get",
              response=TuningJob, kind="tuning job"),
    Operation(name="tuning.stop", method="POST", path="/v1/tuning-jobs/{name}/stop", role="editor", service=_SVC, call="stop",
              response=TuningJob, kind="tuning job"),
)
CREATE, LIST, GET, STOP = ALL
