"""An endpoint's supervisor: holds the listening socket and keeps the right workers on it.

``python -m kiln.serving._supervisor --run-dir DIR`` (or :class:`Supervisor` in the
caller's own process, as ``kiln serve`` does). It binds the newest spec's ``host:port``
(port 0: a free one), starts ``spec.workers`` worker processes that inherit the socket
(one accept queue, shared), and then, until SIGTERM or SIGINT:

- replaces a worker that dies (SIGKILL, a crash) while the others keep answering; one
  that never gets ready is retried with a growing pause, and when no worker of the
  first generation could ever load, the supervisor gives up and says why;
- on SIGHUP serves the newest ``gen-<n>.json`` blue/green: starts its workers, waits
  until every one is ready, then drains the old ones (a generation that fails to start
  is dropped and the old one keeps serving; ``state.json`` says why);
- replaces a worker whose model ran past the request timeout (it asks to be recycled);
- moves finished data-capture files into the store (``ship``);
- keeps ``state.json`` current (written atomically);
- serverless (``spec.serverless``): a worker idle for ``idle_s`` says so and leaves;
  once none is left the endpoint sleeps: the supervisor keeps the socket and polls it,
  and the first connection that waits in its queue wakes a worker (a cold start, timed
  from that moment to the worker's ``ready``), which then accepts it. Each worker's
  address space is capped at ``memory_mb``.

SIGTERM / SIGINT stop the endpoint: every worker finishes the requests in flight and
exits (SIGINT to the workers: idle connections close at once); a second signal kills them.
Workers run with :func:`kiln.core.worker.worker_env` (no secrets), in sessions of
their own, and die with the supervisor (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from kiln.jobs._proc import _child_setup
from kiln.serving import _metrics
from kiln.serving._spec import EndpointSpec

__all__ = ["Supervisor", "newest_spec", "read_state"]

GRACE_S = 5.0  # beyond the worker's own drain, before SIGKILL
READY_TIMEOUT_S = 600.0
SHIP_EVERY_S = 2.0
_GEN = re.compile(r"^gen-(\d+)\.json$")
_LISTEN = object()  # the selector's mark of the listening socket (polled while a serverless endpoint sleeps)


def newest_spec(run_dir: str | Path) -> tuple[int, Path] | None:
    """The highest-numbered ``gen-<n>.json`` in ``run_dir``: ``(n, path)``, or None."""
    best: tuple[int, Path] | None = None
    for path in Path(run_dir).iterdir():
        match = _GEN.match(path.name)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), path)
    return best


def read_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The supervisor's ``state.json``, or None when there is none (yet)."""
    try:
        value = orjson.loads((Path(run_dir) / "state.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(eq=False)
class _Child:
    proc: subprocess.Popen[bytes]
    index: int
    generation: int
    started: float
    ready: bool = False
    failed: str = ""
    retiring_since: float | None = None
    wants_recycle: bool = False
    replaced_by: _Child | None = None
    idle: bool = False
    buf: bytes = b""

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class _Generation:
    number: int
    spec: EndpointSpec
    path: Path
    children: list[_Child] = field(default_factory=list)
    ever_ready: bool = False
    since: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs an endpoint's workers from the specs in ``run_dir``.

    Args:
        run_dir: the endpoint's run folder (``gen-<n>.json`` specs, ``state.json``, metrics, capture spool).
        log: where the workers' stderr goes (a file open for appending); None: this process's stderr.
        ship: stores one finished capture file under a key (``ObjectStore.put_file``);
            None: capture files stay in the spool.
        python: the interpreter the workers run on.
        on_status: called with each new status (starting, ready, updating, stopping,
            stopped, failed) and the error, if any (``kiln serve`` prints them).
        resolve: multi-model endpoints: ``(target, allow) -> {"ref", "folder", "trusted", "size"}``,
            the workspace's resolve, trust check and verified fetch a worker asks for
            (:func:`kiln.serving._multi.workspace_resolver`); None: such workers load nothing.
    """

    def __init__(
        self, run_dir: str | Path, *, log: IO[Any] | None = None, ship: Callable[[str, Path], Any] | None = None,
        python: str = sys.executable, ready_timeout_s: float = READY_TIMEOUT_S,
        on_status: Callable[[str, str | None], None] | None = None,
        resolve: Callable[[str, tuple[str, ...]], dict[str, Any]] | None = None,
    ) -> None:
        self.resolve = resolve
        self.run_dir = Path(run_dir).absolute()
        self.log = log
        self.ship = ship
        self.python = python
        self.ready_timeout_s = ready_timeout_s
        self.sock: socket.socket | None = None
        self.port = 0
        self.url = ""
        self.current: _Generation | None = None
        self.pending: _Generation | None = None
        self.retiring: list[_Child] = []
        self.error: str | None = None
        self._status = "starting"
        self.on_status = on_status
        self._sel = selectors.DefaultSelector()
        self._hup = False
        self._stop = 0  # signals asking to stop: 1 drains, 2 kills
        self._stop_since: float | None = None
        self._dirty = True
        self._last_ship = 0.0
        self._backoff: dict[int, tuple[int, float]] = {}  # index -> (failures in a row, next start)
        self._wake_r = self._wake_w = -1
        # Serverless: worker indexes that left idle (not replaced until a request comes),
        # whether the listening socket is polled, and how often the endpoint woke.
        self._asleep: set[int] = set()
        self._polling = False
        self.wakes = 0

    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        if value != self._status:
            self._status = value
            self._dirty = True
            if self.on_status is not None:
                self.on_status(value, self.error)

    # -- start -----------------------------------------------------------------------------

    def bind(self) -> int:
        """Load the newest spec and bind its ``host:port``; returns the port."""
        found = newest_spec(self.run_dir)
        if found is None:
            raise FileNotFoundError(f"no gen-<n>.json spec in {self.run_dir}")
        number, path = found
        spec = EndpointSpec.model_validate_json(path.read_bytes())
        host = spec.host or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host.strip("[]"), spec.port), family=family, backlog=2048)
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else shown}:{self.port}"
        self.current = _Generation(number, spec, path)
        return self.port

    def start(self) -> None:
        """Bind (if not yet), set up signals, start the first generation's workers."""
        if self.sock is None:
            self.bind()
        assert self.current is not None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGHUP, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for i in range(self.current.spec.workers):
            self.current.children.append(self._spawn(self.current, i))
        self._write_state()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self._stop += 1

    def _spawn(self, gen: _Generation, index: int, *, cold_since: float | None = None) -> _Child:
        from kiln.core.worker import worker_env

        assert self.sock is not None
        fd = self.sock.fileno()
        argv = [self.python, "-m", "kiln.serving._worker", "--fd", str(fd), "--spec", str(gen.path), "--index", str(index)]
        if cold_since is not None:
            argv += ["--cold-since", repr(cold_since)]
        serverless = gen.spec.serverless
        fds: tuple[int, ...] = (fd,)
        ours = theirs = None
        if gen.spec.multi_model is not None:
            # A private channel per worker: it asks this (trusted) process for verified packages.
            ours, theirs = socket.socketpair()
            argv += ["--models-fd", str(theirs.fileno())]
            fds += (theirs.fileno(),)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, pass_fds=fds,
                env=worker_env(), cwd=str(self.run_dir), start_new_session=True,
                preexec_fn=_child_setup(serverless.memory_mb if serverless is not None else None),
            )
        finally:
            if theirs is not None:
                theirs.close()
        if ours is not None:
            from kiln.serving._multi import serve_channel

            mm = gen.spec.multi_model
            assert mm is not None
            serve_channel(ours, self._resolve, tuple(mm.allow))
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        child = _Child(proc, index, gen.number, time.monotonic())
        self._sel.register(proc.stdout, selectors.EVENT_READ, child)
        self._dirty = True
        return child

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the exit code (3 when no worker could ever load)."""
        if self._wake_r < 0:
            self.start()
        try:
            while not self.step(0.2):
                pass
        finally:
            self._teardown()
        return 3 if self.status == "failed" else 0

    def step(self, timeout: float) -> bool:
        """One turn of the loop; True once the supervisor is done."""
        for key, _ in self._sel.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 512):
                        pass
            elif key.data is _LISTEN:
                self._wake()
            else:
                self._read(key.data)
        now = time.monotonic()
        if self._stop:
            return self._stopping(now)
        if self._hup:
            self._hup = False
            self.reload()
        self._reap(now)
        if self.status == "failed":
            return True
        self._advance(now)
        if self.ship is not None and now - self._last_ship >= SHIP_EVERY_S:
            self._ship()
        if self._dirty:
            self._write_state()
        return False

    def _read(self, child: _Child) -> None:
        assert child.proc.stdout is not None
        try:
            data = os.read(child.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._unregister(child)
            return
        child.buf += data
        *lines, child.buf = child.buf.split(b"\n")
        for line in lines:
            word, _, rest = line.decode("utf-8", "replace").partition(" ")
            if word == "ready":
                child.ready = True
                self._backoff.pop(child.index, None)
                self._dirty = True
            elif word == "failed":
                child.failed = rest
            elif word == "recycle":
                child.wants_recycle = True
            elif word == "idle":
                child.idle = True

    def _unregister(self, child: _Child) -> None:
        if child.proc.stdout is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(child.proc.stdout)
            child.proc.stdout.close()

    def _reap(self, now: float) -> None:
        for child in [c for c in self.retiring if c.proc.poll() is not None]:
            self.retiring.remove(child)
            self._gone(child)
        for child in list(self.retiring):
            if child.retiring_since is not None and now - child.retiring_since > _drain_s() + GRACE_S:
                _kill(child.pid)
        for gen in (self.current, self.pending):
            if gen is None:
                continue
            for child in [c for c in gen.children if c.proc.poll() is not None]:
                gen.children.remove(child)
                self._gone(child)
                self._died(gen, child, now)

    def _gone(self, child: _Child) -> None:
        if child.proc.stdout is not None and not child.proc.stdout.closed:
            self._read(child)
            self._unregister(child)
        _metrics.retire(self.run_dir, child.pid)
        self._dirty = True

    def _died(self, gen: _Generation, child: _Child, now: float) -> None:
        if child.idle and gen is self.current and gen.spec.serverless is not None:
            self._asleep.add(child.index)  # it left idle, as a serverless worker does: no replacement
            return
        why = child.failed or _exit_text(child.proc.returncode)
        self._say(f"worker {child.index} (pid {child.pid}, generation {gen.number}) ended: {why}")
        if gen is self.pending and not child.ready:
            self.error = f"generation {gen.number} did not start: worker {child.index} {why}; generation {self.current.number if self.current else '?'} keeps serving"
            self._say(self.error)
            self._drop_pending()
            return
        if gen is self.current and not gen.ever_ready and not child.ready and child.failed:
            self.error = f"the endpoint could not start: {why}"
            self.status = "failed"
            self._say(self.error)
            return
        failures, _ = self._backoff.get(child.index, (0, 0.0))
        failures = failures + 1 if not child.ready else 0
        delay = 0.0 if failures == 0 else min(30.0, 0.5 * 2 ** (failures - 1))
        self._backoff[child.index] = (failures, now + delay)
        if child.failed:
            self.error = f"worker {child.index} could not load: {child.failed}"

    def _advance(self, now: float) -> None:
        current = self.current
        assert current is not None
        if current.spec.serverless is not None:
            self._sleep_idle(current, now)
        # Keep the current generation at strength (after a death, a back-off).
        held = {c.index for c in current.children}
        for index in range(current.spec.workers):
            if index not in held and index not in self._asleep:
                _, when = self._backoff.get(index, (0, 0.0))
                if now >= when:
                    current.children.append(self._spawn(current, index))
        if all(c.ready for c in current.children) and current.children:
            if not current.ever_ready:
                current.ever_ready = True
                self._dirty = True
        # A worker whose model hung asks to be recycled: start its replacement, drain it once that is ready.
        for child in list(current.children):
            if child.wants_recycle and child.replaced_by is None:
                child.replaced_by = self._spawn(current, child.index)
                current.children.append(child.replaced_by)
            if child.replaced_by is not None and child.replaced_by.ready:
                current.children.remove(child)
                self._retire(child, now)
        pending = self.pending
        if pending is not None:
            if pending.children and all(c.ready for c in pending.children):
                for child in current.children:
                    self._retire(child, now)
                pending.ever_ready = True
                self.current, self.pending = pending, None
                self._asleep.clear()
                self._poll(False)
                self.error = None
                self._say(f"generation {pending.number} serves; generation {current.number} drains")
            elif now - pending.since > self.ready_timeout_s:
                self.error = f"generation {pending.number} was not ready after {self.ready_timeout_s:g} s; generation {current.number} keeps serving"
                self._say(self.error)
                self._drop_pending()
        serving = any(c.ready for c in self.current.children) or (self._polling and self.current.ever_ready)
        self.status = "updating" if self.pending is not None else ("ready" if serving else "starting")

    def _resolve(self, target: str, allow: tuple[str, ...]) -> dict[str, Any]:
        if self.resolve is None:
            from kiln.core.errors import Unavailable

            raise Unavailable("this endpoint's supervisor has no workspace to load models from")
        return self.resolve(target, allow)

    # -- serverless ------------------------------------------------------------------------

    def _sleep_idle(self, gen: _Generation, now: float) -> None:
        """Workers that said they are idle leave (they drain themselves); with none left
        the endpoint sleeps: the listening socket is polled for the next connection."""
        for child in [c for c in gen.children if c.idle]:
            gen.children.remove(child)
            self._asleep.add(child.index)
            self._retire(child, now)
            self._say(f"worker {child.index} (pid {child.pid}) idle for {gen.spec.serverless.idle_s:g} s: released")  # type: ignore[union-attr]
        if not gen.children and self._asleep and gen.ever_ready and not self._polling:
            self._poll(True)
            self._say("serverless: no worker holds the model; the next request starts one")

    def _poll(self, on: bool) -> None:
        if on == self._polling or self.sock is None:
            return
        if on:
            self._sel.register(self.sock, selectors.EVENT_READ, _LISTEN)
        else:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self.sock)
        self._polling = on
        self._dirty = True

    def _wake(self) -> None:
        """A connection waits in the socket's queue of a sleeping endpoint: a cold start."""
        since = time.time()
        self._poll(False)
        current = self.current
        if current is None or self._stop:
            return
        self.wakes += 1
        asleep, self._asleep = sorted(self._asleep), set()
        held = {c.index for c in current.children}
        for index in asleep:
            if index not in held:
                current.children.append(self._spawn(current, index, cold_since=since))
        self._say(f"serverless: a request woke the endpoint; starting {len(asleep)} worker(s)")

    def _retire(self, child: _Child, now: float, sig: int = signal.SIGTERM) -> None:
        """Drain a worker: SIGTERM keeps idle kept-alive connections until their next request
        (others take over); SIGINT, when the whole endpoint stops, closes them at once."""
        child.retiring_since = now
        self.retiring.append(child)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
        self._dirty = True

    def _drop_pending(self) -> None:
        pending, self.pending = self.pending, None
        if pending is None:
            return
        for child in pending.children:
            _kill(child.pid)
            child.proc.wait()
            self._gone(child)
        self._dirty = True

    def reload(self) -> None:
        """Serve the newest ``gen-<n>.json`` blue/green (what SIGHUP does)."""
        assert self.current is not None
        found = newest_spec(self.run_dir)
        if found is None:
            return
        number, path = found
        if number <= self.current.number or (self.pending is not None and number == self.pending.number):
            return
        try:
            spec = EndpointSpec.model_validate_json(path.read_bytes())
        except ValueError as exc:
            self.error = f"{path.name} is not a valid endpoint spec: {exc}"
            self._say(self.error)
            self._dirty = True
            return
        bound = self.current.spec
        if (spec.host, spec.port or self.port) != (bound.host, bound.port or self.port):
            self._say(f"{path.name} asks for {spec.host}:{spec.port}; the endpoint keeps its socket {bound.host}:{self.port} (a new address needs a new endpoint)")
        self._drop_pending()
        gen = _Generation(number, spec, path)
        gen.children = [self._spawn(gen, i) for i in range(spec.workers)]
        self.pending = gen
        self._say(f"generation {number}: starting {spec.workers} worker(s)")

    def _stopping(self, now: float) -> bool:
        if self._stop_since is None:
            self._stop_since = now
            self.status = "stopping"
            for gen in (self.pending, self.current):
                for child in gen.children if gen is not None else ():
                    self._retire(child, now, signal.SIGINT)
                if gen is not None:
                    gen.children = []
            self._write_state()
        if self._stop > 1:
            for child in self.retiring:
                _kill(child.pid)
        self._reap(now)
        return not self.retiring

    def _teardown(self) -> None:
        for gen in (self.pending, self.current):
            for child in gen.children if gen is not None else ():
                _kill(child.pid)
                self.retiring.append(child)
        for child in self.retiring:
            _kill(child.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
            self._gone(child)
        self.retiring = []
        if self.ship is not None:
            self._ship()
        if self.sock is not None:
            self.sock.close()
        if self.status != "failed":
            self.status = "stopped"
        if self._wake_w >= 0:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        self._write_state()

    # -- outputs ---------------------------------------------------------------------------

    def _ship(self) -> None:
        from kiln.serving._capture import ship

        self._last_ship = time.monotonic()
        for gen in (self.current, self.pending):
            if gen is None or not gen.spec.capture.enabled:
                continue
            try:
                ship(self.run_dir, self.ship, endpoint=gen.spec.name, prefix=gen.spec.capture.prefix)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - the store is down: files wait in the spool
                self._say(f"capture files wait in the spool: {type(exc).__name__}: {exc}")
            break

    def _write_state(self) -> None:
        self._dirty = False
        workers = []
        for gen, role in ((self.current, "serving"), (self.pending, "starting")):
            for c in gen.children if gen is not None else ():
                workers.append({"pid": c.pid, "index": c.index, "generation": c.generation, "ready": c.ready, "role": role})
        workers += [{"pid": c.pid, "index": c.index, "generation": c.generation, "ready": c.ready, "role": "draining"} for c in self.retiring]
        state = {
            "pid": os.getpid(), "port": self.port, "url": self.url,
            "generation": self.current.number if self.current else 0,
            "pending_generation": self.pending.number if self.pending else None,
            "workers": workers, "ready": self.status in ("ready", "updating"), "status": self.status,
            "asleep": self._polling, "wakes": self.wakes,
            "error": self.error, "updated_at": time.time(),
        }
        path = self.run_dir / "state.json"
        tmp = path.with_name(f".state.json.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)

    def _say(self, message: str) -> None:
        out = self.log if self.log is not None else sys.stderr
        with contextlib.suppress(OSError, ValueError):
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} kiln supervisor: {message}\n")
            out.flush()


def _drain_s() -> float:
    from kiln.serving._worker import DRAIN_S

    return DRAIN_S


def _kill(pid: int) -> None:
    """SIGKILL a worker and everything it started (its session's process group)."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.serving._supervisor")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--no-ship", action="store_true", help="leave capture files in the spool")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    ship = None
    if not args.no_ship:
        store: Any = None

        def ship(key: str, path: Path) -> Any:
            nonlocal store
            if store is None:
                from kiln.core.config import load_settings
                from kiln.core.storage import open_store

                settings = load_settings()
                store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url)
            return store.put_file(key, path)

    with open(run_dir / "supervisor.log", "a", buffering=1) as log:
        from kiln.serving._multi import workspace_resolver

        supervisor = Supervisor(run_dir, log=log, ship=ship, resolve=workspace_resolver())
        return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
