"""The ``sagemaker`` flavor: a model saved by a script-mode training job, with the job's code.

Package: the job's ``model/`` files at the root and its source folder as ``code/``;
``flavor_options`` are ``{"entry_point": "train.py", "framework": "sklearn", "source_sha256": ...}``.

Loading follows CONTRACTS.md §2, as SageMaker's framework containers do. The handler
module is ``code/inference.py`` if present, else ``code/<entry_point>`` imported as a
module (not run as ``__main__``) with ``code/`` on ``sys.path``; an entry point that
defines none of the handler functions is not imported at all (it is only training code).
``model_fn(model_dir[, context])`` loads the model when defined; without it the model
folder's own files decide: ``xgboost-model`` or ``*.json``/``*.ubj`` (an XGBoost
Booster), a LightGBM model text file, ``*.joblib``/``*.pkl``, ``*.onnx``.
``input_fn``/``predict_fn``/``transform_fn`` then shape :meth:`Predictor.predict`,
which takes a 2-D array, a DataFrame or CSV text; ``output_fn`` is for the serving
layer (``Predictor.handlers``). Loading imports the package's code, so it needs trust.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.registry._flavors import (
    Flavor,
    FlavorCapabilities,
    LoadOptions,
    Predictor,
    as_frame,
    estimator_predictor,
    get_flavor,
    load_handlers,
    load_pickle,
    register_flavor,
    require_trust,
)
from kiln.registry._models import Manifest

__all__ = ["HandlerParts", "SageMakerFlavor", "load_parts"]

_HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
# Where a model folder's own files are looked for, in CONTRACTS.md §2's order.
_SAVED_FLAVORS = ("xgboost", "lightgbm", "sklearn", "onnx")
_CSV = "text/csv"
_JSON = "application/json"


class SageMakerFlavor(Flavor):
    name = "sagemaker"
    capabilities = FlavorCapabilities(from_object=False, runs_code=True)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        raise InvalidArgument("a sagemaker model is registered by the training job that saved it, or from a folder holding code/")

    def detect(self, folder: Path) -> dict[str, Any] | None:
        code = Path(folder) / "code"
        if (code / "inference.py").is_file():
            return {"entry_point": "inference.py"}
        scripts = sorted(p.name for p in code.glob("*.py")) if code.is_dir() else []
        return {"entry_point": scripts[0]} if len(scripts) == 1 else None

    def check(self, folder: Path, manifest: Manifest) -> None:
        entry = manifest.flavor_options.get("entry_point")
        if entry is None:
            return  # a built-in algorithm's model: no code, the model folder decides how it loads
        if not isinstance(entry, str) or not entry.endswith((".py", ".sh")):
            raise InvalidArgument('a sagemaker package names its training script in flavor_options: {"entry_point": "train.py"}')
        if f"code/{entry}" not in manifest.files and "code/inference.py" not in manifest.files:
            raise InvalidArgument(f"a sagemaker package needs code/{entry} (its entry point) or code/inference.py")

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        parts = load_parts(folder, manifest, options)
        return _with_handlers(parts.module, parts.model, parts.base, manifest, parts.framework, parts.code, parts.handler_file)


@dataclass(frozen=True)
class HandlerParts:
    """A sagemaker package loaded: its handler module (None when its code defines none), the
    model (from ``model_fn``, else the folder's own files, then also as ``base``)."""

    module: Any
    model: Any
    base: Predictor | None
    framework: str
    code: Path
    handler_file: str


def load_parts(folder: Path, manifest: Manifest, options: LoadOptions, context: Any = None) -> HandlerParts:
    """Import the handler module and load the model, as SageMaker's containers do (needs trust)."""
    folder = Path(folder)
    code = folder / "code"
    entry = str(manifest.flavor_options.get("entry_point") or "")
    handler_file = "inference.py" if (code / "inference.py").is_file() else entry
    require_trust(manifest, options, f"code (code/{handler_file})" if handler_file else "a training job's model")
    framework = str(manifest.flavor_options.get("framework") or "")
    with _code_on_path(code):
        module = None
        if handler_file == "inference.py" or (handler_file.endswith(".py") and _defines_handlers(code / handler_file)):
            module = load_handlers(folder, handler_file)
        model_fn = getattr(module, "model_fn", None)
        base: Predictor | None = None
        if model_fn is not None:
            model = _call(model_fn, str(folder), context=context)
        else:
            base = _saved_model(folder, manifest, options, handler_file)
            model = base.model
    return HandlerParts(module, model, base, framework, code, handler_file)


def _defines_handlers(path: Path) -> bool:
    """Whether a script binds a handler name at its top level (a def, an assignment, an import)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return True  # let the import report it
    names: set[str] = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            if isinstance(node, ast.If) and _is_main_guard(node.test):
                continue  # what runs as __main__ only is not there on import
            nodes.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                nodes.extend(handler.body)
    return bool(names & set(_HANDLERS))


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
        and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__"
    )


@contextlib.contextmanager
def _code_on_path(code: Path) -> Iterator[None]:
    """``code/`` importable while the package's code runs (as in SageMaker's container);
    modules imported from it are forgotten afterwards, so two models' ``utils.py`` never mix."""
    path = str(code)
    before = set(sys.modules)
    sys.path.insert(0, path)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(path)
        prefix = path + os.sep
        for name in set(sys.modules) - before:
            if (getattr(sys.modules.get(name), "__file__", None) or "").startswith(prefix):
                sys.modules.pop(name, None)


def _call(fn: Callable[..., Any], *args: Any, context: Any = None) -> Any:
    """Call a handler with or without the trailing ``context`` argument, as the toolkit does."""
    try:
        count = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        count = len(args)
    if count == len(args):
        return fn(*args)
    if count == len(args) + 1:
        return fn(*args, context)
    raise InvalidArgument(f"{getattr(fn, '__name__', 'handler')} takes {count} arguments but {len(args)} were given")


# -- loading without model_fn ---------------------------------------------------------------


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"


def _saved_model(folder: Path, manifest: Manifest, options: LoadOptions, handler_file: str) -> Predictor:
    """The model by what the model folder holds, when the code defines no model_fn."""
    legacy = folder / "xgboost-model"
    if legacy.is_file() and _is_pickle(legacy):  # older XGBoost scripts pickle their Booster
        return _object_predictor(load_pickle(legacy, manifest, options), manifest, handler_file)
    for name in _SAVED_FLAVORS:
        flavor = get_flavor(name)
        found = flavor.detect(folder)
        if found is not None:
            return flavor.load(folder, manifest.model_copy(update={"flavor": name, "flavor_options": found}), options)
    what = f"code/{handler_file} defines no model_fn and " if handler_file else ""
    raise InvalidArgument(
        f"{what}the model folder holds no model Kiln loads itself "
        "(xgboost-model, *.json/*.ubj, LightGBM model.txt, *.joblib/*.pkl, *.onnx); define model_fn(model_dir)"
    )


def _is_xgb_booster(model: Any) -> bool:
    return type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost")


def _object_predictor(model: Any, manifest: Manifest, handler_file: str) -> Predictor:
    """Default predictions for a model object: a Booster on a DMatrix, else ``model.predict``."""
    import numpy as np

    if _is_xgb_booster(model):
        import xgboost as xgb

        def predict(data: Any) -> Any:
            # As SageMaker's XGBoost container: CSV rows carry no feature names.
            return model.predict(xgb.DMatrix(np.asarray(as_frame(data, manifest, []), dtype=float)), validate_features=False)

        return Predictor(manifest=manifest, model=model, predict=predict)
    if type(model).__name__ == "Booster" and type(model).__module__.startswith("lightgbm"):
        return Predictor(manifest=manifest, model=model, predict=lambda d: model.predict(as_frame(d, manifest, [])))
    if not callable(getattr(model, "predict", None)):
        raise InvalidArgument(f"model_fn returned a {type(model).__name__}, which has no predict(); define predict_fn in code/{handler_file}")
    return estimator_predictor(model, manifest)


# -- the handler pipeline -------------------------------------------------------------------


def _with_handlers(
    module: Any, model: Any, base: Predictor | None, manifest: Manifest, framework: str, code: Path, handler_file: str
) -> Predictor:
    """The Predictor: the user's handlers where defined, the defaults (``base``, or the model object's own) elsewhere."""
    input_fn = getattr(module, "input_fn", None)
    predict_fn = getattr(module, "predict_fn", None)
    transform_fn = getattr(module, "transform_fn", None)
    default = transform_fn is None and input_fn is None and predict_fn is None
    if default and base is None:
        base = _object_predictor(model, manifest, handler_file)
    known = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in known] if known is not None else []

    if transform_fn is not None:

        def run(data: Any) -> Any:
            return _decode_output(_call(transform_fn, model, _to_csv(data), _CSV, _JSON))

    elif input_fn is not None or predict_fn is not None:

        def run(data: Any) -> Any:
            # input_fn gets the request as SageMaker would send it; the default decodes CSV.
            x = _call(input_fn, _to_csv(data), _CSV) if input_fn is not None else _default_input(data, framework)
            return _call(predict_fn, x, model) if predict_fn is not None else _default_predict(model, x)

    else:
        assert base is not None

        def run(data: Any) -> Any:
            return base.predict(_shaped(data, names))

    def predict(data: Any) -> Any:
        with _code_on_path(code):
            return run(data)

    proba = None
    if default and base is not None and base.can_predict_proba:

        def proba(data: Any) -> Any:
            with _code_on_path(code):
                return base.predict_proba(_shaped(data, names))

    return Predictor(manifest=manifest, model=model, predict=predict, predict_proba=proba, handlers=module)


def _from_csv(text: str) -> Any:
    """CSV rows as a 2-D float array; with a header row, a DataFrame."""
    import numpy as np
    import pandas as pd

    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=float)
    except ValueError:
        try:
            return pd.read_csv(io.StringIO(text))
        except (ValueError, pd.errors.ParserError) as exc:
            raise InvalidArgument(f"input is not CSV of numbers: {exc}") from None


def _shaped(data: Any, names: list[str]) -> Any:
    """Input for the default predict: CSV parsed; a DataFrame without the model's column names by position."""
    import pandas as pd

    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        data = _from_csv(data)
    if isinstance(data, pd.DataFrame) and names and not set(names) <= {str(c) for c in data.columns}:
        data = data.to_numpy()
    return data


def _default_input(data: Any, framework: str) -> Any:
    """What the framework container's default input_fn makes of CSV: a float array (XGBoost: a DMatrix)."""
    import numpy as np

    if hasattr(data, "schema") and hasattr(data, "to_pandas"):
        data = data.to_pandas()
    arr = np.asarray(_shaped(data, []), dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if framework == "xgboost":
        import xgboost as xgb

        return xgb.DMatrix(arr)
    return arr


def _default_predict(model: Any, x: Any) -> Any:
    if _is_xgb_booster(model):
        import numpy as np
        import xgboost as xgb

        dmatrix = x if isinstance(x, xgb.DMatrix) else xgb.DMatrix(np.asarray(x, dtype=float))
        return model.predict(dmatrix, validate_features=False)
    return model.predict(x)


def _to_csv(data: Any) -> str:
    """The request body SageMaker would get for this input: CSV rows, no header, no trailing newline."""
    import numpy as np
    import pandas as pd

    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        return data.strip("\n")
    if hasattr(data, "schema") and hasattr(data, "to_pandas"):
        data = data.to_pandas()
    if not isinstance(data, pd.DataFrame):
        arr = np.asarray(data)
        data = pd.DataFrame(arr.reshape(1, -1) if arr.ndim == 1 else arr)
    return str(data.to_csv(header=False, index=False)).rstrip("\n")


def _decode_output(result: Any) -> Any:
    """A transform_fn's response (body, or (body, content type)) back into an array."""
    import numpy as np

    body, content_type = result if isinstance(result, tuple) and len(result) == 2 else (result, _JSON)
    content_type = str(content_type).split(";")[0].strip().lower()
    if isinstance(body, (bytes, bytearray)) and content_type == "application/x-npy":
        return np.load(io.BytesIO(bytes(body)), allow_pickle=False)
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8")
    if not isinstance(body, str):
        return np.asarray(body)
    if content_type == _CSV:
        parsed = _from_csv(body)
        arr = np.asarray(parsed)
        return arr.ravel() if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if content_type in (_JSON, "application/jsonlines"):
        import json

        value = json.loads(body)
        if isinstance(value, dict) and "predictions" in value:
            value = value["predictions"]
        return np.asarray(value)
    raise InvalidArgument(f"transform_fn answered {content_type!r}; Kiln reads application/json, text/csv or application/x-npy")


register_flavor(SageMakerFlavor())
