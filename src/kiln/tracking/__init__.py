"""Tracking: experiments, runs, params, metrics, artifacts, search and evaluation."""

from kiln.core.gc_roots import register_gc_root
from kiln.tracking._artifacts import ArtifactService, referenced_keys
from kiln.tracking._evaluation import EvaluationService
from kiln.tracking._experiments import ExperimentService
from kiln.tracking._models import (
    ArtifactInfo,
    EvaluationComparison,
    EvaluationReport,
    Experiment,
    LogResult,
    MetricPoint,
    RunComparison,
    RunDetail,
    RunInfo,
    RunInputs,
    RunPage,
)
from kiln.tracking._runs import RunService

__all__ = [
    "ArtifactInfo",
    "ArtifactService",
    "EvaluationComparison",
    "EvaluationReport",
    "EvaluationService",
    "Experiment",
    "ExperimentService",
    "LogResult",
    "MetricPoint",
    "RunComparison",
    "RunDetail",
    "RunInfo",
    "RunInputs",
    "RunPage",
    "RunService",
]

register_gc_root("runs/", referenced_keys)
