"""SDK: metrics (``client.metrics``), alarms (``client.alarms``) and logs (``client.logs``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.metrics import _ops as ops
from kiln.metrics._models import Alarm, AlarmEvaluation, AlarmHistoryItem, LogLine, LogPage, MetricSeries, MetricStatistics, PutResult
from kiln.sdk._base import Namespace

__all__ = ["Alarms", "Logs", "Metrics", "parse_target"]


def _datum(d: Any) -> dict[str, Any]:
    return d.model_dump(exclude_none=True) if hasattr(d, "model_dump") else dict(d)


class Metrics(Namespace):
    """``client.metrics``: put data points, list series, query statistics."""

    def put(self, namespace: str, data: Sequence[Any]) -> PutResult:
        """Store data points: ``MetricDatum``s or dicts ``{"name", "value" | "values" [+ "counts"],
        "dimensions", "timestamp", "unit"}`` (CloudWatch's PutMetricData)."""
        return self._call(ops.PUT, namespace=namespace, data=[_datum(d) for d in data])  # type: ignore[no-any-return]

    def put_value(self, namespace: str, name: str, value: float, *, dimensions: Mapping[str, str] | None = None,
                  timestamp: float | None = None, unit: str | None = None) -> PutResult:
        """Store one value."""
        datum = {"name": name, "value": value, "dimensions": dict(dimensions or {}), "timestamp": timestamp, "unit": unit}
        return self.put(namespace, [{k: v for k, v in datum.items() if v is not None}])

    def list(self, *, namespace: str | None = None, name: str | None = None, limit: int = 500) -> list[MetricSeries]:
        return self._call(ops.LIST, namespace=namespace, name=name, limit=limit)  # type: ignore[no-any-return]

    def query(self, namespace: str, name: str, *, dimensions: Mapping[str, str] | None = None, start: float | None = None,
              end: float | None = None, period: int = 60, statistics: Sequence[str] | None = None) -> MetricStatistics:
        """Statistics per period (SampleCount, Sum, Average, Minimum, Maximum, p50, p99...)."""
        return self._call(ops.QUERY, namespace=namespace, name=name, dimensions=dict(dimensions or {}), start=start, end=end,  # type: ignore[no-any-return]
                          period=period, statistics=list(statistics) if statistics else None)

    def collect(self) -> dict[str, int]:
        """Collect endpoints' and jobs' metrics and endpoints' logs now (the server does it every minute)."""
        return self._call(ops.COLLECT)  # type: ignore[no-any-return]


class Alarms(Namespace):
    """``client.alarms``: metric alarms (CloudWatch's PutMetricAlarm and friends)."""

    def put(self, name: str, *, namespace: str, metric: str, threshold: float, comparison: str, statistic: str = "Average",
            period: int = 60, evaluation_periods: int = 1, datapoints_to_alarm: int | None = None, treat_missing_data: str = "missing",
            dimensions: Mapping[str, str] | None = None, alarm_actions: Sequence[str] | None = None, ok_actions: Sequence[str] | None = None,
            insufficient_data_actions: Sequence[str] | None = None, actions_enabled: bool = True, description: str = "") -> Alarm:
        return self._call(  # type: ignore[no-any-return]
            ops.ALARMS_PUT, name=name, namespace=namespace, metric=metric, threshold=threshold, comparison=comparison, statistic=statistic,
            period=period, evaluation_periods=evaluation_periods, datapoints_to_alarm=datapoints_to_alarm, treat_missing_data=treat_missing_data,
            dimensions=dict(dimensions or {}), alarm_actions=list(alarm_actions or []), ok_actions=list(ok_actions or []),
            insufficient_data_actions=list(insufficient_data_actions or []), actions_enabled=actions_enabled, description=description,
        )

    def get(self, name: str) -> Alarm:
        return self._call(ops.ALARMS_GET, name=name)  # type: ignore[no-any-return]

    def list(self, *, state: str | None = None, namespace: str | None = None) -> list[Alarm]:
        return self._call(ops.ALARMS_LIST, state=state, namespace=namespace)  # type: ignore[no-any-return]

    def history(self, name: str, *, limit: int = 100) -> list[AlarmHistoryItem]:
        return self._call(ops.ALARMS_HISTORY, name=name, limit=limit)  # type: ignore[no-any-return]

    def delete(self, name: str) -> Alarm:
        return self._call(ops.ALARMS_DELETE, name=name)  # type: ignore[no-any-return]

    def evaluate(self, names: Sequence[str] | None = None) -> list[AlarmEvaluation]:
        """Evaluate alarms now (all, or those named); changed states run their actions."""
        return self._call(ops.ALARMS_EVALUATE, names=list(names) if names is not None else None)  # type: ignore[no-any-return]


def parse_target(target: str) -> tuple[str, str]:
    """``job/NAME`` or ``endpoint/NAME`` -> (kind, name)."""
    kind, sep, name = str(target).partition("/")
    if not sep or kind not in ("job", "endpoint") or not name:
        raise InvalidArgument(f"log target {str(target)[:80]!r}: use job/NAME or endpoint/NAME")
    return kind, name


class Logs(Namespace):
    """``client.logs``: the logs of jobs and endpoints."""

    def read(self, target: str, *, offset: int = 0, since: str | None = None, grep: str | None = None, limit: int = 1000) -> LogPage:
        """Lines of ``job/NAME`` or ``endpoint/NAME`` after ``offset``; ``next`` reads on."""
        kind, name = parse_target(target)
        return self._call(ops.LOGS_READ, kind=kind, name=name, offset=offset, since=since, grep=grep, limit=limit)  # type: ignore[no-any-return]

    def follow(self, target: str, *, since: str | None = None, grep: str | None = None, poll_s: float = 1.0,
               timeout_s: float | None = None) -> Iterator[LogLine]:
        """Every line, then new ones as they come, until a job ends (or ``timeout_s``)."""
        offset, deadline = 0, None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            page = self.read(target, offset=offset, since=since, grep=grep)
            yield from page.lines
            offset = page.next
            if page.done or (deadline is not None and time.monotonic() > deadline):
                return
            if not page.lines:
                time.sleep(poll_s)
