"""Batch transform's operations, declared once (see :mod:`kiln.core.ops`). A transform is a
job: it is followed, listed and stopped through the jobs' operations."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.jobs._models import Job

ALL = declare(
    Operation(
        name="transform.create", method="POST", path="/v1/transform-jobs", role="editor",
        service="kiln.serving._transform_service:TransformService", call="create", response=Job, status=201, kind="job",
        body=(
            "model", "input", "output_location", "content_type", "accept", "split_type", "strategy", "max_payload_mb", "assemble_with",
            "input_filter", "output_filter", "join_source", "workers", "environment", "name", "max_run_s", "max_retries",
        ),
    ),
)
(CREATE,) = ALL
