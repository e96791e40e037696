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
import time
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

# What a launcher runner (a tuning job's driver) imports besides the runner, in a thread from
# its start, so that it overlaps the runner opening the workspace and claiming the job (not
# preloaded by the zygote itself: every job's start would wait for Optuna).
_LAUNCHER_IMPORTS = ("kiln.tuning._driver", "optuna")


class Zygote:
    """The submitting side: starts the zygote on first use and asks it for runners."""

    def __init__(self) -> None:
        self._proc: Any = None  # a Popen, or an _Inherited zygote
        self._lock = threading.Lock()

    def launch(self, job: str, env: Mapping[str, str], *, launcher: bool = False) -> int:
        """Fork a runner for ``job`` with exactly ``env`` as its environment; returns its pid.
        With ``launcher`` (a runner that starts jobs itself: a tuning job's driver), the runner
        also gets a zygote of its own, forked warm from this one, for its jobs' runners.

        Raises:
            OSError: the zygote could not start or answer (the caller falls back on a fresh process).
        """
        with self._lock:
            for attempt in (1, 2):
                proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
                try:
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(orjson.dumps({"job": job, "env": dict(env), "launcher": launcher}) + b"\n")
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

    def _start(self) -> Any:
        global _inherited
        inherited, _inherited = _inherited, None
        if inherited is not None and inherited.pid_owner == os.getpid():
            self._proc = inherited  # this runner's own zygote, forked warm by the one that forked us
            return inherited
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


class _Inherited:
    """A runner's own zygote (forked by the zygote that forked the runner), as ``Popen`` is used
    above: its request and answer pipes, and whether it still runs."""

    def __init__(self, pid: int, requests: int, answers: int) -> None:
        self.pid, self.pid_owner = pid, os.getpid()
        self.stdin = os.fdopen(requests, "wb")
        self.stdout = os.fdopen(answers, "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                done, status = self.pid, 0
            if done:
                self.returncode = os.waitstatus_to_exitcode(status) if status else 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("job zygote", timeout or 0)
            time.sleep(0.01)
        return self.returncode or 0

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Set in a launcher runner (see Zygote.launch): the zygote forked for it, claimed by its first Zygote.
_inherited: _Inherited | None = None


def _serve() -> None:
    import importlib

    for module in _WARM:
        try:
            importlib.import_module(module)
        except ImportError:  # an optional part missing here is imported (and reported) by the runner
            pass
    workers = _worker_zygote()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # runners are reaped by the kernel, never zombies here
    _loop(0, os.dup(1), workers)


def _loop(requests: int, answers: int, workers: Any) -> None:
    """Fork a runner per request line read from ``requests``; answer its pid on ``answers``."""
    out = os.fdopen(answers, "wb")
    for line in os.fdopen(requests, "rb", closefd=False):
        conns: list[Any] = []
        try:
            request: dict[str, Any] = orjson.loads(line)
            if workers is not None:
                try:  # each runner gets its own connection to the warm worker zygote (a launcher's zygote one more)
                    for _ in range(2 if request.get("launcher") else 1):
                        conns.append(workers.connect())
                except OSError:
                    pass
            pid = os.fork()
        except (ValueError, OSError) as exc:
            for conn in conns:
                conn.close()
            out.write(orjson.dumps({"error": str(exc)}) + b"\n")
            out.flush()
            continue
        if pid == 0:
            for fd in (requests, answers):  # the runner never talks to its zygote
                if fd > 2:
                    os.close(fd)
            _runner_child(request, conns, workers)
        for conn in conns:
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


def _runner_child(request: dict[str, Any], conns: list[Any], workers: Any) -> None:
    code = 1
    try:
        if workers is not None and conns:
            workers.adopt(conns[0])
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        if request.get("launcher"):
            _fork_launcher(conns[1] if len(conns) > 1 else None, workers)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the runner waits for its own children
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("launcher"):  # after the last fork: from here on the runner may hold threads
            threading.Thread(target=_import_quietly, args=(_LAUNCHER_IMPORTS,), name="kiln-launcher-imports", daemon=True).start()
        from kiln.jobs._runner import main

        code = 0 if main(str(request["job"])) in ("Completed", "") else 1
    except BaseException:  # noqa: BLE001 - the runner records its own failures; nothing may escape the fork
        code = 1
    finally:
        os._exit(code)


def _import_quietly(modules: tuple[str, ...]) -> None:
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the program imports it again, and reports what fails
            return


def _fork_launcher(conn: Any, workers: Any) -> None:
    """In a launcher runner, still single-threaded and with the zygote's imports: fork a zygote
    for the jobs it will start (its runners then start warm, as this runner did, and share the
    warm worker zygote). It serves this runner's pipes and ends when the runner does."""
    global _inherited
    requests_r, requests_w = os.pipe()
    answers_r, answers_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (requests_r, requests_w, answers_r, answers_w):
            os.close(fd)
        return
    if pid == 0:
        code = 0
        try:
            os.close(requests_w)
            os.close(answers_r)
            os.setsid()  # a session of its own, as the zygote it was forked from
            if conn is not None and workers is not None:
                workers.adopt(conn)
            _loop(requests_r, answers_w, workers if conn is not None else None)
        except BaseException:  # noqa: BLE001 - nothing may escape the fork
            code = 1
        finally:
            os._exit(code)
    os.close(requests_r)
    os.close(answers_w)
    if conn is not None:
        conn.close()
    # Recorded where the runner's executor looks: this code runs as __main__ (python -m), the
    # executor imports kiln.jobs._zygote.
    import importlib

    importlib.import_module("kiln.jobs._zygote")._inherited = _Inherited(pid, requests_w, answers_r)


if __name__ == "__main__":
    _serve()
