"""Monitoring resources as the faces see them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["BaselineFiles", "CompareResult", "GroundTruthUpload", "Monitor", "MonitorRun", "RunReport"]


class BaselineFiles(BaseModel):
    """A baseline: Model Monitor's ``statistics.json`` and ``constraints.json`` documents."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]


class CompareResult(BaseModel):
    """A comparison's files: the current data's ``statistics.json``, ``constraint_violations.json``,
    the result document (drift per column, dataset verdict, faults) and the HTML page."""

    statistics: dict[str, Any]
    constraint_violations: dict[str, Any]
    result: dict[str, Any]
    html: str = ""


class Monitor(BaseModel):
    """A monitor: which endpoint's capture it checks, against what baseline, how often."""

    name: str
    kind: str  # data_quality | model_quality
    endpoint: str
    schedule: str  # a cron expression, "hourly", "daily" or "none"
    next_run_at: float | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    baseline: dict[str, Any] = Field(default_factory=dict)  # rows, features of the baseline
    last_run: dict[str, Any] | None = None
    created_at: float
    created_by: str


class MonitorRun(BaseModel):
    """One run of a monitor over a window of captured data (or a slot recorded as missed)."""

    id: str
    monitor: str
    status: str  # Completed | CompletedWithViolations | Failed | Missed
    trigger: str  # manual | schedule
    scheduled_for: float | None = None
    window_start: float
    window_end: float
    started_at: float
    finished_at: float
    rows: int = 0
    violations: int = 0
    drift: bool = False
    failure_reason: str | None = None
    metrics: list[dict[str, Any]] = Field(default_factory=list)
    faults: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None  # the whole result document, when one run is asked for
    constraint_violations: list[dict[str, Any]] | None = None


class RunReport(BaseModel):
    """A run's HTML page (one offline file)."""

    id: str
    html: str


class GroundTruthUpload(BaseModel):
    """Ground truth labels stored for a model quality monitor."""

    id: str
    monitor: str
    records: int
    created_at: float
