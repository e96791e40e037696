"""A serving worker process: ``python -m kiln.serving._worker --fd FD --spec PATH --index I``.

It loads every variant of the spec (and its shadow) as a Servable, then serves
:class:`~kiln.serving._app.ServingApp` on the listening socket it inherited as ``FD``
(uvicorn on uvloop + httptools, no lifespan, no access log). It tells its supervisor
how it is doing in lines on its stdout (the protocol keeps the pipe; the model's own
prints go to stderr):

- ``ready`` once every variant loaded and the socket is served;
- ``failed <message>`` when a variant cannot load (the process then exits 3);
- ``recycle`` when a model ran past the request timeout: start a replacement, then
  drain me (a thread that hangs cannot be stopped from inside);
- ``idle`` (serverless) when it answered nothing for the spec's ``idle_s``: it then
  drains and exits, and the supervisor starts no replacement until a request comes.

SIGTERM drains (blue/green, recycling): the worker stops accepting (the other workers
share the accept queue), answers every further request on a kept-alive connection with
``Connection: close``, and exits once its connections are gone (idle ones close after
the keep-alive timeout) or after :data:`DRAIN_S`. SIGINT (the endpoint stops) closes
idle connections at once and exits when the requests in flight are answered.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import uvicorn

__all__ = ["DRAIN_S", "KEEP_ALIVE_S", "main"]

DRAIN_S = 30.0
KEEP_ALIVE_S = 5
# A worker that asked to be recycled drains itself after this long if no one replaced it.
RECYCLE_GRACE_S = 60.0


def _notify(pipe: IO[bytes] | None, line: str) -> None:
    if pipe is None:
        return
    try:
        pipe.write(line.encode("utf-8", "replace").replace(b"\n", b" ")[:4000] + b"\n")
        pipe.flush()
    except OSError:
        pass


def _load(spec: Any, metrics: Any) -> dict[str, Any]:
    from kiln.serving._runtime import Servable

    servables: dict[str, Any] = {}
    for variant in (*spec.variants, *([spec.shadow] if spec.shadow else [])):
        start = time.perf_counter_ns()
        servables[variant.name] = Servable.load(
            variant.folder, trusted=variant.trusted, trusted_types=tuple(variant.trusted_types),
            fast_path=variant.fast_path, name=variant.model_ref.partition("@")[0] or variant.name,
        )
        counters = metrics.variant(variant.name)
        counters.cold_starts += 1
        counters.load_us += (time.perf_counter_ns() - start) // 1000
    return servables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.serving._worker")
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--spec", required=True, help="the endpoint spec (gen-N.json)")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--models-fd", type=int, default=None, help="multi-model: this worker's end of the channel to its supervisor")
    parser.add_argument("--cold-since", type=float, default=None, help="serverless: when the request that woke the endpoint was seen (epoch s)")
    args = parser.parse_args(argv)

    # The protocol keeps its own copy of stdout; the model's prints go to stderr.
    pipe: IO[bytes] | None = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from kiln.core.errors import KilnError
    from kiln.serving._metrics import WorkerMetrics
    from kiln.serving._spec import EndpointSpec

    # Stopped while loading: nothing to drain, leave quietly (uvicorn installs its own handlers later).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: os._exit(0))
    spec = EndpointSpec.model_validate_json(Path(args.spec).read_bytes())
    metrics = WorkerMetrics(spec.name, spec.run_dir)
    try:
        servables = _load(spec, metrics)
    except KilnError as exc:
        _notify(pipe, f"failed {exc.message}")
        print(f"kiln serving worker {args.index}: {exc.message}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - the model's own loader failed: say so, exit
        _notify(pipe, f"failed {type(exc).__name__}: {exc}")
        print(f"kiln serving worker {args.index}: the model failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    # Everything loaded so far (the framework, the model) lives as long as the worker: out of
    # the collector's sight, so a full collection never walks it in the middle of a request.
    gc.collect()
    gc.freeze()
    sock = socket.socket(fileno=args.fd)  # family and type read from the descriptor
    channel = None
    if args.models_fd is not None:
        from kiln.serving._multi import Channel

        channel = Channel(args.models_fd)
    serve(spec, servables, sock, metrics=metrics, pipe=pipe, index=args.index, cold_since=args.cold_since, channel=channel)
    # Threads stuck in a model cannot be joined: leave without waiting for them.
    sys.stderr.flush()
    os._exit(0)


def serve(
    spec: Any, servables: dict[str, Any], sock: socket.socket, *, metrics: Any, pipe: IO[bytes] | None, index: int = 0,
    cold_since: float | None = None, channel: Any = None,
) -> None:
    from kiln.serving._app import ServingApp
    from kiln.serving._capture import Capture

    capture = None
    if spec.capture.enabled and spec.run_dir:
        capture = Capture(spec.capture, endpoint=spec.name, run_dir=spec.run_dir, worker=f"w{index}-{os.getpid()}")
    server: _Server | None = None

    def on_stuck() -> None:
        _notify(pipe, "recycle")
        if server is not None:
            server.recycle_at = time.monotonic() + RECYCLE_GRACE_S

    app = ServingApp(spec, servables, port=sock.getsockname()[1], metrics=metrics, capture=capture, on_stuck=on_stuck, channel=channel)
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", lifespan="off", access_log=False, log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S, server_header=False, proxy_headers=False, timeout_graceful_shutdown=int(DRAIN_S),
    )
    server = _Server(config, app, pipe)
    server.cold_since = cold_since
    server.idle_s = spec.serverless.idle_s if spec.serverless is not None else None
    threading.Thread(target=_watchdog, args=(app, pipe, spec.timeout_s), name="kiln-watchdog", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        app.close()
        metrics.write(force=True)


def _watchdog(app: Any, pipe: IO[bytes] | None, timeout_s: float) -> None:
    """An inline call that holds the event loop past the request timeout cannot be answered
    or interrupted: ask to be recycled (the supervisor starts a replacement, then drains
    this worker and, if its loop never comes back, kills it)."""
    limit_ns = int(timeout_s * 1e9)
    while not app.stuck:
        time.sleep(min(1.0, timeout_s / 4))
        since = app.inline_since
        if since and time.perf_counter_ns() - since > limit_ns:
            app.stuck = True
            print(f"kiln serving worker: a model call has held the event loop for more than {timeout_s:g} s; asking to be replaced", file=sys.stderr)
            _notify(pipe, "recycle")


class _Server(uvicorn.Server):
    """uvicorn's server, with a drain that lets kept-alive clients finish cleanly."""

    def __init__(self, config: Any, app: Any, pipe: IO[bytes] | None) -> None:
        super().__init__(config)
        self.app = app
        self.pipe = pipe
        self.recycle_at: float | None = None
        self.quick = False
        self._ticker: asyncio.Task[None] | None = None
        self.cold_since: float | None = None
        self.idle_s: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            if self.cold_since is not None:
                waited = max(0, int((time.time() - self.cold_since) * 1e6))
                for counters in self.app.metrics.variants.values():
                    counters.cold_start_us += waited
            self.app.metrics.write(force=True)  # the cold start counts from the first moment
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
            _notify(self.pipe, "ready")

    async def _tick(self) -> None:
        """Once a second: the metrics file, capture files to close, a recycle past its grace,
        and (serverless) whether the worker has been idle long enough to leave."""
        seen, active = -1, time.monotonic()
        while True:
            await asyncio.sleep(1.0 if self.idle_s is None else min(1.0, self.idle_s / 4))
            if self.idle_s is not None and not self.should_exit:
                stamp = self.app.metrics._stamp()
                now = time.monotonic()
                if stamp != seen or self.server_state.tasks:
                    seen, active = stamp, now
                elif now - active >= self.idle_s:
                    _notify(self.pipe, "idle")
                    self.should_exit = True
            try:
                self.app.metrics.write()
                if self.app.capture is not None:
                    self.app.capture.tick()
            except OSError as exc:
                print(f"kiln serving worker: {exc}", file=sys.stderr)
            if self.recycle_at is not None and time.monotonic() > self.recycle_at:
                self.should_exit = True

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.quick = self.quick or sig == signal.SIGINT
        super().handle_exit(sig, frame)
        # uvicorn raises the signal again once it shut down; a drained worker just exits 0.
        self._captured_signals.clear()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # On SIGTERM (blue/green, recycling), unlike uvicorn's own shutdown, idle
        # kept-alive connections are not cut: a client may be sending on one right now
        # and the other workers are there to take it. Each gets its next answer with
        # "Connection: close", or closes after the keep-alive timeout. On SIGINT (the
        # whole endpoint stops) idle connections close at once; requests in flight finish.
        self.app.draining = True
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        loop = asyncio.get_running_loop()
        if self.quick:
            for connection in list(self.server_state.connections):
                connection.shutdown()
        deadline = loop.time() + DRAIN_S
        while self.server_state.connections and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.server_state.connections):
            connection.shutdown()
        end = loop.time() + 1.0
        while self.server_state.tasks and not self.force_exit and loop.time() < end:
            await asyncio.sleep(0.05)
        if self._ticker is not None:
            self._ticker.cancel()


if __name__ == "__main__":
    sys.exit(main())
