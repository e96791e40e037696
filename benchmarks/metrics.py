"""Metric store: ingest rate, and the latency of a p99 over a day of per-minute data, beside
the obvious floor (plain SQL over raw rows in the same SQLite file); and the API server's
/metrics rendering beside prometheus_client's exposition of the same gauges.

Run: .venv/bin/python benchmarks/metrics.py  (not part of `make test`)
"""

from __future__ import annotations

import os
import time

import numpy as np
import sqlalchemy as sa

from _common import compare, fresh_client, show, timed

VALUES_PER_MINUTE = 60
MINUTES = 1440


def main() -> None:
    print(f"load average: {os.getloadavg()}")
    client = fresh_client()
    ws = client.workspace
    rng = np.random.default_rng(0)
    day0 = int(time.time() // 86_400) * 86_400 - 86_400  # yesterday, whole
    values = rng.gamma(2.0, 40.0, (MINUTES, VALUES_PER_MINUTE))
    data = [{"name": "latency", "values": values[m].tolist(), "dimensions": {"endpoint": "bench"}, "timestamp": day0 + m * 60 + 1} for m in range(MINUTES)]

    # -- ingest -----------------------------------------------------------------------------
    def kiln_ingest() -> None:
        for i in range(0, MINUTES, 100):
            client.metrics.put("bench/app", data[i:i + 100])

    raw = sa.Table("bench_raw", sa.MetaData(), sa.Column("ts", sa.Float), sa.Column("name", sa.String), sa.Column("value", sa.Float))
    raw.create(ws.db.engine)
    rows = [{"ts": day0 + m * 60 + 1 + j * 0.5, "name": "latency", "value": float(values[m, j])} for m in range(MINUTES) for j in range(VALUES_PER_MINUTE)]

    def sql_ingest() -> None:
        with ws.db.write() as conn:
            for i in range(0, len(rows), 6000):
                conn.execute(raw.insert(), rows[i:i + 6000])

    n = MINUTES * VALUES_PER_MINUTE
    (k, kr) = timed(kiln_ingest, repeat=1)
    (s, sr) = timed(sql_ingest, repeat=1)
    show("ingest: kiln metrics.put (1 day, 86,400 values)", k, kr, f"{n / k:,.0f} values/s")
    show("ingest: plain INSERT of raw rows", s, sr, f"{n / s:,.0f} values/s  ratio {k / s:.2f}x")

    # -- p99 over the day -------------------------------------------------------------------
    truth = float(np.percentile(values, 99, method="inverted_cdf"))

    def kiln_day() -> float:
        got = client.metrics.query("bench/app", "latency", start=day0, end=day0 + 86_400, period=86_400, statistics=["p99"])
        return got.datapoints[0].values["p99"]

    def sql_day() -> float:
        with ws.db.read() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(raw).where(raw.c.ts >= day0, raw.c.ts < day0 + 86_400)).scalar()
            k = int(np.ceil(0.99 * count)) - 1
            return conn.execute(sa.select(raw.c.value).where(raw.c.ts >= day0, raw.c.ts < day0 + 86_400).order_by(raw.c.value).limit(1).offset(k)).scalar()

    print(f"p99 of the day: exact {truth:.3f}, kiln {kiln_day():.3f}, SQL {sql_day():.3f}")
    (a, ar), (b, br) = compare(kiln_day, sql_day, repeat=5)
    show("p99 over a day, one value: kiln (hourly rows)", a, ar)
    show("p99 over a day, one value: SQL ORDER BY/OFFSET", b, br, f"ratio {a / b:.2f}x")

    def kiln_minutes() -> int:
        got = client.metrics.query("bench/app", "latency", start=day0, end=day0 + 86_400, period=60, statistics=["p99"])
        return len(got.datapoints)

    def sql_minutes() -> int:
        with ws.db.read() as conn:
            got = conn.execute(sa.select(raw.c.ts, raw.c.value).where(raw.c.ts >= day0, raw.c.ts < day0 + 86_400)).all()
        ts = np.array([r[0] for r in got])
        vals = np.array([r[1] for r in got])
        minute = ((ts - day0) // 60).astype(int)
        order = np.lexsort((vals, minute))
        bounds = np.searchsorted(minute[order], np.arange(MINUTES + 1))
        sorted_vals = vals[order]
        return len([sorted_vals[lo + int(np.ceil(0.99 * (hi - lo))) - 1] for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo])

    (a, ar), (b, br) = compare(kiln_minutes, sql_minutes, repeat=3)
    show("p99 per minute over a day (1,440): kiln", a, ar)
    show("p99 per minute over a day: SQL rows + numpy", b, br, f"ratio {a / b:.2f}x")

    # -- /metrics ---------------------------------------------------------------------------
    series = [{"name": "depth", "value": float(i), "dimensions": {"queue": f"q{i}"}, "timestamp": time.time() - 60} for i in range(1000)]
    client.metrics.put("bench/queues", series)
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from kiln.metrics._prometheus import render

    registry = CollectorRegistry()
    gauges = {s: Gauge(f"kiln_metric_minute_{s}", "x", ["namespace", "metric", "queue"], registry=registry) for s in ("count", "sum", "min", "max")}
    for i in range(1000):
        for g in gauges.values():
            g.labels("bench/queues", "depth", f"q{i}").set(i)
    (a, ar), (b, br) = compare(lambda: render(ws), lambda: generate_latest(registry), repeat=5)
    show("/metrics, 1,000 series: kiln (reads the store)", a, ar)
    show("/metrics, 1,000 series: prometheus_client (memory)", b, br, f"ratio {a / b:.2f}x")
    client.close()


if __name__ == "__main__":
    main()
