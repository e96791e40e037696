"""What the scikit-learn algorithms share: skops files with exact trusted types, metrics, checks.

They log as SageMaker's first-party algorithms do (see ``quality_line``)::

    #quality_metric: host=algo-1, epoch=2, train objective_loss <loss>=0.31
    #quality_metric: host=algo-1, validation accuracy <score>=0.95
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.training.builtin._base import BuiltinError, MetricDefinition, quality_line, quality_metric

if TYPE_CHECKING:
    import numpy as np

    from kiln.training.builtin._data import Channels, Frame
    from kiln.training.builtin._env import TrainingEnv

__all__ = ["check_feature_dim", "definitions", "dump", "load", "report", "require_finite"]

MODEL_FILE = "model.skops"


def dump(estimator: Any, model_dir: Path) -> dict[str, Any]:
    """Save ``estimator`` as ``model.skops`` (no pickle) and return the manifest's file facts."""
    import skops.io as sio

    sio.dump(estimator, model_dir / MODEL_FILE)
    return {"model_file": MODEL_FILE, "model_format": "skops"}


def load(model_dir: Path, manifest: dict[str, Any], trusted: Sequence[str]) -> Any:
    """Load ``model.skops`` trusting exactly ``trusted`` (the types the algorithm saves), never everything.

    Raises:
        BuiltinError: the file holds a type outside ``trusted``.
    """
    import skops.io as sio

    path = model_dir / manifest["model_file"]
    untrusted = set(sio.get_untrusted_types(file=path)) - set(trusted)
    if untrusted:
        raise BuiltinError(f"{path.name} holds types a {manifest['algorithm']} model never has: {sorted(untrusted)}; refusing to load it")
    return sio.load(path, trusted=list(trusted))


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
            raise BuiltinError(f"channel {channel} has {int(bad.sum())} row(s) with missing or infinite features; "
                               f"{algorithm} cannot use them: fill or drop them first (xgboost, lightgbm and random-forest accept missing values)")


def check_feature_dim(value: Any, frame: Frame) -> None:
    """SageMaker's ``feature_dim``: when given (not ``auto``), it must be the data's feature count."""
    if value not in (None, "auto") and value != frame.features:
        raise BuiltinError(f"hyperparameter feature_dim is {value} but the train channel has {frame.features} features; "
                           "set feature_dim to auto or to the feature count")


def classification_scores(codes: np.ndarray, pred: np.ndarray, k: int) -> dict[str, tuple[float, bool]]:
    from sklearn.metrics import accuracy_score, f1_score

    average = "binary" if k == 2 else "macro"
    return {"accuracy": (float(accuracy_score(codes, pred)), True),
            "f1": (float(f1_score(codes, pred, average=average, labels=list(range(k)) if k > 2 else None, zero_division=0)), True)}


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, tuple[float, bool]]:
    import numpy as np

    err = np.asarray(y, dtype=np.float64) - pred
    mse = float(np.mean(err ** 2))
    var = float(np.var(y))
    return {"mse": (mse, False), "rmse": (mse ** 0.5, False), "mae": (float(np.mean(np.abs(err))), False),
            "r2": (1 - mse / var if var > 0 else 0.0, True)}
