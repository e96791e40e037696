"""Tuning jobs (SageMaker Automatic Model Tuning): Bayesian, random, grid and Hyperband
search over training jobs on Optuna, parallel trials, early stopping and warm start, with
every trial in Kiln's own tables so a tuning job resumes after a restart."""

from typing import Any

_LAZY = {
    "TuningService": "_service", "TuningJob": "_models", "Trial": "_models", "ObjectivePoint": "_models",
    "Range": "_ranges", "parse_ranges": "_ranges", "STRATEGIES": "_strategy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.tuning' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.tuning.{module}"), name)


__all__ = sorted(_LAZY)
