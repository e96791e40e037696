"""Warm workers for functions, in the process that hosts the service (a server, or the
SDK in-process), and the unpacked code they import.

Each function has at most ``functions_concurrency`` calls running at once in this
process, each in a :class:`~kiln.core.worker.Worker` of its own; a call beyond that
waits up to ``functions_queue_s`` for one to end, then is refused with
ResourceExhausted (429). A worker serves one version of one function, keeps its
handler loaded between calls, and is reused by the next call of that version; a
worker idle for ``functions_idle_s`` is stopped. A call that runs past the function's
time limit kills its worker (the next call starts a fresh one); a user exception
leaves it warm.

Code is unpacked once per sha256 under ``KILN_HOME/functions/code/``, its files made
read-only: every worker of every version with that code imports the same folder.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.core.errors import FunctionError, ResourceExhausted
from kiln.core.worker import Worker
from kiln.core.workspace import Workspace

__all__ = ["FunctionPools", "Spec", "code_dir", "pools_for"]

TARGET = "kiln.jobs._function_worker"
# A cold start (importing the handler's module) has a limit of its own, as Lambda's init.
INIT_S = 10.0


@dataclass(frozen=True)
class Spec:
    """What a worker runs: one version of one function, as recorded."""

    name: str
    version: int
    handler: str
    code_sha256: str
    timeout_s: float
    memory_mb: int
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"function {self.name}@{self.version}"

    def args(self, folder: Path) -> dict[str, Any]:
        """What the worker's functions take to load and call the handler."""
        return {
            "code_dir": str(folder), "handler": self.handler, "name": self.name, "version": self.version,
            "memory_mb": self.memory_mb, "timeout_s": self.timeout_s, "environment": dict(self.environment),
        }

    def worker(self, ws: Workspace, folder: Path) -> Worker:
        """A new (not yet started) worker for this version; server paths hidden in its errors."""
        redact = [str(folder), str(folder.resolve()), str(ws.settings.home), sys.prefix, sys.base_prefix, sys.exec_prefix]
        return Worker(timeout_s=self.timeout_s, label=self.label, redact=redact, memory_mb=self.memory_mb, error=FunctionError)


def code_dir(ws: Workspace, sha256: str) -> Path:
    """The folder code archive ``sha256`` is unpacked in, once per machine (read-only)."""
    from filelock import FileLock

    from kiln.jobs._code import code_key, fetch_archive
    from kiln.training._contract import unpack_source

    code_key(sha256)  # a sha256, nothing else, becomes a path
    root = ws.settings.home / "functions" / "code"
    final = root / sha256
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{sha256}.lock")):
        if final.is_dir():
            return final
        tmp = root / f".{sha256}.{uuid.uuid4().hex}"
        try:
            archive = fetch_archive(ws, sha256, root / f"{tmp.name}.tar.gz")
            unpack_source(archive, tmp)
            import compileall

            # Bytecode now (compiling runs nothing), so workers start warm from a read-only folder.
            compileall.compile_dir(str(tmp), quiet=2, workers=1)
            _read_only(tmp)
            os.replace(tmp, final)
        finally:
            (root / f"{tmp.name}.tar.gz").unlink(missing_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _read_only(folder: Path) -> None:
    """Users' code cannot change the files other calls import (as Lambda's read-only
    /var/task); the folders stay writable, so the cache is removed like any folder."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = os.path.join(dirpath, name)
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o222)


@dataclass
class _Function:
    """One function's calls in this process: how many run, and its idle warm workers."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    busy: int = 0
    idle: list[tuple[Spec, Worker, float]] = field(default_factory=list)  # (version, worker, idle since)


class FunctionPools:
    """The warm workers of every function of one workspace, in this process."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.concurrency = max(1, int(ws.settings.functions_concurrency))
        self.queue_s = max(0.0, float(ws.settings.functions_queue_s))
        self.idle_s = max(0.0, float(ws.settings.functions_idle_s))
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- calls --------------------------------------------------------------------------------

    def invoke(self, spec: Spec, payload: bytes) -> bytes:
        """Run the handler of ``spec`` on ``payload`` (JSON) in a warm worker; its JSON result.

        Raises:
            FunctionError: the user's code raised, crashed, ran past its time or returned
                what JSON cannot hold.
            ResourceExhausted: the function's calls stayed all busy for ``functions_queue_s``.
        """
        folder = code_dir(self.ws, spec.code_sha256)
        with self._worker(spec) as worker:
            args = spec.args(folder)
            if not worker.alive:
                worker.call(f"{TARGET}:load", args, timeout_s=max(INIT_S, spec.timeout_s))
            args["request_id"] = str(uuid.uuid4())
            _, blobs = worker.call(f"{TARGET}:invoke", args, [payload])
        return blobs[0]

    @contextmanager
    def _worker(self, spec: Spec) -> Iterator[Worker]:
        fn = self._function(spec.name)
        stale: list[Worker] = []
        deadline = time.monotonic() + self.queue_s
        with fn.cond:
            while fn.busy >= self.concurrency:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    raise ResourceExhausted(
                        f"function {spec.name} already runs {self.concurrency} call(s) at once, its limit (KILN_FUNCTIONS_CONCURRENCY), "
                        f"and none ended within {self.queue_s:g} s (KILN_FUNCTIONS_QUEUE_S); retry later"
                    )
                fn.cond.wait(left)
            fn.busy += 1
            worker = None
            for i in range(len(fn.idle) - 1, -1, -1):  # the most recently used warm worker of this version
                if fn.idle[i][0] == spec:
                    worker = fn.idle.pop(i)[1]
                    break
            if worker is None:
                # At most `concurrency` processes per function: the least recently used idle
                # worker (of another version) makes room.
                while fn.idle and fn.busy + len(fn.idle) > self.concurrency:
                    stale.append(fn.idle.pop(0)[1])
        try:
            for old in stale:
                old.close()
            if worker is None:
                worker = spec.worker(self.ws, code_dir(self.ws, spec.code_sha256))
            yield worker
        finally:
            self._release(spec, fn, worker)

    def _release(self, spec: Spec, fn: _Function, worker: Worker | None) -> None:
        keep = worker is not None and worker.alive and not self._closed.is_set()
        with fn.cond:
            fn.busy -= 1
            if keep:
                fn.idle.append((spec, worker, time.monotonic()))  # type: ignore[arg-type]
            fn.cond.notify()
        if worker is not None and not keep:
            worker.close()
        self._start_reaper()

    def _function(self, name: str) -> _Function:
        with self._lock:
            return self._functions.setdefault(name, _Function())

    # -- idle workers -----------------------------------------------------------------------

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None and not self._closed.is_set():
                self._reaper = threading.Thread(target=self._reap_loop, args=(weakref.ref(self),), name="kiln-function-reaper", daemon=True)
                self._reaper.start()

    @staticmethod
    def _reap_loop(ref: weakref.ReferenceType[FunctionPools]) -> None:
        while True:
            pools = ref()
            if pools is None:
                return
            closed, interval = pools._closed, min(30.0, max(0.05, pools.idle_s / 4))
            del pools
            if closed.wait(interval):
                return
            pools = ref()
            if pools is None:
                return
            pools.reap()
            del pools

    def reap(self, *, older_than_s: float | None = None) -> int:
        """Stop workers idle for ``older_than_s`` (default ``functions_idle_s``); how many."""
        limit = self.idle_s if older_than_s is None else older_than_s
        now = time.monotonic()
        done: list[Worker] = []
        with self._lock:
            functions = list(self._functions.items())
        for name, fn in functions:
            with fn.cond:
                done += [w for _, w, since in fn.idle if now - since >= limit]
                fn.idle = [item for item in fn.idle if now - item[2] < limit]
                if not fn.idle and not fn.busy:
                    with self._lock:
                        if self._functions.get(name) is fn:
                            del self._functions[name]
        for worker in done:
            worker.close()
        return len(done)

    def drop(self, name: str) -> None:
        """Stop the idle workers of function ``name`` (deleted); busy ones stop when their call ends."""
        with self._lock:
            fn = self._functions.get(name)
        if fn is None:
            return
        with fn.cond:
            idle, fn.idle = fn.idle, []
        for _, worker, _ in idle:
            worker.close()

    def workers(self, name: str) -> int:
        """How many workers function ``name`` has in this process, busy or idle."""
        with self._lock:
            fn = self._functions.get(name)
        if fn is None:
            return 0
        with fn.cond:
            return fn.busy + len(fn.idle)

    def close(self) -> None:
        """Stop every idle worker now and each busy one as its call ends."""
        self._closed.set()
        with self._lock:
            functions, self._functions = list(self._functions.values()), {}
        for fn in functions:
            with fn.cond:
                idle, fn.idle = fn.idle, []
                fn.cond.notify_all()
            for _, worker, _ in idle:
                worker.close()


_POOLS: weakref.WeakKeyDictionary[Workspace, FunctionPools] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def pools_for(ws: Workspace) -> FunctionPools:
    """The warm workers of workspace ``ws`` in this process, stopped when it closes."""
    with _POOLS_LOCK:
        pools = _POOLS.get(ws)
        if pools is None:
            pools = _POOLS[ws] = FunctionPools(ws)
            ws.on_close(lambda: _close(ws))
        return pools


def _close(ws: Workspace) -> None:
    with _POOLS_LOCK:
        pools = _POOLS.pop(ws, None)
    if pools is not None:
        pools.close()
