"""Executors: where a job's runner process runs.

A job is run by Kiln's runner (:mod:`kiln.jobs._runner`), a process that opens the
workspace, prepares the job's folder, starts the user's code in a process group
of its own, streams its log into the metadata database, enforces the time limit,
answers a stop, and records the outcome. An executor only starts runners and
says whether one still lives: the local executor as child processes of this
machine, the Ray executor as tasks on a cluster. Status, logs and stop go
through the job's record, which every runner keeps, wherever it runs.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kiln.core.errors import InvalidArgument

__all__ = ["Capabilities", "Executor", "Launch", "executor_kinds", "open_executor", "register_executor"]


@dataclass(frozen=True)
class Capabilities:
    """What an executor can do, read by callers instead of calling and catching."""

    # Several hosts for one job (``--instance-count N > 1``).
    multi_host: bool = False
    # Whether ``alive`` can answer from any process (a local pid only answers on its host).
    remote: bool = False


@dataclass(frozen=True)
class Launch:
    """What an executor starts: the runner of job ``job``, with the workspace's settings."""

    job: str
    env: Mapping[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    gpus: float = 0.0
    # The runner starts jobs of its own (a tuning job's driver): the local executor hands it a
    # warm launcher (a fork of its zygote) instead of leaving it to start a fresh one.
    launches_jobs: bool = False


class Executor(ABC):
    """Starts job runners and tells whether one still lives.

    Every backend passes one contract kit (``tests/jobs/test_executor_kit.py``).
    """

    name: str = ""
    capabilities: Capabilities = Capabilities()

    @abstractmethod
    def submit(self, launch: Launch) -> str:
        """Start the runner of ``launch.job``; return a handle that :meth:`alive` reads."""

    @abstractmethod
    def alive(self, handle: str) -> bool | None:
        """Whether the runner behind ``handle`` still runs; None when this process cannot tell."""

    @abstractmethod
    def stop(self, handle: str) -> None:
        """Ask the runner to end now (it stops the user's processes and records Stopped).

        Stopping also works without this, through the job record's ``stop_requested``
        flag that every runner polls; this is the fast path.
        """

    def warm(self) -> None:
        """Get ready for a submit soon (the local executor starts its zygote meanwhile)."""

    def close(self) -> None:
        """Release what the executor holds (a Ray connection)."""


_REGISTRY: dict[str, Callable[[str], Executor]] = {}


def register_executor(scheme: str, factory: Callable[[str], Executor]) -> None:
    """Make ``scheme`` (``local``, ``ray``) a value of ``KILN_EXECUTOR``; plugins register alike."""
    _REGISTRY[scheme] = factory


def executor_kinds() -> list[str]:
    _builtin()
    return sorted(_REGISTRY)


_OPEN: dict[tuple[int, str], Executor] = {}
_OPEN_LOCK = threading.Lock()


def open_executor(spec: str) -> Executor:
    """The executor ``KILN_EXECUTOR`` names: ``local``, ``ray`` or ``ray://host:port``.

    One per process and spec: it keeps what makes the next job start fast (the local
    executor's warm zygote, a Ray connection).
    """
    _builtin()
    scheme = spec.split("://", 1)[0].strip().lower() or "local"
    factory = _REGISTRY.get(scheme)
    if factory is None:
        raise InvalidArgument(f"unknown executor {spec!r}; KILN_EXECUTOR takes one of {executor_kinds()} (e.g. local, ray, ray://host:10001)")
    key = (os.getpid(), spec)
    with _OPEN_LOCK:
        executor = _OPEN.get(key)
        if executor is None or _REGISTRY.get(scheme) is not factory:
            executor = _OPEN[key] = factory(spec)
        return executor


def _builtin() -> None:
    if "local" not in _REGISTRY:
        from kiln.jobs._local import LocalExecutor

        register_executor("local", lambda spec: LocalExecutor())
    if "ray" not in _REGISTRY:
        def ray(spec: str) -> Executor:
            from kiln.jobs._ray import RayExecutor

            return RayExecutor(spec)

        register_executor("ray", ray)
