"""The API server's ``GET /metrics``, in Prometheus' text exposition format (0.0.4):

- every running endpoint's counters and latency histograms, summed over its workers, as the
  endpoint's own ``/metrics`` shows them (``kiln_invocations_total{endpoint,variant}``...);
- the last complete minute of each stored series as gauges
  (``kiln_metric_minute_{count,sum,min,max}{namespace,metric,<dimensions>}``), so monitor
  results and users' metrics put through ``/v1/metrics`` reach Prometheus too;
- each alarm's state (``kiln_alarm_state{alarm,state}`` 1 for the current state, else 0).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.metrics import _tables as t
from kiln.metrics._alarms import STATES
from kiln.metrics._base import MINUTE

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_RESERVED = {"namespace", "metric", "alarm", "state", "le", "quantile"}
MAX_SERIES = 10_000


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_name(name: str) -> str:
    clean = _LABEL.sub("_", name)
    if clean[:1].isdigit() or clean in _RESERVED or clean.startswith("__"):
        clean = "dim_" + clean
    return clean


def _number(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _endpoints(ws: Any) -> list[str]:
    """Every running endpoint's exposition, merged so each family appears once."""
    from kiln.serving import _tables as st
    from kiln.serving._metrics import prometheus, snapshot
    from kiln.serving._service import endpoint_dir

    with ws.db.read() as conn:
        names = [r.name for r in conn.execute(sa.select(st.endpoints.c.name).where(st.endpoints.c.state.in_(("InService", "Updating"))).order_by(st.endpoints.c.name))]
    heads: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for name in names:
        try:
            text = prometheus(snapshot(endpoint_dir(ws.settings.home, name)), endpoint=name)
        except Exception:  # noqa: BLE001 - one endpoint's unreadable counters must not hide the rest
            continue
        family = ""
        for line in text.splitlines():
            if line.startswith("# HELP "):
                family = line.split(" ", 3)[2]
                heads.setdefault(family, []).append(line)
            elif line.startswith("# TYPE "):
                heads.setdefault(family, []).append(line)
            elif line:
                samples.setdefault(family, []).append(line)
    out = []
    for family, head in heads.items():
        out += head[:2]
        out += samples.get(family, [])
    return out


def _series(ws: Any, now: float) -> list[str]:
    s, p = t.series, t.points
    last = int(now // MINUTE) * MINUTE - MINUTE
    with ws.db.read() as conn:
        rows = conn.execute(
            sa.select(s.c.namespace, s.c.name, s.c.dims, p.c.count, p.c.sum, p.c.min, p.c.max)
            .join(p, p.c.series_id == s.c.id).where(p.c.resolution == MINUTE, p.c.bucket == last).order_by(s.c.namespace, s.c.name, s.c.id).limit(MAX_SERIES)
        ).all()
    lines: list[str] = []
    for stat, help_ in (("count", "values stored"), ("sum", "sum of the values"), ("min", "smallest value"), ("max", "largest value")):
        family = f"kiln_metric_minute_{stat}"
        lines += [f"# HELP {family} Stored metrics: {help_} in the last complete minute, per series.", f"# TYPE {family} gauge"]
        for r in rows:
            labels = {"namespace": r.namespace, "metric": r.name}
            for k, v in orjson.loads(r.dims).items():
                labels.setdefault(_label_name(k), v)
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{family}{{{text}}} {_number(getattr(r, stat))}")
    return lines


def _alarms(ws: Any) -> list[str]:
    with ws.db.read() as conn:
        rows = conn.execute(sa.select(t.alarms.c.name, t.alarms.c.state).order_by(t.alarms.c.name)).all()
    lines = ["# HELP kiln_alarm_state Each alarm's state: 1 for the state it is in, 0 for the others.", "# TYPE kiln_alarm_state gauge"]
    for r in rows:
        lines += [f'kiln_alarm_state{{alarm="{_escape(r.name)}",state="{s}"}} {1 if r.state == s else 0}' for s in STATES]
    return lines


def render(ws: Any, *, now: float | None = None) -> str:
    """The whole exposition."""
    now = time.time() if now is None else now
    return "\n".join([*_endpoints(ws), *_series(ws, now), *_alarms(ws)]) + "\n"
