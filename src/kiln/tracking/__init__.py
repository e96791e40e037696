"""Tracking: experiments, runs, params, metrics, artifacts, search and evaluation."""

from typing import Any

from kiln.core.gc_roots import register_gc_root

# Names load on first use: a job runner or a CLI command that only creates a run does not
# import evaluation (numpy, scikit-learn) with the package.
_LAZY = {
    "ArtifactService": "_artifacts", "EvaluationService": "_evaluation", "ExperimentService": "_experiments",
    "RunService": "_runs", "ArtifactInfo": "_models", "EvaluationComparison": "_models", "EvaluationReport": "_models",
    "Experiment": "_models", "LogResult": "_models", "MetricPoint": "_models", "RunComparison": "_models",
    "RunDetail": "_models", "RunInfo": "_models", "RunInputs": "_models", "RunPage": "_models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.tracking' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.tracking.{module}"), name)


def _referenced_keys(conn: Any) -> set[str]:
    from kiln.tracking._artifacts import referenced_keys

    return referenced_keys(conn)


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

register_gc_root("runs/", _referenced_keys)
