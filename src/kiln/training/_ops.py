"""Training's operations, declared once (see :mod:`kiln.core.ops`). The source travels
first through the jobs' code upload (``POST /v1/jobs/code``); a job names it by hash."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.jobs._models import Job
from kiln.training._spec import TRAINING_OPTIONS

ALL = declare(
    Operation(
        name="training.create", method="POST", path="/v1/training-jobs", role="editor",
        service="kiln.training._service:TrainingService", call="create", response=Job, status=201, kind="job",
        body=("name", "base_job_name", *TRAINING_OPTIONS),
    ),
)
(CREATE,) = ALL
