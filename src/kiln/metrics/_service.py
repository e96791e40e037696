"""The metric store: put data points (CloudWatch's PutMetricData), list series, query
statistics over a time range and period.

Each put folds its values into one row per series per minute and one per hour (count, sum,
min, max and a :class:`~kiln.metrics._sketch.Sketch`), in one transaction: a put is stored
whole or not at all, and the hourly roll-up never lags its minutes. A query reads minute rows
for periods under an hour (while they are kept), hourly rows otherwise, so a year of data
costs 8,760 rows at most per series.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, invalid_input
from kiln.core.workspace import Workspace
from kiln.metrics import _tables as t
from kiln.metrics._base import (
    HOUR, MAX_DATUMS, MAX_VALUES, MINUTE, check_dimensions, check_metric_name, check_namespace,
    check_period, check_time, normalise_statistic,
)
from kiln.metrics._models import Datapoint, MetricDatum, MetricSeries, MetricStatistics, PutResult
from kiln.metrics._sketch import Sketch

__all__ = ["Agg", "MetricsService", "put_platform_metrics", "write_data"]

MAX_DATAPOINTS = 10_080  # a week of minutes
MAX_SERIES = 1000  # merged by one query
FUTURE_S = 2 * 3600  # CloudWatch takes points up to two hours ahead
DEFAULT_STATISTICS = ("SampleCount", "Average", "Minimum", "Maximum", "p99")


@dataclass
class Agg:
    """count, sum, min, max and a sketch of some values: what a stored row holds."""

    count: float = 0.0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    sketch: Sketch = field(default_factory=Sketch)

    def add(self, value: float, count: float) -> None:
        self.count += count
        self.sum += value * count
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.sketch.add(value, count)

    def merge(self, other: Agg) -> Agg:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sketch.merge(other.sketch)
        return self

    def statistic(self, stat: str) -> float | None:
        if self.count <= 0:
            return None
        if stat == "SampleCount":
            return self.count
        if stat == "Sum":
            return self.sum
        if stat == "Average":
            return self.sum / self.count
        if stat == "Minimum":
            return self.min
        if stat == "Maximum":
            return self.max
        q = self.sketch.quantile(float(stat[1:]) / 100.0)
        return None if q is None else min(max(q, self.min), self.max)  # the exact bounds are known

    @classmethod
    def from_row(cls, row: Any) -> Agg:
        return cls(row.count, row.sum, row.min, row.max, Sketch.from_json(orjson.loads(row.sketch)))


def _dims_key(dims: dict[str, str]) -> tuple[str, str]:
    text = orjson.dumps(dims, option=orjson.OPT_SORT_KEYS).decode()
    return text, hashlib.sha256(text.encode()).hexdigest()


def _check_datum(d: Any, now: float, oldest: float) -> MetricDatum:
    if not isinstance(d, MetricDatum):
        try:
            d = MetricDatum.model_validate(d)
        except ValidationError as exc:
            raise invalid_input("invalid metric datum", exc) from None
    check_metric_name(d.name)
    d.dimensions = check_dimensions(d.dimensions)
    if (d.value is None) == (d.values is None):
        raise InvalidArgument(f"metric {d.name!r}: give either value or values (with optional counts)")
    values = [d.value] if d.value is not None else list(d.values or [])
    if not 1 <= len(values) <= MAX_VALUES:
        raise InvalidArgument(f"metric {d.name!r}: values holds {len(values)} items; give 1 to {MAX_VALUES}")
    if d.counts is not None and (d.value is not None or len(d.counts) != len(values)):
        raise InvalidArgument(f"metric {d.name!r}: counts must go with values and be as long")
    for v in [*values, *(d.counts or ())]:
        if not math.isfinite(v) or abs(v) > 1e300:
            raise InvalidArgument(f"metric {d.name!r}: {v} is not a finite number (NaN and infinity are refused)")
    if any(c <= 0 for c in d.counts or ()):
        raise InvalidArgument(f"metric {d.name!r}: every count must be positive")
    if d.unit is not None and (len(d.unit) > 32 or not d.unit.isprintable()):
        raise InvalidArgument(f"metric {d.name!r}: the unit must be at most 32 printable characters (Seconds, Count, Percent...)")
    ts = check_time(d.timestamp, "timestamp")
    if ts is not None and not oldest <= ts <= now + FUTURE_S:
        raise InvalidArgument(f"metric {d.name!r}: timestamp {ts:.0f} is older than what is kept (metrics_hourly_days) or more than two hours ahead of now")
    return d


def write_data(conn: Connection, namespace: str, data: Sequence[MetricDatum], *, now: float) -> int:
    """Fold checked data points into their minute and hour rows on ``conn`` (the caller's
    transaction); returns how many series were touched. The in-process writer every collector uses."""
    folded: dict[tuple[str, str, str, str | None], dict[tuple[int, int], Agg]] = {}
    for d in data:
        dims, key_hash = _dims_key(d.dimensions)
        per = folded.setdefault((d.name, dims, key_hash, d.unit), {})
        ts = now if d.timestamp is None else d.timestamp
        values = [d.value] if d.value is not None else list(d.values or [])
        counts = list(d.counts) if d.counts is not None else [1.0] * len(values)
        for res in (MINUTE, HOUR):
            agg = per.setdefault((res, int(ts // res) * res), Agg())
            for v, c in zip(values, counts, strict=True):
                agg.add(float(v), float(c))
    for (name, dims, key_hash, unit), per in folded.items():
        sid = _series_id(conn, namespace, name, dims, key_hash, unit, now)
        _merge_points(conn, sid, per)
    return len(folded)


def _series_id(conn: Connection, namespace: str, name: str, dims: str, key_hash: str, unit: str | None, now: float) -> int:
    s = t.series
    where = (s.c.namespace == namespace) & (s.c.name == name) & (s.c.dims_hash == key_hash)
    sid = conn.execute(sa.select(s.c.id).where(where)).scalar()
    if sid is None:
        # A concurrent put of a new series: the unique key refuses the second, whose
        # transaction the caller retries.
        sid = conn.execute(s.insert().values(namespace=namespace, name=name, dims=dims, dims_hash=key_hash, unit=unit, created_at=now, last_at=now).returning(s.c.id)).scalar_one()
    else:
        values: dict[str, Any] = {"last_at": now}
        if unit is not None:
            values["unit"] = unit
        conn.execute(s.update().where(s.c.id == sid).values(**values))
    return int(sid)


def _merge_points(conn: Connection, sid: int, per: dict[tuple[int, int], Agg]) -> None:
    p = t.points
    existing: dict[tuple[int, int], Any] = {}
    for res in (MINUTE, HOUR):
        buckets = [b for r, b in per if r == res]
        q = sa.select(p).where(p.c.series_id == sid, p.c.resolution == res, p.c.bucket.in_(buckets))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        for row in conn.execute(q):
            existing[(row.resolution, row.bucket)] = row
    inserts, updates = [], []
    for (res, bucket), agg in per.items():
        row = existing.get((res, bucket))
        merged = agg if row is None else Agg.from_row(row).merge(agg)
        values = {"count": merged.count, "sum": merged.sum, "min": merged.min, "max": merged.max, "sketch": orjson.dumps(merged.sketch.to_json()).decode()}
        if row is None:
            inserts.append({"series_id": sid, "resolution": res, "bucket": bucket, **values})
        else:
            updates.append({"k_sid": sid, "k_res": res, "k_bucket": bucket, **values})
    if inserts:
        conn.execute(p.insert(), inserts)
    if updates:
        stmt = p.update().where(p.c.series_id == sa.bindparam("k_sid"), p.c.resolution == sa.bindparam("k_res"), p.c.bucket == sa.bindparam("k_bucket"))
        conn.execute(stmt, updates)


def write_with_retry(ws: Workspace, fn: Any, *, attempts: int = 3) -> Any:
    """Run ``fn(conn)`` in a write transaction, again when a concurrent writer created the same
    series or row first (PostgreSQL; SQLite writers take turns)."""
    for i in range(attempts):
        try:
            with ws.db.write() as conn:
                return fn(conn)
        except IntegrityError:
            if i == attempts - 1:
                raise
    return None


class MetricsService:
    """Put, list and query metrics. The one in-process API other stages (monitors, the
    endpoint and job collectors) write through: ``MetricsService(ws, ctx).put(namespace=..., data=[...])``."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def put(self, *, namespace: str, data: list[MetricDatum]) -> PutResult:
        """Store metric data points (CloudWatch's PutMetricData).

        Each datum carries ``value`` or ``values`` (with optional ``counts``), its
        ``dimensions`` and a ``timestamp`` (Unix seconds; default now). Namespaces under
        ``kiln/`` hold the platform's own metrics (endpoints, jobs, monitors) and need admin.

        Raises:
            InvalidArgument: a bad namespace, name, dimension, value or timestamp (nothing is stored).
            PermissionDenied: a viewer, or a non-admin writing under ``kiln/``.
        """
        self.ctx.require("admin" if str(namespace).startswith("kiln/") else "editor")
        check_namespace(namespace)
        if not isinstance(data, list | tuple) or not 1 <= len(data) <= MAX_DATUMS:
            raise InvalidArgument(f"data must hold 1 to {MAX_DATUMS} metric data points")
        now = time.time()
        oldest = now - self.ws.settings.metrics_hourly_days * 86_400
        checked = [_check_datum(d, now, oldest) for d in data]
        touched = write_with_retry(self.ws, lambda conn: write_data(conn, namespace, checked, now=now))
        accepted = sum(1 if d.value is not None else len(d.values or ()) for d in checked)
        return PutResult(namespace=namespace, accepted=accepted, series=touched)

    def list(self, *, namespace: str | None = None, name: str | None = None, limit: int = 500) -> list[MetricSeries]:
        """Stored series (CloudWatch's ListMetrics), by namespace and metric name, most recent first."""
        self.ctx.require("viewer")
        if namespace is not None:
            check_namespace(namespace)
        if name is not None:
            check_metric_name(name)
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        s = t.series
        q = sa.select(s).order_by(s.c.last_at.desc(), s.c.id).limit(limit)
        if namespace is not None:
            q = q.where(s.c.namespace == namespace)
        if name is not None:
            q = q.where(s.c.name == name)
        with self.ws.db.read() as conn:
            rows = conn.execute(q).all()
        return [MetricSeries(namespace=r.namespace, name=r.name, dimensions=orjson.loads(r.dims), unit=r.unit, last_at=r.last_at) for r in rows]

    def query(
        self,
        *,
        namespace: str,
        name: str,
        dimensions: dict[str, str] | None = None,
        start: float | None = None,
        end: float | None = None,
        period: int = 60,
        statistics: list[str] | None = None,
    ) -> MetricStatistics:
        """Statistics of a metric per period over ``[start, end)`` (CloudWatch's GetMetricStatistics).

        Every series of ``namespace``/``name`` whose dimensions include ``dimensions`` is
        merged (``{}``: all of them). Statistics: SampleCount, Sum, Average, Minimum, Maximum
        and percentiles (``p50``, ``p99``; within 1%). ``end`` defaults to now, ``start`` to an
        hour before ``end``. Periods of an hour or more, and any range older than the
        per-minute retention, read the hourly roll-ups.

        Raises:
            InvalidArgument: a bad name, period, statistic or range.
        """
        self.ctx.require("viewer")
        check_namespace(namespace)
        check_metric_name(name)
        dims = check_dimensions(dimensions)
        check_period(period)
        stats = [normalise_statistic(s) for s in (statistics or DEFAULT_STATISTICS)]
        if not stats or len(stats) > 20:
            raise InvalidArgument("give 1 to 20 statistics")
        stats = list(dict.fromkeys(stats))
        now = time.time()
        end = now if end is None else float(check_time(end, "end") or 0.0)
        start = check_time(start, "start")
        start = end - 3600 if start is None else start
        if start >= end:
            raise InvalidArgument("start must be before end")
        first = int(start // period) * period
        if (end - first) / period > MAX_DATAPOINTS:
            raise InvalidArgument(f"{(end - first) / period:,.0f} periods asked; at most {MAX_DATAPOINTS:,}: use a longer period or a shorter range")
        raw_from = now - self.ws.settings.metrics_raw_days * 86_400
        resolution = HOUR if period % HOUR == 0 or first < raw_from else MINUTE
        if resolution == HOUR and period % HOUR:
            raise InvalidArgument(f"data from before {self.ws.settings.metrics_raw_days:g} days ago is kept per hour: use a period that is a multiple of 3600")
        aggs, n_series = self._fold(namespace, name, dims, resolution, first, end, period)
        points = [Datapoint(timestamp=float(b), values={s: agg.statistic(s) for s in stats}) for b, agg in sorted(aggs.items())]
        return MetricStatistics(namespace=namespace, name=name, dimensions=dims, period=period, resolution=resolution, statistics=stats, series=n_series, datapoints=points)

    def collect(self) -> dict[str, int]:
        """Collect the platform's metrics now (endpoints' counters, ended jobs, endpoints' logs), as
        the server does every minute; returns how many data points and log lines were stored."""
        self.ctx.require("editor")
        from kiln.metrics._collect import collect

        return collect(self.ws)

    def _fold(self, namespace: str, name: str, dims: dict[str, str], resolution: int, first: float, end: float, period: int) -> tuple[dict[int, Agg], int]:
        s, p = t.series, t.points
        with self.ws.db.read() as conn:
            ids = [r.id for r in conn.execute(sa.select(s.c.id, s.c.dims).where(s.c.namespace == namespace, s.c.name == name)) if _matches(orjson.loads(r.dims), dims)]
            if len(ids) > MAX_SERIES:
                raise InvalidArgument(f"{len(ids):,} series of {namespace}/{name} match; a query merges at most {MAX_SERIES:,}: name more dimensions")
            rows: Iterable[Any] = []
            if ids:
                rows = conn.execute(sa.select(p).where(p.c.series_id.in_(ids), p.c.resolution == resolution, p.c.bucket >= first, p.c.bucket < end)).all()
        aggs: dict[int, Agg] = {}
        for row in rows:
            b = int(row.bucket // period) * period
            have = aggs.get(b)
            aggs[b] = Agg.from_row(row) if have is None else have.merge(Agg.from_row(row))
        return aggs, len(ids)


def _matches(series_dims: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(series_dims.get(k) == v for k, v in wanted.items())





_PLATFORM = Context(actor="system:metrics", role="admin", source="server", request_id="platform-metrics")


def put_platform_metrics(ws: Workspace, namespace: str, data: Sequence[MetricDatum | dict[str, Any]]) -> PutResult:
    """Store data points as Kiln itself, whatever role started the work: for stages' own results
    (a model monitor's run under ``kiln/monitoring``), never for what a request asked to write.
    Checked exactly as :meth:`MetricsService.put`.

    Raises:
        InvalidArgument: a bad namespace, name, dimension, value or timestamp (nothing is stored).
    """
    return MetricsService(ws, _PLATFORM).put(namespace=namespace, data=list(data))  # type: ignore[arg-type]
