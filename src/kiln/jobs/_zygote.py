"""A warm parent for job runners: one small process per submitting process that has
imported what a runner needs (SQLAlchemy, the runner, the training program) and forks a
runner per job, so a job starts in milliseconds instead of a fresh interpreter's second.

The zygote is single-threaded and never opens the workspace, so forking it is safe; each
runner it forks starts a session of its own, closes the zygote's pipes and opens the
workspace itself, and outlives the zygote (which ends with the process that started it).

It also starts the model workers' zygote (:mod:`kiln.core._worker_zygote`, with a clean
environment) and hands each runner its own connection to it: a batch transform's workers
fork from libraries imported once, not once per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["Zygote"]

# What a runner imports on every job; loaded once, before any fork.
_WARM = (
    "sqlalchemy", "sqlalchemy.dialects.sqlite", "kiln.core.workspace", "kiln.jobs._runner", "kiln.jobs._service",
    "kiln.jobs._processing", "kiln.training._program", "kiln.training._contract", "kiln.training._hosts",
    "kiln.tracking._runs", "kiln.registry._service",
)


class Zygote:
    """The submitting side: starts the zygote on first use and asks it for runners."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def launch(self, job: str, env: Mapping[str, str]) -> int:
        """Fork a runner for ``job`` with exactly ``env`` as its environment; returns its pid.

        Raises:
            OSError: the zygote could not start or answer (the caller falls back on a fresh process).
        """
        with self._lock:
            for attempt in (1, 2):
                proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
                try:
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(orjson.dumps({"job": job, "env": dict(env)}) + b"\n")
                    proc.stdin.flush()
                    answer = orjson.loads(proc.stdout.readline() or b"{}")
                except (OSError, ValueError):
                    answer = {}
                if "pid" in answer:
                    return int(answer["pid"])
                self.close()
                if attempt == 2:
                    raise OSError(f"the job zygote did not start a runner: {answer.get('error', 'no answer')}")
        raise AssertionError("unreachable")

    def warm(self) -> None:
        """Start the zygote now, so it imports while the caller checks and records its job."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "kiln.jobs._zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _serve() -> None:
    import importlib

    for module in _WARM:
        try:
            importlib.import_module(module)
        except ImportError:  # an optional part missing here is imported (and reported) by the runner
            pass
    workers = _worker_zygote()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # runners are reaped by the kernel, never zombies here
    out = os.fdopen(os.dup(1), "wb")
    for line in sys.stdin.buffer:
        conn = None
        try:
            request: dict[str, Any] = orjson.loads(line)
            if workers is not None:
                try:  # each runner gets its own connection to the warm worker zygote
                    conn = workers.connect()
                except OSError:
                    conn = None
            pid = os.fork()
        except (ValueError, OSError) as exc:
            if conn is not None:
                conn.close()
            out.write(orjson.dumps({"error": str(exc)}) + b"\n")
            out.flush()
            continue
        if pid == 0:
            if conn is not None and workers is not None:
                workers.adopt(conn)
            _runner_child(request)
        if conn is not None:
            conn.close()
        out.write(orjson.dumps({"pid": pid}) + b"\n")
        out.flush()


def _worker_zygote() -> Any:
    """The model workers' zygote, started now so it preloads while no job runs (a batch
    transform's workers then fork warm from the first job on); None when warm workers are off
    or it cannot start. It is started with a clean environment and outlives no runner that uses it."""
    from kiln.core import _worker_zygote as workers

    if not workers.enabled():
        return None
    try:
        workers.warm()
    except OSError:
        return None
    return workers


def _runner_child(request: dict[str, Any]) -> None:
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the runner waits for its own children
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.environ.clear()
        os.environ.update(request["env"])
        from kiln.jobs._runner import main

        code = 0 if main(str(request["job"])) in ("Completed", "") else 1
    except BaseException:  # noqa: BLE001 - the runner records its own failures; nothing may escape the fork
        code = 1
    finally:
        os._exit(code)


if __name__ == "__main__":
    _serve()
