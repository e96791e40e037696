"""The server's metrics loop: every ``metrics_interval_s`` (60 s by default), collect the
endpoints' and jobs' metrics and the endpoints' logs, evaluate every alarm, and enforce
retention. Started by the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from kiln.core.periodic import every, watcher_lifespan

__all__ = ["lifespan", "one_round"]

log = logging.getLogger("kiln.metrics")


def _collect(ws: Any) -> Any:
    from kiln.metrics._collect import collect

    return collect(ws)


def _evaluate(ws: Any) -> Any:
    from kiln.metrics._alarms import SYSTEM, AlarmService

    return AlarmService(ws, SYSTEM).evaluate()


def _retention(ws: Any) -> Any:
    from kiln.metrics._retention import enforce_retention

    return enforce_retention(ws)


TASKS = [("metrics: collect", _collect), ("alarms: evaluate", _evaluate), ("metrics: retention", _retention)]


def one_round(ws: Any) -> None:
    """Every task once, in order, as the loop runs them."""
    for _, task in TASKS:
        task(ws)


def _loop(ws: Any, stop: threading.Event) -> None:
    every(ws, stop, max(5.0, ws.settings.metrics_interval_s), TASKS, log)  # a 0 must not spin


lifespan = watcher_lifespan("kiln-metrics-watcher", _loop)
