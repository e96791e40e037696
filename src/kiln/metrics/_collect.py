"""Collectors: the platform's own metrics into the store, off the serving hot path.

- Endpoints (namespace ``kiln/endpoints``, dimensions endpoint and variant): the workers
  already count requests, errors and latency histograms in memory and files
  (:mod:`kiln.serving._metrics`); each collection reads their cumulative sum, stores the
  difference since the last one (Invocations, Invocation4XXErrors, Invocation5XXErrors,
  ModelLatency and OverheadLatency in microseconds) and moves the cursor in the same
  transaction, so a killed collector neither loses nor counts twice. Latency percentiles
  come from the workers' histogram buckets (each bucket's values stored at its geometric
  middle), so they are as fine as those buckets.
- Jobs (namespace ``kiln/jobs``, dimensions kind and state): each job that ended since the
  last collection adds one ``JobDuration`` (seconds) and one ``Jobs`` (count) datum at its end time.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.workspace import Workspace
from kiln.metrics import _tables as t
from kiln.metrics._models import MetricDatum
from kiln.metrics._service import write_data, write_with_retry

__all__ = ["collect", "collect_endpoints", "collect_jobs"]

ENDPOINTS_NS = "kiln/endpoints"
JOBS_NS = "kiln/jobs"
_COUNTERS = (("invocations", "Invocations"), ("errors_4xx", "Invocation4XXErrors"), ("errors_5xx", "Invocation5XXErrors"))
_LATENCIES = (("model_latency_us", "ModelLatency"), ("overhead_latency_us", "OverheadLatency"))


def _cursor(conn: Any, key: str) -> tuple[Any, dict[str, Any] | None]:
    q = sa.select(t.cursors).where(t.cursors.c.source == key)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    return row, (orjson.loads(row.state) if row else None)


def _save_cursor(conn: Any, row: Any, key: str, state: Any, now: float) -> None:
    text = orjson.dumps(state).decode()
    if row is None:
        conn.execute(t.cursors.insert().values(source=key, state=text, at=now))
    else:
        conn.execute(t.cursors.update().where(t.cursors.c.source == key).values(state=text, at=now))


def _middles() -> list[float]:
    from kiln.serving._metrics import BUCKETS_US

    bounds = [0.0, *BUCKETS_US]
    mids = [b / 2 if a == 0 else math.sqrt(a * b) for a, b in zip(bounds, bounds[1:], strict=False)]
    return [*mids, BUCKETS_US[-1] * 2.0]


def _delta(now_v: float, before: float | None) -> float:
    if before is None or now_v < before:  # first look, or the counters restarted
        return now_v
    return now_v - before


def collect_endpoints(ws: Workspace, *, now: float | None = None) -> int:
    """Store what each running endpoint's workers counted since the last collection; returns data points written."""
    from kiln.serving import _tables as st
    from kiln.serving._metrics import snapshot
    from kiln.serving._service import endpoint_dir

    now = time.time() if now is None else now
    with ws.db.read() as conn:
        names = [r.name for r in conn.execute(sa.select(st.endpoints.c.name).where(st.endpoints.c.state.in_(("InService", "Updating"))))]
    written = 0
    mids = _middles()
    for name in names:
        try:
            per_variant = snapshot(endpoint_dir(ws.settings.home, name))
        except Exception:  # noqa: BLE001 - a half-written counter file must not stop the others
            continue
        for variant, counters in per_variant.items():
            written += write_with_retry(ws, lambda conn, v=variant, c=counters: _store_variant(conn, name, str(v)[:64], c, mids, now))
    return written


def _store_variant(conn: Any, name: str, variant: str, counters: dict[str, Any], mids: list[float], now: float) -> int:
    key = f"endpoint/{name}/{variant}"
    row, before = _cursor(conn, key)
    before = before or {}
    dims = {"endpoint": name, "variant": variant}
    data = []
    state: dict[str, Any] = {}
    for field, metric in _COUNTERS:
        value = float(counters.get(field, 0))
        state[field] = value
        data.append(MetricDatum(name=metric, value=_delta(value, before.get(field)), dimensions=dims, timestamp=now, unit="Count"))
    for field, metric in _LATENCIES:
        buckets = [float(x) for x in (counters.get(field) or {}).get("buckets", [])]
        state[field] = buckets
        old = before.get(field) or []
        reset = len(old) != len(buckets) or any(b < a for a, b in zip(old, buckets, strict=False))
        deltas = buckets if reset else [b - a for a, b in zip(old, buckets, strict=False)]
        pairs = [(mids[i], c) for i, c in enumerate(deltas) if c > 0 and i < len(mids)]
        if pairs:
            data.append(MetricDatum(name=metric, values=[v for v, _ in pairs], counts=[c for _, c in pairs], dimensions=dims, timestamp=now, unit="Microseconds"))
    write_data(conn, ENDPOINTS_NS, data, now=now)
    _save_cursor(conn, row, key, state, now)
    return len(data)


def collect_jobs(ws: Workspace, *, now: float | None = None) -> int:
    """Store a duration and a count for each job that ended since the last collection."""
    from kiln.jobs import _tables as jt

    now = time.time() if now is None else now
    oldest = now - ws.settings.metrics_raw_days * 86_400

    def store(conn: Any) -> int:
        row, state = _cursor(conn, "jobs")
        since = float((state or {}).get("ended_at", oldest))
        seen = set((state or {}).get("names", []))
        j = jt.jobs
        jobs = conn.execute(
            sa.select(j.c.name, j.c.kind, j.c.state, j.c.started_at, j.c.ended_at)
            .where(j.c.ended_at.is_not(None), j.c.ended_at >= since).order_by(j.c.ended_at).limit(5000)
        ).all()
        data = []
        last, names = since, set(seen)
        for job in jobs:
            if job.ended_at == since and job.name in seen:
                continue
            dims = {"kind": job.kind, "state": job.state}
            data.append(MetricDatum(name="Jobs", value=1.0, dimensions=dims, timestamp=job.ended_at, unit="Count"))
            if job.started_at is not None:
                data.append(MetricDatum(name="JobDuration", value=max(0.0, job.ended_at - job.started_at), dimensions=dims, timestamp=job.ended_at, unit="Seconds"))
            if job.ended_at > last:
                last, names = job.ended_at, set()
            names.add(job.name)
        if data:
            write_data(conn, JOBS_NS, data, now=now)
        _save_cursor(conn, row, "jobs", {"ended_at": last, "names": sorted(names)}, now)
        return len(data)

    return int(write_with_retry(ws, store) or 0)


def collect(ws: Workspace, *, now: float | None = None) -> dict[str, int]:
    """One collection round: endpoints' counters, ended jobs and endpoints' log files."""
    from kiln.metrics._logs import ingest_endpoint_log
    from kiln.serving import _tables as st

    out = {"endpoint_points": collect_endpoints(ws, now=now), "job_points": collect_jobs(ws, now=now), "log_lines": 0}
    with ws.db.read() as conn:
        names = [r.name for r in conn.execute(sa.select(st.endpoints.c.name))]
    for name in names:
        out["log_lines"] += ingest_endpoint_log(ws, name, now=now)
    return out
