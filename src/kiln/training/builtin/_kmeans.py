"""k-means clustering under SageMaker's k-means names, trained by scikit-learn's Lloyd k-means.

Unsupervised: every CSV column is a feature (no label column), as SageMaker's k-means reads CSV.
After training it prints, for train and the test channel when given, the ``eval_metrics``
(``msd``, mean squared distance to the nearest centre; ``ssd``, their sum) in the lines
SageMaker's own metric definitions read: ``#quality_metric: host=algo-1, test msd <loss>=...``.
``predict`` returns each row's cluster index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.training.builtin import _sklearn
from kiln.training.builtin._base import Algorithm, BuiltinError, BuiltinModel, Hyperparameter as H, register
from kiln.training.builtin._data import Channels

__all__ = ["KMeans"]

_CHANNELS = ("train", "test")
ESTIMATORS = ("sklearn.cluster._kmeans.KMeans",)


@register
class KMeans(Algorithm):
    name = "kmeans"
    channels = _CHANNELS
    supervised = False
    hyperparameters = (
        H("k", "int", required=True, min=1),
        H("feature_dim", "int", "auto", min=1, auto=True),
        H("init_method", "str", "random", choices=("random", "kmeans++")),
        H("max_iterations", "int", 300, min=1, aliases=("local_lloyd_max_iter",)),
        H("tol", "float", 0.0001, min=0, aliases=("local_lloyd_tol",)),
        H("eval_metrics", "list", ("msd",), choices=("msd", "ssd")),
        H("seed", "int", 0),
    )
    metric_definitions = _sklearn.definitions(_CHANNELS, (("msd", False), ("ssd", False)))
    estimator_: Any

    def fit(self, data: Channels) -> KMeans:
        from sklearn.cluster import KMeans as SKKMeans

        hp = self.hp
        _sklearn.check_feature_dim(hp["feature_dim"], data.train)
        _sklearn.require_finite(data, self.name)
        if hp["k"] > data.train.rows:
            raise BuiltinError(
                f"hyperparameter k is {hp['k']} but the train channel has only {data.train.rows} "
                "rows; give k ≤ the row count"
            )
        init = "k-means++" if hp["init_method"] == "kmeans++" else "random"
        self.estimator_ = SKKMeans(n_clusters=hp["k"], init=init, max_iter=hp["max_iterations"], tol=hp["tol"],
                                   n_init="auto", random_state=hp["seed"]).fit(data.train.X)
        for channel, frame in data.evaluated():
            ssd = float(-self.estimator_.score(frame.X))
            values = {"msd": (ssd / frame.rows, False), "ssd": (ssd, False)}
            _sklearn.report(self.env, channel, {m: values[m] for m in hp["eval_metrics"]})
        return self

    def save(self, model_dir: Path) -> dict[str, Any]:
        return {**_sklearn.dump(self.estimator_, model_dir), "task": "clustering", "classes": None,
                "label_encoding": "none", "k": int(self.estimator_.n_clusters)}

    @classmethod
    def load(cls, model_dir: Path, manifest: dict[str, Any]) -> BuiltinModel:
        estimator = _sklearn.load(model_dir, manifest, estimators=ESTIMATORS)
        return BuiltinModel(manifest=manifest, model=estimator, _predict=estimator.predict)
