"""The server's endpoint watcher: at start and every few seconds, endpoints are reconciled
(a dead supervisor of an endpoint that should run is restarted, so endpoints come back
after a crash or a server restart; Creating and Updating ones settle) and each running
endpoint's metric counters are persisted per variant, for the UI and alarms. Started by
the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context

__all__ = ["lifespan", "persist_metrics"]

log = logging.getLogger("kiln.serving")
SYSTEM = Context(actor="system:endpoints", role="admin", source="server", request_id="endpoints-watcher")
INTERVAL_S = 10.0
# Datapoints older than this are pruned (the counters are cumulative: a datapoint a minute is plenty).
KEEP_S = 14 * 86_400.0


def persist_metrics(ws: Any, *, now: float | None = None) -> int:
    """Store one datapoint per variant of every running endpoint from its workers' counters
    (``kiln.serving._metrics.snapshot``); returns how many were written."""
    from kiln.serving import _tables as t
    from kiln.serving._service import endpoint_dir

    try:
        from kiln.serving._metrics import snapshot
    except ImportError:  # the serving processes' metrics module is not there yet
        return 0
    now = time.time() if now is None else now
    with ws.db.read() as conn:
        names = [r.name for r in conn.execute(sa.select(t.endpoints.c.name).where(t.endpoints.c.state.in_(("InService", "Updating"))))]
    rows = []
    for name in names:
        try:
            per_variant = snapshot(endpoint_dir(ws.settings.home, name))
        except Exception:  # noqa: BLE001 - a half-written counter file must not stop the others
            log.warning("endpoint watcher: no metrics for %s", name, exc_info=True)
            continue
        for variant, values in (per_variant or {}).items():
            rows.append({"endpoint": name, "variant": str(variant)[:64], "at": now, "values": orjson.dumps(values, default=str).decode()})
    with ws.db.write() as conn:
        if rows:
            conn.execute(t.endpoint_metrics.insert(), rows)
        conn.execute(t.endpoint_metrics.delete().where(t.endpoint_metrics.c.at < now - KEEP_S))
    return len(rows)


def _loop(ws: Any, stop: threading.Event) -> None:
    from kiln.serving._service import EndpointService

    while True:
        try:
            EndpointService(ws, SYSTEM).reconcile()
        except Exception:  # noqa: BLE001 - a database hiccup must not end the watcher
            log.warning("endpoint watcher: reconcile failed", exc_info=True)
        try:
            persist_metrics(ws)
        except Exception:  # noqa: BLE001
            log.warning("endpoint watcher: metrics failed", exc_info=True)
        if stop.wait(INTERVAL_S):
            return


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(app.state.workspace, stop), name="kiln-endpoint-watcher", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
