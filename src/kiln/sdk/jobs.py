"""SDK: jobs of every kind (``client.jobs``) and processing jobs (``client.processing``)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.jobs import _ops as ops
from kiln.jobs._models import CodeArchive, Job, JobLogs
from kiln.sdk._base import Namespace, Transport

__all__ = ["Jobs", "Processing", "upload_folder", "upload_source"]


def upload_source(
    t: Transport, *, entry_point: str, source_dir: str | os.PathLike[str] | None = None, dependencies: Sequence[str | os.PathLike[str]] = (),
) -> tuple[str, str]:
    """Pack ``source_dir`` (or the lone ``entry_point`` file) with ``dependencies`` and store
    it; returns (code sha256, the entry point's path inside the archive)."""
    from kiln.training._contract import pack_source

    src = Path(source_dir) if source_dir is not None else None
    entry = entry_point
    if src is None:
        path = Path(entry_point)
        if not path.is_file():
            raise InvalidArgument(f"entry point {entry_point!r} is not a file; give source_dir, or the script's path")
        src, entry = None, entry_point
    with tempfile.TemporaryDirectory(prefix="kiln-src-") as tmp:
        archive = Path(tmp) / "code.tar.gz"
        pack_source(source_dir=src, entry_point=entry, dependencies=[Path(d) for d in dependencies], out=archive)
        if src is None:
            entry = Path(entry_point).name
        return _store(t, archive).sha256, entry


def upload_folder(t: Transport, folder: str | os.PathLike[str]) -> str:
    """Pack a whole folder of code (a function's) and store it; returns its sha256."""
    from kiln.training._contract import pack_source

    with tempfile.TemporaryDirectory(prefix="kiln-src-") as tmp:
        archive = Path(tmp) / "code.tar.gz"
        if not Path(folder).is_dir():
            raise InvalidArgument(f"code folder {str(folder)!r} is not a folder")
        pack_source(source_dir=Path(folder), entry_point=None, out=archive)
        return _store(t, archive).sha256


def _store(t: Transport, archive: Path) -> CodeArchive:
    if t.is_local:
        from kiln.jobs._code import CodeService

        return CodeService(t.workspace, t.ctx).store(archive)  # type: ignore[union-attr]
    with open(archive, "rb") as body:
        data = t.request("POST", "/v1/jobs/code", content=body.read(), headers={"content-type": "application/gzip"})  # type: ignore[union-attr]
    return CodeArchive.model_validate(data)


class Jobs(Namespace):
    """``client.jobs``: every job, whatever its kind: list, describe, logs, stop, wait."""

    def list(self, *, kind: str | None = None, state: str | None = None, limit: int = 100) -> list[Job]:
        return self._call(ops.LIST, kind=kind, state=state, limit=limit)  # type: ignore[no-any-return]

    def get(self, name: str) -> Job:
        return self._call(ops.GET, name=name)  # type: ignore[no-any-return]

    def logs(self, name: str, *, after: int = 0, limit: int = 1000) -> JobLogs:
        return self._call(ops.LOGS, name=name, after=after, limit=limit)  # type: ignore[no-any-return]

    def stop(self, name: str) -> Job:
        return self._call(ops.STOP, name=name)  # type: ignore[no-any-return]

    def wait(
        self, name: str, *, logs: bool | Callable[[str], None] = False, timeout_s: float | None = None, poll_s: float = 0.25,
    ) -> Job:
        """Wait until job ``name`` ends; with ``logs``, print (or pass on) its log lines as they come.

        Raises:
            TimeoutError: ``timeout_s`` passed first (the job goes on).
        """
        emit: Callable[[str], None] | None = (lambda line: print(line, flush=True)) if logs is True else (logs or None)  # type: ignore[assignment]
        after = 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        wait = min(0.02, poll_s)  # short jobs end in a fraction of a second: look often at first
        while True:
            if emit is not None:
                page = self.logs(name, after=after, limit=5000)
                for line in page.lines:
                    emit(line)
                after = page.next
                if page.done:
                    return self.get(name)
                if page.lines and len(page.lines) == 5000:
                    continue
            else:
                job = self.get(name)
                if job.done:
                    return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {name} has not ended after {timeout_s:g} s; it goes on (`kiln jobs stop {name}` ends it)")
            time.sleep(wait)
            wait = min(wait * 1.5, poll_s)


class Processing(Namespace):
    """``client.processing``: processing jobs (SageMaker Processing)."""

    def run(
        self,
        *,
        code: str | os.PathLike[str] | None = None,
        source_dir: str | os.PathLike[str] | None = None,
        command: Sequence[str] | None = None,
        arguments: Sequence[Any] = (),
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        name: str | None = None,
        max_run_s: float | None = None,
        max_retries: int = 0,
        experiment: str | None = None,
        wait: bool = True,
        logs: bool | Callable[[str], None] = True,
    ) -> Job:
        """Run ``code`` (a script; with ``source_dir``, its path inside it) or ``command`` with
        named ``inputs`` (datasets ``name@v`` or files) as files under
        ``processing/input/<name>/`` and ``outputs`` (``{name: dataset}``) registered as new
        dataset versions. The script finds its folders in ``KILN_INPUT_<NAME>`` and
        ``KILN_OUTPUT_<NAME>``; a command without ``code`` runs with ``python`` when none is given."""
        sha = entry = None
        if code is not None:
            sha, entry = upload_source(self._t, entry_point=str(code), source_dir=source_dir)
            command = list(command) if command else [sys.executable if self._local else "python3"]
        job: Job = self._call(
            ops.PROCESSING_CREATE, name=name, code=sha, entry_point=entry, command=list(command) if command else None,
            arguments=[str(a) for a in arguments], inputs=dict(inputs or {}), outputs=dict(outputs or {}),
            environment=dict(environment or {}), max_run_s=max_run_s, max_retries=max_retries, experiment=experiment,
        )
        if not wait:
            return job
        return Jobs(self._t).wait(job.name, logs=logs)
