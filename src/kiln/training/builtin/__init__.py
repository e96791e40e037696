"""Built-in training algorithms: programs that follow SageMaker's training contract themselves.

The job runner launches them like any user script, ``python -m kiln.training.builtin ALGO`` with
the ``SM_*`` environment set (CONTRACTS.md §1). Algorithms: ``xgboost``, ``lightgbm``,
``linear-learner``, ``random-forest``, ``kmeans``, ``knn``; each declares its hyperparameters
(SageMaker's names, coerced from the strings SageMaker sends), the channels and formats it reads,
and the default metric definitions matching what it prints:

- xgboost and lightgbm, one line per round as SageMaker's XGBoost container logs it:
  ``[3]#011train-rmse:0.41#011validation-rmse:0.47`` (metric ``validation:rmse``);
- the scikit-learn ones, as SageMaker's first-party algorithms log:
  ``#quality_metric: host=algo-1, [epoch=3, ]validation accuracy <score>=0.95``
  (metric ``validation:accuracy``; ``<loss>`` marks a metric to minimise).

A failure writes one sentence to ``output/failure`` and exits non-zero. The model folder gets the
native file (``xgboost-model``, ``model.txt``, ``model.skops``) and ``kiln-algorithm.json``, which
:func:`load_builtin` reads to serve it. Heavy libraries are imported only when one trains or loads.
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
