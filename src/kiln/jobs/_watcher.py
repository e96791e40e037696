"""The server's job watcher: at start and every few seconds, jobs whose runner is gone are
settled (a Running one Failed with the reason, a Pending one given a new runner), so a
restart of the server or of its host never leaves a job Running or a queued job waiting
forever. Started by the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from kiln.core.context import Context
from kiln.core.periodic import every, watcher_lifespan

__all__ = ["lifespan"]

log = logging.getLogger("kiln.jobs")
SYSTEM = Context(actor="system:jobs", role="admin", source="server", request_id="jobs-watcher")
INTERVAL_S = 10.0


def _loop(ws: Any, stop: threading.Event) -> None:
    from kiln.jobs._service import JobService

    every(ws, stop, INTERVAL_S, [("job watcher: reconcile", lambda w: JobService(w, SYSTEM).reconcile())], log)


lifespan = watcher_lifespan("kiln-job-watcher", _loop)
