"""The server's monitor scheduler: at start and every half minute, monitors whose slot has
come run (slots missed while no server ran are recorded as Missed). Started by the FastAPI
app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from kiln.core.context import Context
from kiln.core.periodic import every, watcher_lifespan

__all__ = ["lifespan"]

log = logging.getLogger("kiln.monitoring")
SYSTEM = Context(actor="system:monitors", role="admin", source="server", request_id="monitor-scheduler")
INTERVAL_S = 30.0


def _tick(ws: Any) -> None:
    from kiln.monitoring._service import MonitoringService

    MonitoringService(ws, SYSTEM).tick()


def _loop(ws: Any, stop: threading.Event) -> None:
    every(ws, stop, INTERVAL_S, [("monitor scheduler", _tick)], log)


lifespan = watcher_lifespan("kiln-monitor-scheduler", _loop)
