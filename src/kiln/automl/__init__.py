"""AutoML (SageMaker Autopilot): problem inference, type-aware preprocessing, candidates of
several model families on shared folds under a time budget, tuning, greedy ensemble
selection, a report, and one servable model package.

Heavy modules load lazily: importing ``kiln.automl`` imports no scikit-learn.
"""

from typing import Any

_LAZY = {
    "AutoMLService": "_service", "AutoMLJob": "_models", "AutoMLReport": "_models", "CandidateScript": "_models",
    "METRICS": "_base", "MODES": "_base", "PROBLEM_TYPES": "_base", "default_metric": "_base",
    "SearchConfig": "_search", "search": "_search", "AutoMLInputError": "_search",
    "AutoMLModel": "_model", "load_package": "_model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.automl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.automl.{module}"), name)


__all__ = sorted(_LAZY)
