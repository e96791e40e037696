"""Retention by age: per-minute rows after ``metrics_raw_days``, hourly roll-ups and idle
series after ``metrics_hourly_days``, endpoint log lines and the log lines of jobs that
ended, and alarm history, after ``logs_retention_days``. Run by the server every collection round and by ``kiln gc``-like
callers through :func:`enforce_retention`."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from kiln.metrics import _tables as t
from kiln.metrics._base import HOUR, MINUTE

__all__ = ["enforce_retention"]


def enforce_retention(ws: Any, *, now: float | None = None) -> dict[str, int]:
    """Delete what has aged out; returns how many rows of each kind went."""
    from kiln.jobs import _tables as jt

    now = time.time() if now is None else now
    s = ws.settings
    raw_cut, hour_cut, log_cut = now - s.metrics_raw_days * 86_400, now - s.metrics_hourly_days * 86_400, now - s.logs_retention_days * 86_400
    p = t.points
    with ws.db.write() as conn:
        out = {
            "minute_rows": conn.execute(p.delete().where(p.c.resolution == MINUTE, p.c.bucket < raw_cut)).rowcount,
            "hour_rows": conn.execute(p.delete().where(p.c.resolution == HOUR, p.c.bucket < hour_cut)).rowcount,
        }
        idle = sa.select(t.series.c.id).where(t.series.c.last_at < hour_cut)
        conn.execute(p.delete().where(p.c.series_id.in_(idle)))
        out["series"] = conn.execute(t.series.delete().where(t.series.c.last_at < hour_cut)).rowcount
        out["endpoint_log_lines"] = conn.execute(t.log_lines.delete().where(t.log_lines.c.at < log_cut)).rowcount
        # Alarm history is kept as long as logs (CloudWatch keeps 30 days); the audit trail keeps every change.
        out["alarm_history"] = conn.execute(t.alarm_history.delete().where(t.alarm_history.c.at < log_cut)).rowcount
        ended = sa.select(jt.jobs.c.name).where(jt.jobs.c.ended_at.is_not(None), jt.jobs.c.ended_at < log_cut)
        out["job_log_lines"] = conn.execute(jt.job_logs.delete().where(jt.job_logs.c.job.in_(ended), jt.job_logs.c.at < log_cut)).rowcount
    return out
