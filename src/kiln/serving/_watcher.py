"""The server's endpoint watcher: at start and every few seconds, endpoints are reconciled
(a dead supervisor of an endpoint that should run is restarted, so endpoints come back
after a crash or a server restart; Creating and Updating ones settle) and each running
endpoint's metric counters are persisted per variant, for the UI and alarms. Started by
the FastAPI app's lifespan (``kiln.server.app.LIFESPAN_HOOKS``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.periodic import every, watcher_lifespan

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
    from kiln.serving._metrics import snapshot
    from kiln.serving._service import endpoint_dir

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

    every(ws, stop, INTERVAL_S, [("endpoint watcher: reconcile", lambda w: EndpointService(w, SYSTEM).reconcile()),
                                 ("endpoint watcher: metrics", persist_metrics)], log)


lifespan = watcher_lifespan("kiln-endpoint-watcher", _loop)
