"""SDK: functions (``client.functions``), AWS Lambda's equivalent."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from kiln.jobs import _ops as ops
from kiln.jobs._models import Function, Job
from kiln.sdk._base import Namespace
from kiln.sdk.jobs import Jobs, upload_folder

__all__ = ["Functions"]


class Functions(Namespace):
    """``client.functions``: register Python handlers, call them with JSON, map them over datasets."""

    def create(
        self,
        name: str,
        *,
        handler: str,
        code: str | os.PathLike[str],
        timeout_s: float = 30.0,
        memory_mb: int = 1024,
        environment: Mapping[str, str] | None = None,
        description: str = "",
    ) -> Function:
        """Create function ``name``: ``handler`` (``module:function``) in the folder ``code``,
        which is packed and uploaded. The handler is called ``handler(event, context)`` as
        on AWS Lambda (or ``handler(event)`` when it takes one parameter)."""
        sha = upload_folder(self._t, code)
        return self._call(  # type: ignore[no-any-return]
            ops.FN_CREATE, name=name, handler=handler, code=sha, timeout_s=timeout_s, memory_mb=memory_mb,
            environment=dict(environment or {}), description=description,
        )

    def update(
        self,
        name: str,
        *,
        handler: str | None = None,
        code: str | os.PathLike[str] | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        environment: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> Function:
        """Change a function: new code (a folder), handler, limits or environment make a new
        version; only what is given changes."""
        sha = upload_folder(self._t, code) if code is not None else None
        return self._call(  # type: ignore[no-any-return]
            ops.FN_UPDATE, name=name, handler=handler, code=sha, timeout_s=timeout_s, memory_mb=memory_mb,
            environment=dict(environment) if environment is not None else None, description=description,
        )

    def get(self, name: str) -> Function:
        """A function at its latest version (``name``) or one version (``name@2``)."""
        return self._call(ops.FN_GET, name=name)  # type: ignore[no-any-return]

    def list(self) -> list[Function]:
        return self._call(ops.FN_LIST)  # type: ignore[no-any-return]

    def delete(self, name: str) -> list[int]:
        """Delete a function and every version; returns the version numbers."""
        return self._call(ops.FN_DELETE, name=name)  # type: ignore[no-any-return]

    def invoke(self, name: str, payload: Any = None) -> Any:
        """Call a function with a JSON event and return its JSON result.

        Raises:
            FunctionError: the handler raised (``details["traceback"]`` holds its traceback),
                crashed, or ran past its time limit.
        """
        return self._call(ops.FN_INVOKE, name=name, payload=payload)

    def map(
        self,
        name: str,
        *,
        dataset: str,
        output: str,
        batch_size: int = 1000,
        job_name: str | None = None,
        max_run_s: float | None = None,
        wait: bool = True,
        logs: bool | Callable[[str], None] = False,
    ) -> Job:
        """Map a function over the rows of ``dataset`` (``name@version``) into a new version
        of dataset ``output``, as a job; waits for it unless ``wait=False``."""
        job: Job = self._call(
            ops.FN_MAP, name=name, dataset=dataset, output_dataset=output, batch_size=batch_size, job_name=job_name, max_run_s=max_run_s,
        )
        if not wait:
            return job
        return Jobs(self._t).wait(job.name, logs=logs)
