"""The server's stream worker: pulls the sources of streams that follow them, flushes
streams that are due, and trims streams past retention.

Started by the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``); it
runs in one daemon thread so a slow flush never blocks a request. A source that
fails is retried with exponential backoff (up to a minute), and the error is
kept on the stream (``last_pull_error``) until a pull works again; pulls are
exactly-once whichever worker or process makes them (see ``_nats``), so a
restarted worker carries on where the last one stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import Conflict, KilnError
from kiln.core.workspace import Workspace
from kiln.lake.streams import _tables as t
from kiln.lake.streams._service import StreamService

__all__ = ["StreamWorker", "backoff_s", "due_streams", "lifespan", "run_due", "trimmable_streams"]

log = logging.getLogger("kiln.streams")

SYSTEM = Context(actor="system:streams", role="admin", source="server", request_id="streams-worker")
MAX_BACKOFF_S = 60.0
PULL_ROUNDS = 10  # pulls of a full batch in a row before the round moves on
TRIM_INTERVAL_S = 60.0


def backoff_s(failures: int) -> float:
    """How long the worker waits after ``failures`` failed pulls in a row: 0.5 s, 1 s, 2 s... up to a minute."""
    return 0.0 if failures <= 0 else min(MAX_BACKOFF_S, 0.5 * 2.0 ** min(failures - 1, 16))


def due_streams(ws: Workspace, *, now: float | None = None) -> tuple[list[str], list[str]]:
    """(following streams due a pull — not backing off —, streams due to flush by size or age)."""
    now = time.time() if now is None else now
    s, r = t.streams, t.records
    with ws.db.read() as conn:
        rows = conn.execute(sa.select(
            s.c.id, s.c.name, s.c.source, s.c.follow, s.c.last_pull_at, s.c.pull_failures,
            s.c.last_seq, s.c.flushed_seq, s.c.flush_rows, s.c.flush_interval_s,
        )).all()
        sources = [row.name for row in rows if row.source and row.follow and now >= row.last_pull_at + backoff_s(row.pull_failures)]
        due = []
        for row in rows:
            pending = row.last_seq - row.flushed_seq
            if pending <= 0:
                continue
            if pending >= row.flush_rows:
                due.append(row.name)
                continue
            oldest = conn.execute(sa.select(r.c.time).where(r.c.stream_id == row.id, r.c.seq > row.flushed_seq).order_by(r.c.seq).limit(1)).scalar()
            if oldest is not None and now - oldest >= row.flush_interval_s:
                due.append(row.name)
    return sources, due


def trimmable_streams(ws: Workspace, *, now: float | None = None) -> list[str]:
    """Streams whose oldest record is past retention and safe to trim."""
    from kiln.lake.streams._retention import trimmable

    with ws.db.read() as conn:
        rows = conn.execute(sa.select(t.streams)).all()
        return [row.name for row in rows if trimmable(conn, row, now=now)]


def run_due(ws: Workspace, ctx: Context = SYSTEM, *, trim: bool = False) -> dict[str, Any]:
    """One round: pull each following source (until it runs dry, or PULL_ROUNDS batches),
    flush every stream that is due, and with ``trim`` trim those past retention."""
    svc = StreamService(ws, ctx)
    sources, _ = due_streams(ws)
    done: dict[str, Any] = {"pulled": {}, "pull_errors": {}, "flushed": {}, "trimmed": {}}
    for name in sources:
        try:
            for _ in range(PULL_ROUNDS):
                got = svc.pull(name, max_messages=1000, timeout_s=0.2)
                done["pulled"][name] = done["pulled"].get(name, 0) + got.added
                if got.fetched < 1000:
                    break
        except KilnError as exc:  # kept on the stream by the pull; the backoff starts from it
            done["pull_errors"][name] = exc.message
            log.warning("stream %s: pull failed: %s", name, exc.message)
    _, due = due_streams(ws)
    for name in due:
        try:
            done["flushed"][name] = svc.flush(name, wait_s=0).rows
        except Conflict:
            pass  # another process is flushing it
        except KilnError as exc:
            log.warning("stream %s: flush failed: %s", name, exc.message)
    for name in trimmable_streams(ws) if trim else []:
        try:
            result = svc.trim(name)
            done["trimmed"][name] = result.trimmed
        except KilnError as exc:
            log.warning("stream %s: trim failed: %s", name, exc.message)
    return done


class StreamWorker:
    """Calls :func:`run_due` every ``interval_s`` seconds until stopped; trims every ``trim_interval_s``."""

    def __init__(self, ws: Workspace, *, interval_s: float = 1.0, trim_interval_s: float = TRIM_INTERVAL_S) -> None:
        self.ws = ws
        self.interval_s = interval_s
        self.trim_interval_s = trim_interval_s
        self._next_trim = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiln-streams", daemon=True)

    def start(self) -> StreamWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            trim = time.monotonic() >= self._next_trim
            if trim:
                self._next_trim = time.monotonic() + self.trim_interval_s
            try:
                run_due(self.ws, trim=trim)
            except Exception:  # noqa: BLE001 - the worker must outlive any one failure
                log.exception("stream worker round failed")


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run the stream worker for as long as the app serves."""
    worker = StreamWorker(app.state.workspace).start()
    try:
        yield
    finally:
        worker.stop()
