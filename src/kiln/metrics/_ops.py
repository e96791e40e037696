"""Metrics, alarms and logs operations, declared once (see :mod:`kiln.core.ops`).

``GET /metrics`` (Prometheus' text format) is the hand-written special case, in
``kiln.server.routes.metrics``: it needs a viewer token like every other read.
"""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.metrics._models import Alarm, AlarmEvaluation, AlarmHistoryItem, LogPage, MetricSeries, MetricStatistics, PutResult

_METRICS = "kiln.metrics._service:MetricsService"
_ALARMS = "kiln.metrics._alarms:AlarmService"
_LOGS = "kiln.metrics._logs:LogService"


def _op(name: str, method: str, path: str, role: str, service: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=name, method=method, path=path, role=role, service=service, call=call, response=response, **kw)  # type: ignore[arg-type]


_ALARM_BODY = (
    "namespace", "metric", "threshold", "comparison", "statistic", "period", "evaluation_periods", "datapoints_to_alarm", "treat_missing_data",
    "dimensions", "alarm_actions", "ok_actions", "insufficient_data_actions", "actions_enabled", "description",
)

ALL = declare(
    _op("metrics.put", "POST", "/v1/metrics", "editor", _METRICS, "put", PutResult, body=("namespace", "data"), kind="metric"),
    _op("metrics.list", "GET", "/v1/metrics", "viewer", _METRICS, "list", list[MetricSeries], kind="metric"),
    _op("metrics.query", "POST", "/v1/metrics/query", "viewer", _METRICS, "query", MetricStatistics,
        body=("namespace", "name", "dimensions", "start", "end", "period", "statistics"), kind="metric"),
    _op("metrics.collect", "POST", "/v1/metrics/collect", "editor", _METRICS, "collect", dict[str, int], kind="metric"),
    _op("alarms.list", "GET", "/v1/alarms", "viewer", _ALARMS, "list", list[Alarm], kind="alarm"),
    _op("alarms.get", "GET", "/v1/alarms/{name}", "viewer", _ALARMS, "get", Alarm, kind="alarm"),
    _op("alarms.put", "PUT", "/v1/alarms/{name}", "editor", _ALARMS, "put", Alarm, body=_ALARM_BODY, kind="alarm"),
    _op("alarms.delete", "DELETE", "/v1/alarms/{name}", "editor", _ALARMS, "delete", Alarm, kind="alarm"),
    _op("alarms.history", "GET", "/v1/alarms/{name}/history", "viewer", _ALARMS, "history", list[AlarmHistoryItem], kind="alarm"),
    _op("alarms.evaluate", "POST", "/v1/alarms/evaluate", "editor", _ALARMS, "evaluate", list[AlarmEvaluation], body=("names",), kind="alarm"),
    _op("logs.read", "GET", "/v1/logs/{kind}/{name}", "viewer", _LOGS, "read", LogPage, kind="log"),
)
(PUT, LIST, QUERY, COLLECT, ALARMS_LIST, ALARMS_GET, ALARMS_PUT, ALARMS_DELETE, ALARMS_HISTORY, ALARMS_EVALUATE, LOGS_READ) = ALL

PROMETHEUS_PATH = "/metrics"
PROMETHEUS_ROLE = "viewer"
