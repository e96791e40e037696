"""A warm parent for model workers: one process that has imported the model libraries and
the serving runtime once, and forks a :class:`kiln.core.worker.Worker` child per request,
so a worker is ready in milliseconds instead of a fresh interpreter's seconds.

The zygote is started with :func:`kiln.core.worker.worker_env` (no ``KILN_*``, cloud or
database secrets), never opens the workspace and stays single-threaded, so forking it is
safe. The owner creates the worker's pipes and hands their ends over a Unix socket
(``SCM_RIGHTS``), with its own stderr; the forked child starts its own session (process
group), takes ``PR_SET_PDEATHSIG`` toward the zygote, sets its memory limit when asked and
runs the same loop a spawned worker runs (:func:`kiln.core.worker._serve`), so the owner
drives it exactly as a spawned child.

The zygote cannot be the workers' parent and let the owner ``wait`` for them, so it reaps
them and writes each one's exit status (as ``Popen.returncode`` reads) into a status pipe
the owner passed with the request: :class:`ForkedProcess` is the owner's ``Popen``.

Ending: when a connection closes (its owner exited or was killed), the zygote kills every
worker it forked for it, then exits once no connection is left; a worker gets SIGKILL if the
zygote dies.

``KILN_WORKER_WARM=0`` turns warm starts off (every worker is a fresh interpreter).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["ForkedProcess", "adopt", "connect", "enabled", "fork_worker", "shutdown", "warm"]

# Imported once, before any fork: what a model worker needs before it can load a model.
# Measured (2 cores under load 10-13): scikit-learn with skops is most of a fresh worker's
# start (5-9 s); after them LightGBM, XGBoost and treelite add 0.05-0.13 s each and start no
# thread, so they come too. Not preloaded, imported by the worker that needs them: onnx /
# skl2onnx (3 s, for the forests' fast path) and onnxruntime (it starts a thread on import,
# and a zygote must not hold more threads than the fork-safe native pools of OpenBLAS and
# Arrow's jemalloc, which re-create theirs after a fork).
PRELOAD = (
    "numpy", "pandas", "pyarrow", "pyarrow.csv", "pyarrow.ipc",
    "sklearn", "sklearn.linear_model", "sklearn.ensemble", "sklearn.tree", "sklearn.pipeline", "sklearn.preprocessing",
    "skops.io", "lightgbm", "xgboost", "treelite", "treelite.sklearn",
    "kiln.serving._runtime", "kiln.serving._fast", "kiln.serving._transform_worker", "kiln.registry._worker",
    "kiln.registry._native", "kiln.registry._sagemaker",
)
_CODE = struct.Struct(">i")
_MAX_MSG = 1 << 20
_ANSWER_S = 120.0  # the first answer waits for the preload (seconds under load)


def enabled() -> bool:
    """Whether workers start warm: on unless ``KILN_WORKER_WARM`` is 0/false/no/off."""
    return os.environ.get("KILN_WORKER_WARM", "1").strip().lower() not in ("0", "false", "no", "off")


# -- the owner's side ---------------------------------------------------------------------------


class ForkedProcess:
    """A worker forked by the zygote, as the owner sees it: what :class:`Worker` uses of ``Popen``."""

    def __init__(self, pid: int, stdin: int, stdout: int, status: int) -> None:
        self.pid = pid
        self.stdin = os.fdopen(stdin, "wb")
        self.stdout = os.fdopen(stdout, "rb", buffering=0)
        self._status = status
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def _collect(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            if not select.select([self._status], [], [], timeout)[0]:
                return None
            data = b""
            while len(data) < _CODE.size:
                chunk = os.read(self._status, _CODE.size - len(data))
                if not chunk:
                    break
                data += chunk
            os.close(self._status)
            # No status: the zygote died before reaping it, and the worker died with it (PDEATHSIG).
            self.returncode = _CODE.unpack(data)[0] if len(data) == _CODE.size else -signal.SIGKILL
            return self.returncode

    def poll(self) -> int | None:
        return self._collect(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._collect(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return code

    def __del__(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):
                os.close(self._status)


class _Client:
    """This process's connection to its zygote (started on first use)."""

    def __init__(self, adopted: socket.socket | None = None) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = adopted  # a connection to a zygote our parent started

    def _start(self) -> socket.socket:
        from kiln.core.worker import worker_env

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kiln.core._worker_zygote", "--fd", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None, pass_fds=(theirs.fileno(),),
                env=worker_env(), start_new_session=True, cwd="/",
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        return ours

    def ensure(self) -> socket.socket:
        if self.sock is not None and self.proc is None:  # adopted: used until it fails
            return self.sock
        if self.sock is None or self.proc is None or self.proc.poll() is not None:
            self.close()
            return self._start()
        return self.sock

    def request(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        with self.lock:
            sock = self.ensure()
            try:
                socket.send_fds(sock, [orjson.dumps(message)], fds)
                sock.settimeout(_ANSWER_S)
                data = sock.recv(_MAX_MSG)
            except OSError:
                self.close()
                raise
            if not data:
                self.close()
                raise OSError("the worker zygote closed its connection")
            answer = orjson.loads(data)
            if "error" in answer:
                raise OSError(f"the worker zygote could not fork a worker: {answer['error']}")
            return dict(answer)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        proc, self.proc = self.proc, None
        if sock is not None:
            sock.close()  # the zygote kills what it forked for us and exits
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_client: _Client | None = None
_client_lock = threading.Lock()


def _shared() -> _Client:
    global _client
    with _client_lock:
        if _client is None or _client.pid != os.getpid():  # a forked child never uses its parent's zygote
            _client = _Client()
        return _client


def _forget_in_child() -> None:
    """A process forked from an owner does not keep the owner's connection open: the zygote
    must see it close when the owner ends (the jobs zygote's runners :func:`adopt` their own)."""
    global _client, _client_lock
    client, _client = _client, None
    _client_lock = threading.Lock()  # another thread may have held it at the fork
    if client is not None and client.sock is not None:
        client.sock.close()


os.register_at_fork(after_in_child=_forget_in_child)


def warm() -> None:
    """Start this process's zygote now (it preloads while the caller does other work)."""
    client = _shared()
    with client.lock:
        client.ensure()


def connect() -> socket.socket:
    """A new connection to this process's zygote (started if need be), for a child this process
    forks to :func:`adopt`: the jobs zygote hands one to each runner, so every transform's
    workers come from one zygote that stays warm between jobs. No answer is awaited (the
    zygote may still be preloading).

    Raises:
        OSError: the zygote could not start or take the connection.
    """
    client = _shared()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        with client.lock:
            sock = client.ensure()
            try:
                socket.send_fds(sock, [orjson.dumps({"op": "connect"})], [theirs.fileno()])
            except OSError:
                client.close()
                raise
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return ours


def adopt(sock: socket.socket) -> None:
    """In a forked child: use ``sock`` (from :func:`connect` in the parent) as this process's
    zygote connection (the parent's own was closed at the fork)."""
    global _client
    with _client_lock:
        _client = _Client(adopted=sock)


def fork_worker(*, cwd: str, env: Mapping[str, str], memory_mb: int | None) -> ForkedProcess:
    """A worker forked by this process's zygote, its stdin and stdout piped to us.

    Raises:
        OSError: the zygote could not start, answer or fork (the caller spawns a fresh worker).
    """
    to_child = os.pipe()
    from_child = os.pipe()
    status = os.pipe()
    fds_child = [to_child[0], from_child[1], status[1], 2]
    try:
        answer = _shared().request({"op": "fork", "cwd": cwd, "env": dict(env), "memory_mb": memory_mb}, fds_child)
    except BaseException:
        for fd in (*to_child, *from_child, *status):
            os.close(fd)
        raise
    for fd in fds_child[:3]:
        os.close(fd)
    for fd in (to_child[1], from_child[0], status[0]):
        os.set_inheritable(fd, False)
    return ForkedProcess(int(answer["pid"]), to_child[1], from_child[0], status[0])


def shutdown() -> None:
    """Stop this process's zygote (and the workers it forked for us)."""
    global _client
    with _client_lock:
        client, _client = _client, None
    if client is not None and client.pid == os.getpid():
        with client.lock:
            client.close()


# -- the zygote -----------------------------------------------------------------------------------


class _Zygote:
    def __init__(self, sock: socket.socket) -> None:
        self.conns: dict[int, socket.socket] = {sock.fileno(): sock}
        self.owned: dict[int, set[int]] = {sock.fileno(): set()}  # connection -> worker pids
        self.status: dict[int, tuple[int, int]] = {}  # worker pid -> (connection, status fd)
        self.pid = os.getpid()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
        signal.set_wakeup_fd(self.wake_w)
        while self.conns:
            ready = select.select([*self.conns, self.wake_r], [], [], 1.0)[0]
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
            self._reap()
            for fd in ready:
                if fd in self.conns:
                    self._handle(fd)
        self._reap()

    def _handle(self, fd: int) -> None:
        sock = self.conns[fd]
        try:
            data, fds, _, _ = socket.recv_fds(sock, _MAX_MSG, 8)
        except OSError:
            data, fds = b"", []
        if not data:
            self._drop(fd)
            return
        try:
            request = orjson.loads(data)
            if request.get("op") == "connect" and len(fds) == 1:  # an owner our first owner forked
                conn = socket.socket(fileno=fds[0])
                self.conns[conn.fileno()] = conn
                self.owned[conn.fileno()] = set()
                return
            if request.get("op") != "fork" or len(fds) != 4:
                raise ValueError("unknown request")
            memory_mb = request.get("memory_mb")
            if memory_mb and 2 * _address_space() > int(memory_mb) << 20:
                # The preloaded libraries count in a forked worker's address space: under a
                # tight limit, a fresh interpreter leaves the model the headroom it expects.
                raise ValueError(f"a {int(memory_mb)} MB limit leaves too little room beside the preloaded libraries")
            pid = os.fork()
        except (ValueError, OSError) as exc:
            for f in fds:
                os.close(f)
            with contextlib.suppress(OSError):
                sock.send(orjson.dumps({"error": str(exc)[:500]}))
            return
        if pid == 0:
            self._child(request, fds)
        os.close(fds[0])
        os.close(fds[1])
        os.close(fds[3])
        self.status[pid] = (fd, fds[2])
        self.owned[fd].add(pid)
        try:
            sock.send(orjson.dumps({"pid": pid}))
        except OSError:
            self._drop(fd)

    def _drop(self, fd: int) -> None:
        """The owner is gone: its workers end with it."""
        for pid in self.owned.pop(fd, set()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.conns.pop(fd).close()

    def _reap(self) -> None:
        while self.status:
            try:
                pid, wstatus = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn, status_fd = self.status.pop(pid, (None, None))
            if conn is not None and conn in self.owned:
                self.owned[conn].discard(pid)
            if status_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(status_fd, _CODE.pack(os.waitstatus_to_exitcode(wstatus)))
                os.close(status_fd)

    def _child(self, request: dict[str, Any], fds: list[int]) -> None:
        code = 1
        try:
            stdin, stdout, status, stderr = fds
            os.setsid()
            _pdeathsig(signal.SIGKILL, self.pid)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(status)
            for _, other in self.status.values():
                os.close(other)
            for sock in self.conns.values():
                sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            os.dup2(stdin, 0)
            os.dup2(stdout, 1)
            os.dup2(stderr, 2)
            for f in (stdin, stdout, stderr):
                if f > 2:
                    os.close(f)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
            if "numpy" in sys.modules:  # a fresh interpreter's global RandomState is seeded from the OS
                sys.modules["numpy"].random.seed()
            from kiln.core.worker import _serve

            memory_mb = request.get("memory_mb")
            _serve(int(memory_mb) if memory_mb else None)
            code = 0
        except BaseException:  # noqa: BLE001 - nothing may return into the zygote's loop
            code = 1
        finally:
            with contextlib.suppress(BaseException):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def _address_space() -> int:
    """This process's virtual memory size in bytes (what ``RLIMIT_AS`` counts)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 1 << 62  # unknown: never fork a worker with a memory limit


def _pdeathsig(sig: int, parent: int) -> None:
    """Die with ``sig`` when the zygote (our parent) dies; Linux only, skipped elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the zygote died before the call took effect
        os._exit(1)


def _main() -> None:
    import importlib

    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    sock = socket.socket(fileno=fd)
    started = time.monotonic()
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a library missing here is imported (and reported) by the worker
            pass
    if "--verbose" in sys.argv:
        print(f"kiln worker zygote: preloaded in {time.monotonic() - started:.2f} s", file=sys.stderr)
    _Zygote(sock).serve()


if __name__ == "__main__":
    _main()
