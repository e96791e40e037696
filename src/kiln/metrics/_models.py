"""Metrics, alarms and logs as the faces see them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "Alarm",
    "AlarmEvaluation",
    "AlarmHistoryItem",
    "Datapoint",
    "LogLine",
    "LogPage",
    "MetricDatum",
    "MetricSeries",
    "MetricStatistics",
    "PutResult",
]


class MetricDatum(BaseModel):
    """One metric data point to store (CloudWatch's ``MetricDatum``).

    Give ``value``, or ``values`` with optional ``counts`` (how many times each value was
    seen). ``timestamp`` is Unix seconds (default: now); ``dimensions`` name the series
    (``{"endpoint": "churn", "variant": "blue"}``).
    """

    name: str
    value: float | None = None
    values: list[float] | None = None
    counts: list[float] | None = None
    dimensions: dict[str, str] = Field(default_factory=dict)
    timestamp: float | None = None
    unit: str | None = None


class PutResult(BaseModel):
    """How many values a put stored, in how many series."""

    namespace: str
    accepted: int
    series: int


class MetricSeries(BaseModel):
    """A stored series: namespace, metric name and its exact dimensions."""

    namespace: str
    name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    unit: str | None = None
    last_at: float


class Datapoint(BaseModel):
    """One period's statistics; ``timestamp`` is the start of the period."""

    timestamp: float
    values: dict[str, float | None]


class MetricStatistics(BaseModel):
    """A query's answer: per period, the statistics asked for, over every series matching.

    ``resolution`` is the stored resolution read (60: per-minute rows; 3600: hourly roll-ups).
    Percentiles are within 1% of the true value."""

    namespace: str
    name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    period: int
    resolution: int
    statistics: list[str]
    series: int
    datapoints: list[Datapoint] = Field(default_factory=list)


class Alarm(BaseModel):
    """A metric alarm with CloudWatch's semantics (``PutMetricAlarm``) and its state."""

    name: str
    description: str = ""
    namespace: str
    metric: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing_data: str
    alarm_actions: list[str] = Field(default_factory=list)
    ok_actions: list[str] = Field(default_factory=list)
    insufficient_data_actions: list[str] = Field(default_factory=list)
    actions_enabled: bool = True
    state: str
    state_reason: str = ""
    state_updated_at: float
    evaluated_at: float | None = None
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str


class AlarmHistoryItem(BaseModel):
    """One entry of an alarm's history: a configuration update, a state change or an action."""

    alarm: str
    time: float
    kind: str
    summary: str
    old_state: str | None = None
    new_state: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class AlarmEvaluation(BaseModel):
    """What one evaluation of an alarm found."""

    alarm: str
    old_state: str
    new_state: str
    changed: bool
    reason: str
    values: list[float | None] = Field(default_factory=list)


class LogLine(BaseModel):
    """One line and when it was written (Unix seconds)."""

    seq: int
    time: float
    text: str


class LogPage(BaseModel):
    """Log lines of a job or an endpoint after offset ``offset``; pass ``next`` to read on.
    ``done`` is true once a job has ended and every line was read (an endpoint's log never is)."""

    source: str
    lines: list[LogLine] = Field(default_factory=list)
    next: int = 0
    done: bool = False
