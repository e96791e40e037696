"""The server's stream worker: pulls sources and flushes streams that are due.

Started by the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``); it
runs in one daemon thread so a slow flush never blocks a request.
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

__all__ = ["StreamWorker", "due_streams", "lifespan", "run_due"]

log = logging.getLogger("kiln.streams")

SYSTEM = Context(actor="system:streams", role="admin", source="server", request_id="streams-worker")


def due_streams(ws: Workspace, *, now: float | None = None) -> tuple[list[str], list[str]]:
    """(streams with a source to pull, streams due to flush by size or age)."""
    now = time.time() if now is None else now
    s, r = t.streams, t.records
    with ws.db.read() as conn:
        rows = conn.execute(sa.select(s.c.id, s.c.name, s.c.source, s.c.last_seq, s.c.flushed_seq, s.c.flush_rows, s.c.flush_interval_s)).all()
        sources = [row.name for row in rows if row.source]
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


def run_due(ws: Workspace, ctx: Context = SYSTEM) -> dict[str, Any]:
    """One round: pull every source once, then flush every stream that is due."""
    svc = StreamService(ws, ctx)
    sources, _ = due_streams(ws)
    done: dict[str, Any] = {"pulled": {}, "flushed": {}}
    for name in sources:
        try:
            done["pulled"][name] = svc.pull(name, max_messages=1000, timeout_s=0.2).added
        except KilnError as exc:
            log.warning("stream %s: pull failed: %s", name, exc.message)
    _, due = due_streams(ws)
    for name in due:
        try:
            done["flushed"][name] = svc.flush(name, wait_s=0).rows
        except Conflict:
            pass  # another process is flushing it
        except KilnError as exc:
            log.warning("stream %s: flush failed: %s", name, exc.message)
    return done


class StreamWorker:
    """Calls :func:`run_due` every ``interval_s`` seconds until stopped."""

    def __init__(self, ws: Workspace, *, interval_s: float = 1.0) -> None:
        self.ws = ws
        self.interval_s = interval_s
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
            try:
                run_due(self.ws)
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
