"""The server's job watcher: at start and every few seconds, jobs whose runner is gone are
settled (a Running one Failed with the reason, a Pending one given a new runner), so a
restart of the server or of its host never leaves a job Running or a queued job waiting
forever. Started by the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kiln.core.context import Context

__all__ = ["lifespan"]

log = logging.getLogger("kiln.jobs")
SYSTEM = Context(actor="system:jobs", role="admin", source="server", request_id="jobs-watcher")
INTERVAL_S = 10.0


def _loop(ws: Any, stop: threading.Event) -> None:
    from kiln.jobs._service import JobService

    while True:
        try:
            JobService(ws, SYSTEM).reconcile()
        except Exception:  # noqa: BLE001 - a database hiccup must not end the watcher
            log.warning("job watcher: reconcile failed", exc_info=True)
        if stop.wait(INTERVAL_S):
            return


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(app.state.workspace, stop), name="kiln-job-watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
