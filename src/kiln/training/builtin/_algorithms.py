"""Imports each built-in algorithm module so that it registers itself."""

from kiln.training.builtin import _xgboost  # noqa: F401
from kiln.training.builtin import _lightgbm  # noqa: F401
from kiln.training.builtin import _linear_learner  # noqa: F401
from kiln.training.builtin import _random_forest  # noqa: F401
from kiln.training.builtin import _kmeans  # noqa: F401
from kiln.training.builtin import _knn  # noqa: F401
