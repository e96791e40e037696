"""k-nearest neighbours under SageMaker's k-NN names, by scikit-learn's neighbours index.

``predictor_type`` is ``classifier`` (the neighbours' majority label) or ``regressor`` (their mean
label). ``sample_size`` rows are drawn from the train channel (all of them when not given).
``index_metric`` is ``L2`` or ``COSINE``. For the test (or validation) channel it prints
``accuracy`` or ``mse``, as SageMaker's ``test:accuracy`` / ``test:mse`` definitions read them.
"""

from __future__ import annotations

from kiln.training.builtin import _sklearn
from kiln.training.builtin._base import Algorithm, BuiltinError, Hyperparameter as H, register
from kiln.training.builtin._data import Channels, Classes

__all__ = ["KNN"]

_CHANNELS = ("train", "validation", "test")
_METRIC = {"L2": "euclidean", "COSINE": "cosine"}
ESTIMATORS = ("sklearn.neighbors._classification.KNeighborsClassifier", "sklearn.neighbors._regression.KNeighborsRegressor")
# The index sklearn builds for L2 on few features (brute force, for COSINE or many features, adds none).
HELPERS = ("sklearn.neighbors._kd_tree.KDTree", "sklearn.metrics._dist_metrics.EuclideanDistance64")


@register
class KNN(_sklearn.SkopsPredictor, Algorithm):
    estimators = ESTIMATORS
    helpers = HELPERS
    name = "knn"
    channels = _CHANNELS
    hyperparameters = (
        H("k", "int", required=True, min=1),
        H("predictor_type", "str", required=True, choices=("classifier", "regressor")),
        H("sample_size", "int", min=1),
        H("feature_dim", "int", "auto", min=1, auto=True),
        H("index_metric", "str", "L2", choices=tuple(_METRIC)),
        H("seed", "int", 0),
        H("target", "str"),
    )
    metric_definitions = _sklearn.definitions(("validation", "test"), (("accuracy", True), ("mse", False)))

    def fit(self, data: Channels) -> KNN:
        import numpy as np
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        hp = self.hp
        train = data.train
        assert train.y is not None
        _sklearn.check_feature_dim(hp["feature_dim"], train)
        _sklearn.require_finite(data, self.name)
        X, y = train.X, train.y
        if hp.get("sample_size") and hp["sample_size"] < train.rows:
            rows = np.sort(np.random.default_rng(hp["seed"]).choice(train.rows, size=hp["sample_size"], replace=False))
            X, y = X[rows], y[rows]
        if hp["k"] > len(y):
            raise BuiltinError(
                f"hyperparameter k is {hp['k']} but only {len(y)} training rows are kept; give k ≤ "
                "sample_size and the row count"
            )
        classify = hp["predictor_type"] == "classifier"
        cls = KNeighborsClassifier if classify else KNeighborsRegressor
        self.estimator_ = cls(n_neighbors=hp["k"], metric=_METRIC[hp["index_metric"]], n_jobs=self.env.num_cpus)
        if classify:
            self.classes_ = Classes.fit(y, index_labels=False)
            self.estimator_.fit(X, self.classes_.codes(y, "train"))
        else:
            if y.dtype == object:
                raise BuiltinError(
                    "the label holds strings but predictor_type regressor needs numbers; use "
                    "predictor_type classifier"
                )
            self.classes_ = None
            self.estimator_.fit(X, y)
        # Scoring the train rows against themselves says nothing: only validation and test are scored.
        for channel, frame in data.evaluated()[1:]:
            assert frame.y is not None
            pred = self.estimator_.predict(frame.X)
            if self.classes_ is not None:
                accuracy = float(np.mean(pred == self.classes_.codes(frame.y, channel)))
                _sklearn.report(self.env, channel, {"accuracy": (accuracy, True)})
            else:
                _sklearn.report(self.env, channel, {"mse": _sklearn.regression_scores(frame.y, pred)["mse"]})
        return self
