"""Running users' code: one command in a process group of its own, its output line by
line to a sink, under a time limit, and stopped whole on request.

The group gets SIGTERM, then SIGKILL after a grace period, so children that ignore
SIGTERM end too. The command's direct child also gets SIGKILL if the runner itself
dies (Linux ``PR_SET_PDEATHSIG``), and the runner records the group id in the job
record, so whoever finds a dead runner can end what it left behind.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ExitStatus", "kill_group", "run_group"]

GRACE_S = 10.0
MAX_LINE = 64 * 1024

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal
    _prctl = None
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ExitStatus:
    """How a command ended."""

    returncode: int | None
    timed_out: bool = False
    stopped: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    def describe(self) -> str:
        """A sentence a person can act on."""
        if self.stopped:
            return "stopped on request"
        if self.timed_out:
            return "ran past its time limit and was ended"
        sig = self.signal
        if sig == signal.SIGKILL:
            return "was killed by SIGKILL, most likely by the out-of-memory killer: give it more memory or less data"
        if sig is not None:
            return f"was killed by signal {sig} ({signal.Signals(sig).name})"
        return f"exited with code {self.returncode}"


def kill_group(pgid: int, *, grace_s: float = GRACE_S, leader: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the group, then SIGKILL whatever is left of it after ``grace_s``.

    ``leader`` (our child, the group's first process) is reaped while waiting: a zombie
    still counts as a member of its group.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _child_setup(memory_mb: int | None) -> Callable[[], None]:
    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if memory_mb:
            limit = int(memory_mb) << 20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return setup


def run_group(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str],
    on_line: Callable[[str], None],
    time_limit_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_start: Callable[[int], None] = lambda pgid: None,
    memory_mb: int | None = None,
    grace_s: float = GRACE_S,
    poll_s: float = 0.2,
) -> ExitStatus:
    """Run ``argv`` in a new process group, feeding each output line (stdout and stderr
    together) to ``on_line``, until it exits, ``time_limit_s`` passes or ``should_stop()``.

    Raises:
        OSError: the command could not be started (no such program).
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv), cwd=str(cwd), env=dict(env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_child_setup(memory_mb), close_fds=True,
    )
    on_start(proc.pid)  # start_new_session: the child's pid is its group id
    reader = threading.Thread(target=_pump, args=(proc, on_line), name="kiln-job-output", daemon=True)
    reader.start()
    timed_out = stopped = False
    while proc.poll() is None:
        if time_limit_s is not None and time.monotonic() - start > time_limit_s:
            timed_out = True
        elif should_stop():
            stopped = True
        if timed_out or stopped:
            kill_group(proc.pid, grace_s=grace_s, leader=proc)
            break
        try:
            proc.wait(timeout=poll_s)
        except subprocess.TimeoutExpired:
            pass
    proc.wait()
    # The group may outlive its leader (a child that ignored SIGTERM, or a daemon it forked):
    # nothing the job started survives the job.
    kill_group(proc.pid, grace_s=grace_s if (timed_out or stopped) else 0.5, leader=proc)
    reader.join(timeout=5)
    return ExitStatus(proc.returncode, timed_out=timed_out, stopped=stopped, duration_s=time.monotonic() - start)


def _pump(proc: subprocess.Popen[bytes], on_line: Callable[[str], None]) -> None:
    assert proc.stdout is not None
    with proc.stdout:
        for raw in iter(lambda: proc.stdout.readline(MAX_LINE), b""):  # type: ignore[union-attr]
            on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
