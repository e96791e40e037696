"""What the scikit-learn algorithms share: skops files with exact trusted types, metrics, checks.

They log as SageMaker's first-party algorithms do (see ``quality_line``)::

    #quality_metric: host=algo-1, epoch=2, train objective_loss <loss>=0.31
    #quality_metric: host=algo-1, validation accuracy <score>=0.95
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kiln.training.builtin._base import BuiltinError, BuiltinModel, MetricDefinition, quality_line, quality_metric

if TYPE_CHECKING:
    import numpy as np

    from kiln.training.builtin._data import Channels, Classes, Frame
    from kiln.training.builtin._env import TrainingEnv

__all__ = ["SkopsPredictor", "check_feature_dim", "definitions", "dump", "load", "report", "require_finite"]

MODEL_FILE = "model.skops"


def dump(estimator: Any, model_dir: Path) -> dict[str, Any]:
    """Save ``estimator`` as ``model.skops`` (no pickle) and return the manifest's file facts."""
    import skops.io as sio

    sio.dump(estimator, model_dir / MODEL_FILE)
    return {"model_file": MODEL_FILE, "model_format": "skops"}


class SkopsPredictor:
    """``save`` and ``load`` of an algorithm whose model is one scikit-learn classifier or regressor
    (``estimator_``) and, for a classifier, its encoded ``classes_``; the class names the types
    its skops file may hold (``estimators``, ``helpers``, as :func:`load` takes them)."""

    estimators: ClassVar[tuple[str, ...]]
    helpers: ClassVar[tuple[str, ...]] = ()
    estimator_: Any
    classes_: Classes | None

    def save(self, model_dir: Path) -> dict[str, Any]:
        return {**dump(self.estimator_, model_dir),
                "task": "classification" if self.classes_ is not None else "regression",
                "classes": self.classes_.values if self.classes_ is not None else None,
                "label_encoding": "classes" if self.classes_ is not None else "none"}

    @classmethod
    def load(cls, model_dir: Path, manifest: dict[str, Any]) -> BuiltinModel:
        from kiln.training.builtin._data import Classes

        estimator = load(model_dir, manifest, estimators=cls.estimators, helpers=cls.helpers)
        if manifest["task"] != "classification":
            return BuiltinModel(manifest=manifest, model=estimator, _predict=estimator.predict)
        classes = Classes(values=manifest["classes"], encoded=True)
        return BuiltinModel(manifest=manifest, model=estimator, _predict=lambda X: classes.decode(estimator.predict(X)),
                            _predict_proba=estimator.predict_proba)


# What every skops file holds besides the estimator's own classes: containers, arrays, scalars.
_PLAIN = frozenset({
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float", "builtins.bool",
    "numpy.ndarray", "numpy.dtype", "numpy.int32", "numpy.int64", "numpy.float32", "numpy.float64", "numpy.bool_",
})


def load(model_dir: Path, manifest: dict[str, Any], *, estimators: Sequence[str], helpers: Sequence[str] = ()) -> Any:
    """Load ``model.skops`` trusting exactly the types its algorithm saves, never skops's wider defaults.

    Every type the file names (read from its schema) must be one of ``estimators`` (the object
    itself), ``helpers`` (what they hold: trees, loss objects, indexes) or plain containers and
    arrays; skops is then told to trust only those.

    Raises:
        BuiltinError: the file names any other type, or its top object is not one of ``estimators``.
    """
    import skops.io as sio

    path = model_dir / manifest["model_file"]
    allowed = _PLAIN | set(estimators) | set(helpers)
    named = _schema_types(path) | set(sio.get_untrusted_types(file=path))
    stray = sorted(named - allowed)
    if stray:
        raise BuiltinError(
            f"{path.name} holds types a {manifest['algorithm']} model never has: {stray[:5]}; "
            "refusing to load it"
        )
    model = sio.load(path, trusted=sorted(set(sio.get_untrusted_types(file=path))))
    top = f"{type(model).__module__}.{type(model).__qualname__}"
    if top not in estimators:
        raise BuiltinError(f"{path.name} holds a {top}, not a {manifest['algorithm']} model; refusing to use it")
    return model


def _schema_types(path: Path) -> set[str]:
    """Every ``module.class`` a skops file's schema names, at any depth."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BuiltinError(f"{path.name} is not a readable skops file ({exc})") from None
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def definitions(channels: Sequence[str], metrics: Sequence[tuple[str, bool]]) -> tuple[MetricDefinition, ...]:
    """Definitions for each ``channel:metric`` (``metrics`` as (name, maximize))."""
    return tuple(quality_metric(c, m, maximize=up) for c in channels for m, up in metrics)


def report(env: TrainingEnv, channel: str, values: dict[str, tuple[float, bool]], *, epoch: int | None = None) -> None:
    """Print one ``#quality_metric`` line per metric (``values`` as name -> (value, maximize))."""
    for name, (value, maximize) in values.items():
        print(quality_line(env.current_host, channel, name, value, maximize=maximize, epoch=epoch), flush=True)


def require_finite(data: Channels, algorithm: str) -> None:
    """scikit-learn's linear models, k-means and neighbours refuse NaN: say so before they do."""
    import numpy as np

    for channel, frame in data.evaluated():
        bad = ~np.isfinite(frame.X).all(axis=1)
        if bad.any():
            raise BuiltinError(
                f"channel {channel} has {int(bad.sum())} row(s) with missing or infinite features; {algorithm} "
                "cannot use them: fill or drop them first (xgboost, lightgbm and random-forest accept missing values)"
            )


def check_feature_dim(value: Any, frame: Frame) -> None:
    """SageMaker's ``feature_dim``: when given (not ``auto``), it must be the data's feature count."""
    if value not in (None, "auto") and value != frame.features:
        raise BuiltinError(f"hyperparameter feature_dim is {value} but the train channel has {frame.features} features; "
                           "set feature_dim to auto or to the feature count")


def classification_scores(codes: np.ndarray, pred: np.ndarray, k: int) -> dict[str, tuple[float, bool]]:
    from sklearn.metrics import accuracy_score, f1_score

    average = "binary" if k == 2 else "macro"
    f1 = f1_score(codes, pred, average=average, labels=list(range(k)) if k > 2 else None, zero_division=0)
    return {"accuracy": (float(accuracy_score(codes, pred)), True), "f1": (float(f1), True)}


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, tuple[float, bool]]:
    import numpy as np

    err = np.asarray(y, dtype=np.float64) - pred
    mse = float(np.mean(err ** 2))
    var = float(np.var(y))
    return {"mse": (mse, False), "rmse": (mse ** 0.5, False), "mae": (float(np.mean(np.abs(err))), False),
            "r2": (1 - mse / var if var > 0 else 0.0, True)}
