"""Random forest: Kiln's own built-in (SageMaker has none), scikit-learn's forest under sklearn's names.

``predictor_type`` is ``classifier`` or ``regressor``. Missing feature values are allowed. After
training it prints, for train and each of validation/test given, ``accuracy`` and ``f1``
(binary F1, or macro F1 for more classes) or ``mse``, ``rmse``, ``mae``, ``r2``.
"""

from __future__ import annotations

from typing import Any

from kiln.training.builtin import _sklearn
from kiln.training.builtin._base import Algorithm, BuiltinError, Hyperparameter as H, register
from kiln.training.builtin._data import Channels, Classes

__all__ = ["RandomForest"]

_CHANNELS = ("train", "validation", "test")
CLASSIFIER_METRICS = (("accuracy", True), ("f1", True))
REGRESSOR_METRICS = (("mse", False), ("rmse", False), ("mae", False), ("r2", True))
# Exactly the types a fitted forest's skops file holds.
ESTIMATORS = ("sklearn.ensemble._forest.RandomForestClassifier", "sklearn.ensemble._forest.RandomForestRegressor")
HELPERS = ("sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
           "sklearn.tree._tree.Tree")


@register
class RandomForest(_sklearn.SkopsPredictor, Algorithm):
    estimators = ESTIMATORS
    helpers = HELPERS
    name = "random-forest"
    channels = _CHANNELS
    hyperparameters = (
        H("predictor_type", "str", required=True, choices=("classifier", "regressor")),
        H("n_estimators", "int", 100, min=1),
        H("max_depth", "int", min=1, nullable=True),
        H("min_samples_leaf", "int", 1, min=1),
        H("min_samples_split", "int", 2, min=2),
        H("max_features", "str"),
        H("bootstrap", "bool", True),
        H("seed", "int", 0),
        H("target", "str"),
    )
    metric_definitions = _sklearn.definitions(_CHANNELS, CLASSIFIER_METRICS + REGRESSOR_METRICS)

    def fit(self, data: Channels) -> RandomForest:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        hp = self.hp
        classify = hp["predictor_type"] == "classifier"
        cls = RandomForestClassifier if classify else RandomForestRegressor
        self.estimator_ = cls(
            n_estimators=hp["n_estimators"], max_depth=hp.get("max_depth"), min_samples_leaf=hp["min_samples_leaf"],
            min_samples_split=hp["min_samples_split"], max_features=_max_features(hp.get("max_features"), classify),
            bootstrap=hp["bootstrap"], random_state=hp["seed"], n_jobs=self.env.num_cpus,
        )
        train = data.train
        assert train.y is not None
        if classify:
            self.classes_ = Classes.fit(train.y, index_labels=False)
            self.estimator_.fit(train.X, self.classes_.codes(train.y, "train"))
        else:
            if train.y.dtype == object:
                raise BuiltinError(
                    "the label holds strings but predictor_type regressor needs numbers; use "
                    "predictor_type classifier"
                )
            self.classes_ = None
            self.estimator_.fit(train.X, train.y)
        for channel, frame in data.evaluated():
            assert frame.y is not None
            pred = self.estimator_.predict(frame.X)
            if self.classes_ is not None:
                scores = _sklearn.classification_scores(self.classes_.codes(frame.y, channel), pred, len(self.classes_.values))
            else:
                scores = _sklearn.regression_scores(frame.y, pred)
            _sklearn.report(self.env, channel, scores)
        return self


def _max_features(value: str | None, classify: bool) -> Any:
    """sklearn's max_features from a string: sqrt, log2, all, a fraction in (0, 1] or a count."""
    if value is None:
        return "sqrt" if classify else 1.0
    text = value.strip().lower()
    if text in ("sqrt", "log2"):
        return text
    if text in ("all", "none"):
        return None
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if number.is_integer() and number >= 1 and "." not in text:
        return int(number)
    if 0 < number <= 1:
        return number
    raise BuiltinError(
        "hyperparameter max_features must be sqrt, log2, all, a fraction in (0, 1] or a feature "
        f"count ≥ 1, got {value!r}"
    )
