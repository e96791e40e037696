"""Built-in training algorithms: programs that follow SageMaker's training contract themselves.

The job runner launches them like any user script, ``python -m kiln.training.builtin ALGO`` with
the ``SM_*`` environment set. Algorithms: ``xgboost``, ``lightgbm``, ``linear-learner``,
``random-forest``, ``kmeans``, ``knn``. Heavy libraries are imported only when one trains or loads.
"""

from __future__ import annotations

from typing import Any

from kiln.training.builtin._base import Algorithm, BuiltinError, BuiltinModel, Hyperparameter, MetricDefinition, registered
from kiln.training.builtin._run import load_builtin, main

__all__ = [
    "Algorithm",
    "BuiltinError",
    "BuiltinModel",
    "Hyperparameter",
    "MetricDefinition",
    "algorithm_names",
    "get_algorithm",
    "load_builtin",
    "main",
    "metric_definitions",
]


def algorithm_names() -> list[str]:
    """The built-in algorithms' names, sorted."""
    return sorted(registered())


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``.

    Raises:
        BuiltinError: no such built-in (the message lists them).
    """
    algorithms = registered()
    if name not in algorithms:
        raise BuiltinError(f"unknown built-in algorithm {name!r}; the built-ins are: {', '.join(sorted(algorithms))}")
    return algorithms[name]


def metric_definitions(name: str) -> list[dict[str, Any]]:
    """The default metric definitions ``[{"Name", "Regex"}]`` of built-in ``name``, matching the lines it prints."""
    return get_algorithm(name).definitions()
