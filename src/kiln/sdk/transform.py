"""SDK: batch transform (``client.transform``), SageMaker Batch Transform over Kiln's jobs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from kiln.core.progress import Progress
from kiln.jobs._models import Job
from kiln.sdk._base import Namespace
from kiln.sdk.jobs import Jobs
from kiln.serving import _transform_ops as ops

__all__ = ["Transform"]

_PROGRESS = re.compile(r"\[kiln\] progress (\d+)/(\d+) chunks")


class Transform(Namespace):
    """``client.transform(model, input=..., output=...)``: run a batch transform job."""

    def __call__(
        self,
        model: str,
        *,
        input: str,
        output: str,
        content_type: str | None = None,
        accept: str | None = None,
        split_type: str = "None",
        strategy: str = "MultiRecord",
        max_payload_mb: float = 6.0,
        assemble_with: str = "None",
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str = "None",
        workers: int = 1,
        environment: Mapping[str, str] | None = None,
        name: str | None = None,
        max_run_s: float | None = None,
        max_retries: int = 0,
        wait: bool = True,
        logs: bool | Callable[[str], None] = False,
    ) -> Job:
        """Predict every record of ``input`` (a dataset ``name@v``, a file or folder, or
        ``s3://``) with model version ``model``; the answers go to ``<file>.out`` under
        ``output`` (a folder or ``s3://`` prefix) or into a new version of dataset ``output``.
        Options are SageMaker Batch Transform's (see :class:`kiln.serving.TransformService`).
        With ``wait``, follows the job (progress for the CLI's bar) and returns it ended."""
        job: Job = self._call(
            ops.CREATE, model=model, input=input, output_location=output, content_type=content_type, accept=accept, split_type=split_type,
            strategy=strategy, max_payload_mb=max_payload_mb, assemble_with=assemble_with, input_filter=input_filter,
            output_filter=output_filter, join_source=join_source, workers=workers, environment=dict(environment or {}),
            name=name, max_run_s=max_run_s, max_retries=max_retries,
        )
        if not wait:
            return job
        return self.wait(job.name, logs=logs)

    def wait(self, name: str, *, logs: bool | Callable[[str], None] = False, timeout_s: float | None = None) -> Job:
        """Wait for transform ``name`` to end, reporting its chunks done as progress."""
        progress = Progress(1.0)
        emit: Callable[[str], None] | None = (lambda line: print(line, flush=True)) if logs is True else (logs or None)  # type: ignore[assignment]

        def on_line(line: str) -> None:
            if m := _PROGRESS.match(line):
                done, total = int(m.group(1)), int(m.group(2))
                if total:
                    progress.update(done / total)
            if emit is not None:
                emit(line)

        job = Jobs(self._t).wait(name, logs=on_line, timeout_s=timeout_s)
        if job.state == "Completed":
            progress.finish()
        return job
