"""The local executor: each job's runner a child process of this machine, in a session of
its own, so it outlives the command that submitted it (``--detach``) and a stop or a
kill reaches everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from kiln.jobs._base import Capabilities, Executor, Launch

__all__ = ["LocalExecutor", "process_alive", "this_host"]


def this_host() -> str:
    """This machine, as job records name it: hostname plus boot id (a reboot is another host)."""
    boot = ""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()[:8]
    except OSError:
        pass
    return f"{socket.gethostname()}/{boot}" if boot else socket.gethostname()


def _start_ticks(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot), to tell it from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, ticks: str = "") -> bool:
    """Whether ``pid`` runs (and, given ``ticks``, is the same process that started then)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if ticks and _start_ticks(pid) not in ("", ticks):
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class LocalExecutor(Executor):
    """Runners as processes of this machine; their handle is ``host:pid:start-ticks``."""

    name = "local"
    capabilities = Capabilities(multi_host=False, remote=False)

    def __init__(self) -> None:
        from kiln.jobs._zygote import Zygote

        self._zygote = Zygote()

    def submit(self, launch: Launch) -> str:
        env = {**os.environ, **launch.env}
        if os.environ.get("KILN_JOBS_ZYGOTE", "1") != "0":
            try:
                pid = self._zygote.launch(launch.job, env, launcher=launch.launches_jobs)
                return f"{this_host()}:{pid}:{_start_ticks(pid)}"
            except OSError:
                pass  # a fresh interpreter instead
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiln.jobs._runner", launch.job],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True, close_fds=True,
        )
        _reap_later(proc)
        return f"{this_host()}:{proc.pid}:{_start_ticks(proc.pid)}"

    def alive(self, handle: str) -> bool | None:
        parts = handle.rsplit(":", 2)
        if len(parts) != 3:
            return None
        host, pid, ticks = parts
        if host != this_host():
            return None
        return process_alive(int(pid), ticks)

    def warm(self) -> None:
        if os.environ.get("KILN_JOBS_ZYGOTE", "1") != "0":
            self._zygote.warm()

    def close(self) -> None:
        self._zygote.close()

    def stop(self, handle: str) -> None:
        parts = handle.rsplit(":", 2)
        if len(parts) == 3 and parts[0] == this_host() and process_alive(int(parts[1]), parts[2]):
            try:
                os.kill(int(parts[1]), signal.SIGTERM)  # the runner stops its job and records Stopped
            except ProcessLookupError:
                pass


_children: list[subprocess.Popen[bytes]] = []


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Keep the Popen so finished runners are reaped (no zombies in a long-lived server)."""
    _children.append(proc)
    _children[:] = [p for p in _children if p.poll() is None]
