"""Metrics, alarms and logs (CloudWatch's part of monitoring).

- **Metrics** (``_service``): a store of data points in the metadata database, one row per
  series per minute and per hour (count, sum, min, max, a mergeable quantile sketch), queried
  by name, dimensions, range and period with SampleCount / Sum / Average / Minimum / Maximum
  / percentiles. Other stages write through :func:`put_platform_metrics` (a monitor's
  results under ``kiln/monitoring``, as Kiln whatever role started the run) or
  :meth:`MetricsService.put` (as the caller); the server collects endpoints' and jobs' metrics itself (``_collect``)
  and shows them at ``GET /metrics`` in Prometheus' format (``_prometheus``).
- **Alarms** (``_alarms``): CloudWatch's metric alarms, evaluated every minute and on demand,
  with state history and webhook / log actions.
- **Logs** (``_logs``): jobs' and endpoints' logs behind one reader, kept by age (``_retention``).
"""

from typing import Any

_LAZY = {
    "MetricsService": "_service", "put_platform_metrics": "_service", "AlarmService": "_alarms", "LogService": "_logs", "enforce_retention": "_retention",
    "collect": "_collect", "render": "_prometheus",
    "Alarm": "_models", "AlarmEvaluation": "_models", "AlarmHistoryItem": "_models", "Datapoint": "_models", "LogLine": "_models",
    "LogPage": "_models", "MetricDatum": "_models", "MetricSeries": "_models", "MetricStatistics": "_models", "PutResult": "_models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.metrics' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.metrics.{module}"), name)
