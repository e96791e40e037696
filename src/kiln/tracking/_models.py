"""Pydantic models of tracking resources: what services return and every face shows.

Metric values may be NaN or infinite. In JSON they are the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (the models parse them back to floats), so a
value survives a trip through the REST API and the CLI's ``--json`` unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from kiln.tracking._base import KilnModel

__all__ = [
    "ArtifactInfo",
    "INPUTS_TAG",
    "EvaluationComparison",
    "EvaluationReport",
    "Experiment",
    "LogResult",
    "MetricHistory",
    "MetricPoint",
    "RunComparison",
    "RunDetail",
    "RunInfo",
    "RunInputs",
    "RunPage",
    "RunStatus",
    "to_jsonable",
]

RunStatus = Literal["Running", "Completed", "Failed"]
RUN_STATUSES: tuple[str, ...] = ("Running", "Completed", "Failed")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON-ready data for a model or list of models, NaN as ``"NaN"``."""
    if isinstance(obj, BaseModel):
        return orjson.loads(obj.model_dump_json())
    if isinstance(obj, list):
        return [to_jsonable(o) for o in obj]
    return obj


def dump_json(obj: Any) -> bytes:
    """JSON bytes of a model or a list of models (what the REST routes send)."""
    if isinstance(obj, BaseModel):
        return obj.model_dump_json().encode()
    return b"[" + b",".join(i.model_dump_json().encode() for i in obj) + b"]"


class Experiment(KilnModel):
    id: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: float
    created_by: str
    run_count: int | None = None


class RunInfo(KilnModel):
    """A run's own fields, without its params, metrics or tags."""

    id: str
    experiment_id: str
    experiment_name: str
    name: str
    status: RunStatus
    parent_run_id: str | None = None
    source: str = ""
    start_time: float
    end_time: float | None = None
    created_by: str
    failure_reason: str | None = None


class MetricPoint(KilnModel):
    key: str
    value: float
    step: int
    timestamp: float


class MetricHistory(KilnModel):
    """Every point of one metric of one run, as columns, ordered by step then time."""

    run_id: str
    key: str
    steps: list[int]
    values: list[float]
    timestamps: list[float]

    def points(self) -> list[MetricPoint]:
        return [
            MetricPoint(key=self.key, value=v, step=s, timestamp=t)
            for s, v, t in zip(self.steps, self.values, self.timestamps, strict=True)
        ]


class ArtifactInfo(KilnModel):
    run_id: str
    name: str
    media_type: str
    size: int
    sha256: str
    created_at: float


class RunDetail(RunInfo):
    """A run with its params, tags, latest metrics and (on ``get``) artifacts."""

    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    artifacts: list[ArtifactInfo] | None = None

    @property
    def inputs(self) -> list[str]:
        """The dataset versions read inside the run (``["cancer@1"]``), from its ``kiln.inputs`` tag."""
        return parse_inputs(self.tags.get(INPUTS_TAG))


# The tag that holds a run's inputs: a JSON list of exact dataset versions, deduplicated.
INPUTS_TAG = "kiln.inputs"


def parse_inputs(text: str | None) -> list[str]:
    """A ``kiln.inputs`` tag's value as a list (empty for none or a value not written by Kiln)."""
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class RunInputs(KilnModel):
    """The dataset versions a run read (its inputs), in the order first read."""

    run_id: str
    datasets: list[str]


class RunPage(KilnModel):
    runs: list[RunDetail]
    next_page_token: str | None = None
    total: int | None = None


class LogResult(KilnModel):
    run_id: str
    metrics: int = 0
    params: int = 0
    tags: int = 0


class RunComparison(KilnModel):
    """Runs side by side: one row per param or metric, one column per run."""

    runs: list[RunInfo]
    params: dict[str, list[str | None]]
    metrics: dict[str, list[float | None]]
    tags: dict[str, list[str | None]]


class EvaluationReport(KilnModel):
    model: str
    model_version: int | None = None
    dataset: str
    target: str
    problem_type: Literal["classification", "regression"]
    rows: int
    run_id: str | None = None
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]] | None = None
    confusion_matrix: dict[str, Any] | None = None
    roc_curve: dict[str, Any] | None = None
    precision_recall: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    artifacts: list[str] = Field(default_factory=list)


class EvaluationComparison(KilnModel):
    dataset: str
    target: str
    models: list[str]
    metrics: dict[str, list[float | None]]
    best: dict[str, str]
    reports: list[EvaluationReport]
