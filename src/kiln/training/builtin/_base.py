"""The interface every built-in algorithm follows: declared hyperparameters, metric definitions, fit, save, load.

A built-in algorithm is a program that honours SageMaker's training contract itself, so the job
runner launches it like any user script (``python -m kiln.training.builtin ALGO``). This module
holds the small pieces they share: hyperparameter declarations and coercion, the metric lines
they print and the regexes that read them back, and the loaded-model wrapper.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from kiln.core.errors import InvalidArgument

if TYPE_CHECKING:
    from kiln.training.builtin._data import Channels
    from kiln.training.builtin._env import TrainingEnv

__all__ = [
    "Algorithm",
    "BuiltinError",
    "BuiltinModel",
    "Hyperparameter",
    "MetricDefinition",
    "quality_line",
    "quality_metric",
    "register",
    "registered",
    "require",
]

MANIFEST = "kiln-algorithm.json"
# Hyperparameters SageMaker reserves for itself; never a user's, never refused.
RESERVED_PREFIX = "sagemaker_"
TUNING_OBJECTIVE = "_tuning_objective_metric"


class BuiltinError(InvalidArgument):
    """A bad input a person can fix: the message is written to ``output/failure`` as it is."""


Kind = Literal["int", "float", "str", "bool", "list"]
_KIND_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "list": "a list (JSON or comma-separated)"}


@dataclass(frozen=True)
class Hyperparameter:
    """One declared hyperparameter: its type, default, allowed range or choices.

    Values arrive as SageMaker sends them (strings, or JSON-decoded numbers in ``SM_HPS``) and
    are coerced by ``kind``. ``auto=True`` also accepts the string ``"auto"`` (kept as is);
    ``nullable=True`` accepts ``None``/``"none"`` (kept as ``None``).
    """

    name: str
    kind: Kind
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    auto: bool = False
    nullable: bool = False
    aliases: tuple[str, ...] = ()

    def describe(self) -> str:
        """What a valid value looks like, for error messages (``an integer ≥ 0``)."""
        if self.choices:
            text = ("a list of " if self.kind == "list" else "") + "one of " + ", ".join(self.choices)
        else:
            text = _KIND_WORDS[self.kind]
            lo = None if self.min is None else f"{'>' if self.min_open else '≥'} {_num(self.min)}"
            hi = None if self.max is None else f"{'<' if self.max_open else '≤'} {_num(self.max)}"
            if lo and hi:
                text += f" {lo} and {hi}"
            elif lo or hi:
                text += f" {lo or hi}"
        if self.auto:
            text += ' or "auto"'
        if self.nullable:
            text += ' or "none"'
        return text

    def coerce(self, value: Any) -> Any:
        """The value converted to ``kind`` and checked, or :class:`BuiltinError` naming the rule."""
        if self.auto and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if self.nullable and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", ""))):
            return None
        converted = _convert(self.kind, value)
        if converted is None or not self._in_range(converted):
            raise BuiltinError(f"hyperparameter {self.name} must be {self.describe()}, got {_show(value)}")
        return converted

    def _in_range(self, value: Any) -> bool:
        if self.choices is not None:
            return all(v in self.choices for v in value) if self.kind == "list" else value in self.choices
        if self.kind in ("int", "float"):
            if self.min is not None and (value < self.min or (self.min_open and value == self.min)):
                return False
            if self.max is not None and (value > self.max or (self.max_open and value == self.max)):
                return False
        return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _convert(kind: Kind, value: Any) -> Any:
    """``value`` as ``kind`` or None when it cannot be one."""
    if kind == "list":
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    return None
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            return None
        return tuple(value)
    if kind == "str":
        return value if isinstance(value, str) else (None if isinstance(value, (dict, list)) or value is None else str(value))
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        return None
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if kind == "int" and re.fullmatch(r"[+-]?\d+", text) else float(text)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if kind == "int":
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        return int(value)
    return float(value)


def coerce_hyperparameters(algorithm: str, declared: Sequence[Hyperparameter], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared hyperparameter with its coerced value or default (absent optional ones omitted).

    Raises:
        BuiltinError: an unknown name (with the list of known ones), a missing required one, or a
            value out of its type or range.
    """
    by_name = {hp.name: hp for hp in declared}
    alias = {a: hp.name for hp in declared for a in hp.aliases}
    values: dict[str, Any] = {}
    for key, raw in given.items():
        if key.startswith(RESERVED_PREFIX) or key == TUNING_OBJECTIVE:
            continue
        name = alias.get(key, key)
        if name not in by_name:
            known = ", ".join(sorted(by_name))
            raise BuiltinError(f"unknown hyperparameter {key!r} for {algorithm}; known hyperparameters are: {known}")
        if name in values:
            raise BuiltinError(f"hyperparameter {name} is given twice (as {name} and as an alias); give it once")
        values[name] = by_name[name].coerce(raw)
    for hp in declared:
        if hp.name in values:
            continue
        if hp.required:
            raise BuiltinError(f"hyperparameter {hp.name} is required for {algorithm}: give {hp.describe()}")
        if hp.default is not None:
            values[hp.name] = hp.default
    return values


@dataclass(frozen=True)
class MetricDefinition:
    """A SageMaker metric definition: the first capture group of ``regex`` in the logs is a value of ``name``."""

    name: str
    regex: str

    def as_dict(self) -> dict[str, str]:
        return {"Name": self.name, "Regex": self.regex}


# Kiln's built-in scikit-learn algorithms log as SageMaker's own first-party algorithms do:
#   #quality_metric: host=algo-1, epoch=3, train objective_loss <loss>=0.31      (per epoch)
#   #quality_metric: host=algo-1, validation binary_classification_accuracy <score>=0.95   (final)
# <loss> marks a metric to minimise, <score> one to maximise.
def quality_line(host: str, channel: str, metric: str, value: float, *, maximize: bool, epoch: int | None = None) -> str:
    """One ``#quality_metric`` log line."""
    where = f"host={host}, " + (f"epoch={epoch}, " if epoch is not None else "")
    return f"#quality_metric: {where}{channel} {metric} <{'score' if maximize else 'loss'}>={float(value)!r}"


def quality_metric(channel: str, metric: str, *, maximize: bool) -> MetricDefinition:
    """The definition reading :func:`quality_line` lines for ``channel:metric`` (per-epoch and final)."""
    tag = "score" if maximize else "loss"
    regex = rf"#quality_metric: host=\S+, (?:epoch=\S+, )?{channel} {re.escape(metric)} <{tag}>=(\S+)"
    return MetricDefinition(f"{channel}:{metric}", regex)


@dataclass
class BuiltinModel:
    """A trained built-in model, loaded back for prediction.

    ``predict`` returns class labels (as trained: the original values) for classifiers, values for
    regressors and cluster indices for clustering; ``predict_proba`` (classifiers that have one)
    returns one column per class in ``manifest["classes"]`` order.
    """

    manifest: dict[str, Any]
    model: Any
    _predict: Callable[[Any], Any]
    _predict_proba: Callable[[Any], Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        return str(self.manifest["algorithm"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def has_proba(self) -> bool:
        """Whether :meth:`predict_proba` answers (classifiers with probabilities)."""
        return self._predict_proba is not None

    def predict(self, X: Any) -> Any:
        return self._predict(_as_matrix(X, self.manifest))

    def predict_proba(self, X: Any) -> Any:
        if self._predict_proba is None:
            raise BuiltinError(f"{self.algorithm} ({self.task}) gives no class probabilities")
        return self._predict_proba(_as_matrix(X, self.manifest))


def _as_matrix(X: Any, manifest: Mapping[str, Any]) -> Any:
    """Rows as a 2-D float32 array (or a SciPy sparse matrix, kept) with the trained feature count."""
    import numpy as np

    if hasattr(X, "tocsr"):
        return X.tocsr()
    names = manifest.get("feature_names")
    if names and hasattr(X, "columns"):
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise BuiltinError(f"input lacks the trained feature columns {missing[:5]}")
        X = X[names]
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    expected = manifest.get("feature_count")
    if expected is not None and arr.shape[1] != expected:
        raise BuiltinError(f"the model was trained on {expected} features; the input rows have {arr.shape[1]}")
    return arr


class Algorithm(ABC):
    """A built-in training algorithm.

    Subclasses declare ``name``, ``hyperparameters``, ``channels`` and ``metric_definitions``
    (matching the lines ``fit`` prints), and implement ``fit``, ``save`` and ``load``. As with
    scikit-learn estimators, ``__init__`` only stores its arguments; learned state ends in ``_``.
    """

    name: ClassVar[str]
    hyperparameters: ClassVar[tuple[Hyperparameter, ...]]
    #: channels it reads; ``train`` is always required, the others optional.
    channels: ClassVar[tuple[str, ...]] = ("train", "validation")
    #: whether the data carries a label (first CSV column, or the ``target`` column).
    supervised: ClassVar[bool] = True
    #: the data formats it reads (see ``_data``): ``csv``, ``parquet``, ``libsvm``.
    formats: ClassVar[tuple[str, ...]] = ("csv", "parquet")
    #: the default metric definitions, matching the lines ``fit`` prints.
    metric_definitions: ClassVar[tuple[MetricDefinition, ...]]

    def __init__(self, *, hyperparameters: Mapping[str, Any], env: TrainingEnv) -> None:
        self.hp = dict(hyperparameters)
        self.env = env

    @abstractmethod
    def fit(self, data: Channels) -> Algorithm:
        """Train on ``data`` (train, plus validation/test when given), printing metric lines; returns self."""

    @abstractmethod
    def save(self, model_dir: Path) -> dict[str, Any]:
        """Write the model in its native format under ``model_dir``; return the manifest's facts
        (``model_file``, ``model_format``, ``task``, ``classes``...)."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path, manifest: dict[str, Any]) -> BuiltinModel:
        """The model saved by :meth:`save`, ready to predict."""

    @classmethod
    def definitions(cls) -> list[dict[str, str]]:
        """The default metric definitions as SageMaker writes them: ``[{"Name", "Regex"}]``."""
        return [m.as_dict() for m in cls.metric_definitions]


def require(module: str, *, extra: str = "ml") -> Any:
    """Import an optional library, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise BuiltinError(f"this algorithm needs {module}: pip install 'kiln[{extra}]'") from None


_REGISTRY: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator adding an algorithm under its ``name`` (built-ins register as a plugin would)."""
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Algorithm]]:
    """Every registered algorithm by name (importing the built-ins first)."""
    from kiln.training.builtin import _algorithms  # noqa: F401  (registers the built-ins)

    return dict(_REGISTRY)
