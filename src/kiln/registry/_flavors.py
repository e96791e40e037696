"""Flavors: how a kind of model is saved into a package and loaded back as a Predictor.

A flavor is small on purpose (see :class:`Flavor`); built-ins register the same
way a plugin would, with :func:`register_flavor`. Formats that need no pickle
come first: skops for scikit-learn, native JSON/UBJ for XGBoost, native text
for LightGBM, ONNX. A pickle from outside Kiln loads only with ``trust_pickle``.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kiln.core.errors import InvalidArgument, PermissionDenied
from kiln.registry._models import Manifest, Signature

__all__ = [
    "Flavor",
    "FlavorCapabilities",
    "LoadOptions",
    "PackageSchema",
    "Predictor",
    "flavor_for_object",
    "get_flavor",
    "known_flavors",
    "register_flavor",
]


@dataclass(frozen=True)
class FlavorCapabilities:
    from_object: bool
    uses_pickle: bool = False
    # Loading imports code the package brings (code/inference.py, a training script).
    runs_code: bool = False


@dataclass(frozen=True)
class LoadOptions:
    trust_pickle: bool = False
    trusted_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class PackageSchema:
    """What a package's own files say of its model's inputs and outputs (read as data)."""

    signature: Signature
    task: str | None = None
    classes: list[Any] | None = None


class ManifestFacts:
    """What a loaded model's manifest says of it (in this process or in a worker)."""

    manifest: Manifest

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def task(self) -> str | None:
        return self.manifest.task

    @property
    def classes(self) -> list[Any] | None:
        return self.manifest.classes


class Predictor(ManifestFacts):
    """A loaded model: ``predict`` and, for classifiers, ``predict_proba``.

    Inputs may be a pandas DataFrame, a pyarrow Table, a numpy array, a list of
    rows or a list of records; they are shaped to what the model was trained on.
    """

    def __init__(
        self,
        *,
        manifest: Manifest,
        model: Any,
        predict: Callable[[Any], Any],
        predict_proba: Callable[[Any], Any] | None = None,
        handlers: Any = None,
    ) -> None:
        self.manifest = manifest
        self.model = model
        self._predict = predict
        self._predict_proba = predict_proba
        self.handlers = handlers

    @property
    def can_predict_proba(self) -> bool:
        return self._predict_proba is not None

    def predict(self, data: Any) -> Any:
        """Predictions as a numpy array."""
        import numpy as np

        return np.asarray(self._predict(data))

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities, one column per class in ``classes`` order.

        Raises:
            InvalidArgument: this model gives no probabilities.
        """
        import numpy as np

        if self._predict_proba is None:
            raise InvalidArgument(f"this {self.flavor} model does not give class probabilities")
        return np.asarray(self._predict_proba(data))

    def __repr__(self) -> str:
        return f"Predictor(flavor={self.flavor!r}, task={self.task!r})"


def as_frame(data: Any, manifest: Manifest, names: list[str] | None = None) -> Any:
    """Shape input like the training data: a DataFrame with its column names when it had them.

    ``names`` are the model's own feature names when it knows them (``[]``: it was
    fitted on an unnamed array); by default the signature's names are used.
    """
    import numpy as np
    import pandas as pd

    if hasattr(data, "schema") and hasattr(data, "to_pandas"):
        data = data.to_pandas()
    if names is None:
        names = [c.name or "" for c in manifest.signature.inputs] if manifest.signature else []
    named = bool(names) and all(names)
    if isinstance(data, pd.DataFrame):
        if named:
            missing = [n for n in names if n not in data.columns]
            if missing:
                raise InvalidArgument(f"input is missing column {missing[0]!r}; the model takes {names}")
            return data[names]
        return data.to_numpy()
    if isinstance(data, dict):
        return as_frame(pd.DataFrame(data), manifest, names)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return as_frame(pd.DataFrame.from_records(data), manifest, names)
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if named:
        if arr.shape[1] != len(names):
            raise InvalidArgument(f"input has {arr.shape[1]} columns; the model takes {len(names)}: {names}")
        return pd.DataFrame(arr, columns=names)
    return arr


def as_array(data: Any, manifest: Manifest, dtype: Any = None) -> Any:
    import numpy as np

    shaped = as_frame(data, manifest)
    arr = shaped.to_numpy() if hasattr(shaped, "to_numpy") else np.asarray(shaped)
    return arr.astype(dtype) if dtype is not None else arr


class Flavor(ABC):
    """How one kind of model is packaged and loaded."""

    name: ClassVar[str]
    capabilities: ClassVar[FlavorCapabilities]

    def accepts(self, model: Any) -> bool:
        """Whether :meth:`save` can package this in-memory object."""
        return False

    @abstractmethod
    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write the model's files into ``folder``; return the flavor options for the manifest."""

    @abstractmethod
    def detect(self, folder: Path) -> dict[str, Any] | None:
        """Flavor options if ``folder`` holds a model of this flavor, else None."""

    @abstractmethod
    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        """Load a verified package folder."""

    def check(self, folder: Path, manifest: Manifest) -> None:
        """Refuse a package whose options name files it does not hold (no loading)."""
        name = manifest.flavor_options.get("file")
        if name is not None and name not in manifest.files:
            raise InvalidArgument(f"{self.name} package names model file {name!r}, which it does not hold")

    def schema(self, folder: Path) -> PackageSchema | None:
        """The input schema (and task, classes) the package's own files state, or None.

        Read on every registration of a folder of this flavor, by a job or by path, and
        recorded in the manifest; it is data, parsed strictly, never code that runs.

        Raises:
            InvalidArgument: the package's schema file is malformed (the message names it).
        """
        return None


_FLAVORS: dict[str, Flavor] = {}


def register_flavor(flavor: Flavor) -> None:
    """Make a flavor known by its name (built-ins register the same way)."""
    _FLAVORS[flavor.name] = flavor


def known_flavors() -> list[str]:
    _builtins()
    return sorted(_FLAVORS)


# The registry's other built-in flavors live in their own modules (they import nothing heavy
# until a model loads); they register on the first lookup, so a model worker that imports
# only this module still knows every built-in, in the order flavor_for_object tries them.
_BUILTIN_MODULES = ("kiln.registry._native", "kiln.registry._sagemaker")

# Flavors that later stages define, imported when a package of theirs is first met (in a
# model worker too), as a plugin's would be: name -> module that registers the flavor.
PLUGIN_FLAVORS: dict[str, str] = {"builtin": "kiln.training.builtin._flavor", "automl": "kiln.automl._model"}


def _builtins() -> None:
    missing = [m for m in _BUILTIN_MODULES if m not in sys.modules]
    if missing:
        import importlib

        for module in missing:
            importlib.import_module(module)


def _lookup(name: str) -> Flavor | None:
    flavor = _FLAVORS.get(name)
    if flavor is None:
        _builtins()
        flavor = _FLAVORS.get(name)
    if flavor is None and isinstance(name, str) and name in PLUGIN_FLAVORS:
        import importlib

        importlib.import_module(PLUGIN_FLAVORS[name])
        flavor = _FLAVORS.get(name)
    return flavor


def flavor_runs_code(name: str) -> bool:
    """Whether loading a package of this flavor imports code the package brings."""
    flavor = _lookup(name)
    return flavor is not None and flavor.capabilities.runs_code


def get_flavor(name: str) -> Flavor:
    flavor = _lookup(name)
    if flavor is None:
        raise InvalidArgument(f"unknown model flavor {str(name)[:40]!r}: use one of {', '.join(known_flavors())}")
    return flavor


def flavor_for_object(model: Any) -> Flavor:
    _builtins()
    for flavor in list(_FLAVORS.values()):
        if flavor.accepts(model):
            return flavor
    raise InvalidArgument(
        f"cannot package a {type(model).__module__}.{type(model).__name__} from the object: "
        "register scikit-learn, XGBoost, LightGBM or ONNX models, or a folder with code/inference.py (custom flavor)"
    )


def first_file(folder: Path, *patterns: str) -> str | None:
    for pattern in patterns:
        hits = sorted(p for p in Path(folder).rglob(pattern) if p.is_file() and "code" not in p.relative_to(folder).parts[:1])
        if hits:
            return hits[0].relative_to(folder).as_posix()
    return None


# -- scikit-learn (skops) --------------------------------------------------------------

# Types skops does not trust by default but Kiln accepts: plain estimators and arrays
# from these packages. Callables that read files or run code are never accepted.
_VETTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "scipy.special.", "xgboost.sklearn.", "lightgbm.sklearn.")
_DENIED_WORDS = ("load", "save", "file", "open", "exec", "eval", "system", "import", "pickle", "memmap", "io.")


def _vetted(type_name: str) -> bool:
    lower = type_name.lower()
    return type_name.startswith(_VETTED_PREFIXES) and not any(w in lower for w in _DENIED_WORDS)


class SklearnFlavor(Flavor):
    name = "sklearn"
    capabilities = FlavorCapabilities(from_object=True)

    def accepts(self, model: Any) -> bool:
        module = type(model).__module__
        if module.startswith(("xgboost", "lightgbm")):
            return False
        try:
            from sklearn.base import BaseEstimator
        except ImportError:  # pragma: no cover - scikit-learn is a dependency
            return False
        return isinstance(model, BaseEstimator)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        import skops.io

        skops.io.dump(model, Path(folder) / "model.skops")
        untrusted = skops.io.get_untrusted_types(file=Path(folder) / "model.skops")
        return {"file": "model.skops", "format": "skops", "untrusted_types": sorted(untrusted)}

    def detect(self, folder: Path) -> dict[str, Any] | None:
        found = first_file(folder, "*.skops")
        if found:
            return {"file": found, "format": "skops"}
        found = first_file(folder, "*.joblib", "*.pkl", "*.pickle")
        if found:
            return {"file": found, "format": "joblib" if found.endswith(".joblib") else "pickle"}
        return None

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        opts = manifest.flavor_options
        path = Path(folder) / opts["file"]
        fmt = opts.get("format", "skops")
        if fmt == "skops":
            import skops.io

            untrusted = skops.io.get_untrusted_types(file=path)
            refused = [t for t in untrusted if not _vetted(t) and t not in options.trusted_types]
            if refused:
                raise PermissionDenied(
                    f"model file holds types Kiln does not load by default: {', '.join(refused[:5])}; "
                    "if you trust them, pass trusted_types=[...] naming them"
                )
            model = skops.io.load(path, trusted=list(untrusted))
        elif fmt in ("pickle", "joblib", "cloudpickle"):
            model = load_pickle(path, manifest, options)
        else:
            raise InvalidArgument(f"scikit-learn model format {fmt!r} is not one of skops, pickle or joblib")
        return estimator_predictor(model, manifest)


def estimator_predictor(model: Any, manifest: Manifest) -> Predictor:
    """A Predictor over an object with scikit-learn's predict / predict_proba."""
    known = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in known] if known is not None else []

    def shaped(data: Any) -> Any:
        return as_frame(data, manifest, names)

    proba = getattr(model, "predict_proba", None)
    return Predictor(
        manifest=manifest, model=model, predict=lambda d: model.predict(shaped(d)),
        predict_proba=(lambda d: proba(shaped(d))) if proba is not None else None,
    )


def require_trust(manifest: Manifest, options: LoadOptions, what: str) -> None:
    """Refuse to run a package's own code (a pickle, ``code/inference.py``) unless trusted.

    Whatever a package's manifest says of its origin, its code runs only when the
    loader was told to trust it: by the caller for its own process, by an admin's
    recorded trust for the server's workers.
    """
    if not options.trust_pickle:
        raise PermissionDenied(
            f"this {manifest.flavor} package holds {what}, from {manifest.origin}; loading it runs any code it contains. "
            "On a server an admin trusts the version (`kiln models trust NAME@VERSION`); in your own process "
            "load with trust_pickle=True if you trust its source"
        )


def load_pickle(path: Path, manifest: Manifest, options: LoadOptions) -> Any:
    """Unpickle a model file, only when the loader trusts it.

    Raises:
        PermissionDenied: ``trust_pickle`` is False.
    """
    require_trust(manifest, options, f"model file {path.name!r}, a pickle")
    if path.suffix == ".joblib":
        import joblib

        return joblib.load(path)
    import pickle

    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - gated by require_trust above


# -- custom (SageMaker inference handlers) ------------------------------------------------

_HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
_counter = itertools.count()


def load_handlers(folder: Path, entry: str = "inference.py") -> Any:
    """Import ``code/<entry>`` of a package (``code/inference.py``) as a fresh module, not as ``__main__``."""
    path = Path(folder) / "code" / entry
    if not path.is_file():
        raise InvalidArgument(f"this package has no code/{entry}")
    name = f"kiln_inference_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    code_dir = str(path.parent)
    sys.path.insert(0, code_dir)
    try:
        spec.loader.exec_module(module)
    finally:
        if code_dir in sys.path:
            sys.path.remove(code_dir)
    if hasattr(module, "transform_fn") and any(hasattr(module, h) for h in ("input_fn", "predict_fn", "output_fn")):
        raise InvalidArgument(f"code/{entry} defines transform_fn and input_fn/predict_fn/output_fn; define one or the other")
    return module


class CustomFlavor(Flavor):
    name = "custom"
    capabilities = FlavorCapabilities(from_object=False, runs_code=True)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        raise InvalidArgument("a custom model registers from a folder holding code/inference.py, not from an object")

    def detect(self, folder: Path) -> dict[str, Any] | None:
        return {} if (Path(folder) / "code" / "inference.py").is_file() else None

    def check(self, folder: Path, manifest: Manifest) -> None:
        if "code/inference.py" not in manifest.files:
            raise InvalidArgument("a custom model package needs code/inference.py with model_fn and predict_fn")

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        require_trust(manifest, options, "code/inference.py")
        module = load_handlers(folder)
        if not hasattr(module, "model_fn"):
            raise InvalidArgument("code/inference.py of a custom model must define model_fn(model_dir)")
        model = module.model_fn(str(folder))
        predict_fn = getattr(module, "predict_fn", None)

        def predict(data: Any) -> Any:
            return predict_fn(data, model) if predict_fn else model.predict(data)

        proba = getattr(model, "predict_proba", None)
        return Predictor(manifest=manifest, model=model, predict=predict, predict_proba=proba, handlers=module)


register_flavor(SklearnFlavor())
register_flavor(CustomFlavor())
