"""The serving runtime: one model version loaded from its verified package, answering requests.

A :class:`Servable` answers a request body as SageMaker's framework containers do
(CONTRACTS.md §2): the package's ``transform_fn``, else ``input_fn`` → ``predict_fn`` →
``output_fn``, each falling back to the default (decode CSV / JSON / NPY / JSONL, the
flavor's ``predict``, encode to the accept type). The same ``/invocations`` body may be
MLflow's scoring JSON, answered as ``{"predictions": [...]}``; :meth:`Servable.infer_v2`
and :meth:`Servable.metadata_v2` speak the Open Inference Protocol V2. No HTTP here.

Classifiers answer labels by default, as SageMaker's scikit-learn container does. Class
probabilities (one column per class, in ``classes`` order) are asked for by name in V2
(``"outputs": [{"name": "predict_proba"}]``) or, in MLflow's JSON, as MLflow's scikit-learn
flavor takes it: ``"params": {"predict_method": "predict_proba"}``.

Handler modules' ``code/`` folder is on ``sys.path`` while they load and while each
handler runs (modules they import are kept, as in a container).
"""

from __future__ import annotations

import inspect
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiln.core.errors import InvalidArgument, KilnError, ModelError
from kiln.registry._flavors import LoadOptions, Predictor, get_flavor, load_handlers, require_trust
from kiln.registry._models import MANIFEST_NAME, Manifest
from kiln.registry._package import read_manifest, verify_folder
from kiln.serving import _codecs
from kiln.serving._codecs import JSON, UTF8_TYPES, Columns, Reply, conform, json_bytes, media_type, to_list

__all__ = ["HandlerContext", "Reply", "Servable"]

_HANDLER_FLAVORS = ("sagemaker", "custom")


class HandlerContext:
    """The trailing ``context`` argument handlers may take: what SageMaker's toolkit context tells.

    ``custom_attributes`` is the request's ``X-Amzn-SageMaker-Custom-Attributes``;
    ``request_properties`` holds the request's headers by their SageMaker names;
    ``system_properties`` holds ``model_dir``.
    """

    __slots__ = ("custom_attributes", "model_dir", "request_properties", "system_properties")

    def __init__(self, model_dir: str, *, content_type: str | None = None, accept: str | None = None, attributes: str | None = None) -> None:
        self.model_dir = model_dir
        self.custom_attributes = attributes
        self.system_properties = {"model_dir": model_dir}
        props = {"Content-Type": content_type, "Accept": accept, "X-Amzn-SageMaker-Custom-Attributes": attributes}
        self.request_properties = {k: v for k, v in props.items() if v is not None}

    def get_request_header(self, idx: int, key: str) -> str | None:  # MMS Context's accessor
        return self.request_properties.get(key)


class _Handler:
    """A user handler with its arity checked once at load (the toolkit checks per call)."""

    __slots__ = ("fn", "takes_context")

    def __init__(self, fn: Callable[..., Any], nargs: int) -> None:
        try:
            count = len(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            count = nargs
        if count not in (nargs, nargs + 1):
            name = getattr(fn, "__name__", "handler")
            raise InvalidArgument(f"{name} takes {count} arguments; it must take {nargs} (or {nargs + 1} with context)")
        self.fn = fn
        self.takes_context = count == nargs + 1


class Servable:
    """One model version, loaded in this (serving worker) process, answering requests.

    Build it with :meth:`load`. ``manifest`` is the package's manifest, ``name`` the name
    V2 responses carry.
    """

    manifest: Manifest
    name: str

    def __init__(
        self,
        *,
        name: str,
        manifest: Manifest,
        folder: Path,
        model: Any,
        predictor: Predictor | None,
        columns: Columns,
        module: Any = None,
        framework: str = "",
        code: Path | None = None,
    ) -> None:
        self.name = name
        self.manifest = manifest
        self.folder = folder
        self.model = model
        self.columns = columns
        self._predictor = predictor
        self._framework = framework
        self._code = str(code) if code is not None else None
        self._fast: Callable[[Any], Any] | None = None
        self.fast_path: str | None = None  # which fast path serves (None: the framework's own predict)
        self._redact = [str(folder.resolve()), str(folder)]
        h = {n: getattr(module, n, None) for n in ("input_fn", "predict_fn", "output_fn", "transform_fn")}
        self._input_fn = _Handler(h["input_fn"], 2) if h["input_fn"] else None
        self._predict_fn = _Handler(h["predict_fn"], 2) if h["predict_fn"] else None
        self._output_fn = _Handler(h["output_fn"], 2) if h["output_fn"] else None
        self._transform_fn = _Handler(h["transform_fn"], 4) if h["transform_fn"] else None
        if self._transform_fn and (self._input_fn or self._predict_fn or self._output_fn):
            raise InvalidArgument("the package's code defines transform_fn and input_fn/predict_fn/output_fn; define one or the other")
        self._handlers = any((self._input_fn, self._predict_fn, self._output_fn, self._transform_fn))
        # Plain numeric rows of a known width may skip the general decoders (same result).
        self._plain = columns.all_numeric and columns.count is not None
        if predictor is None and not (self._predict_fn or self._transform_fn):
            raise InvalidArgument(f"the model ({type(model).__name__}) has no predict(); define predict_fn in the package's code")

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        trusted: bool,
        trusted_types: Sequence[str] = (),
        fast_path: bool = True,
        name: str = "model",
    ) -> Servable:
        """Load a verified package folder (its ``kiln-model.json`` inside), checking its files' hashes.

        Args:
            folder: the package folder.
            trusted: whether the package's code (pickles, handler modules) may run.
            trusted_types: skops types to accept beyond Kiln's vetted ones.
            fast_path: use a compiled fast path where one reproduces the framework's outputs.
            name: the model's name in V2 responses.

        Raises:
            InvalidArgument: no manifest, files not matching their hashes, a bad package.
            PermissionDenied: the package runs code and ``trusted`` is False.
            ModelError: the model's own loading code failed.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest is None:
            raise InvalidArgument(f"the folder holds no {MANIFEST_NAME}; serve a verified model package")
        verify_folder(folder, manifest, exact=False)
        options = LoadOptions(trust_pickle=trusted, trusted_types=tuple(trusted_types))
        redact = [str(folder.resolve()), str(folder)]
        try:
            servable = cls._build(folder, manifest, options, name)
        except KilnError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model's own loading code
            raise ModelError(f"could not load the {manifest.flavor} model: {_message(exc, redact)}") from None
        if fast_path:
            from kiln.serving._fast import attach_fast_path

            attach_fast_path(servable)
        return servable

    @classmethod
    def _build(cls, folder: Path, manifest: Manifest, options: LoadOptions, name: str) -> Servable:
        if manifest.flavor == "sagemaker":
            from kiln.registry._sagemaker import _object_predictor, load_parts

            parts = load_parts(folder, manifest, options, context=HandlerContext(str(folder)))
            predictor = parts.base
            if predictor is None and _has_predict(parts.model):
                predictor = _object_predictor(parts.model, manifest, parts.handler_file)
            return cls(
                name=name, manifest=manifest, folder=folder, model=parts.model, predictor=predictor,
                columns=columns_of(manifest, parts.model), module=parts.module, framework=parts.framework, code=parts.code,
            )
        if manifest.flavor == "custom" or "code/inference.py" in manifest.files:
            return cls._build_inference(folder, manifest, options, name)
        predictor = get_flavor(manifest.flavor).load(folder, manifest, options)
        return cls(name=name, manifest=manifest, folder=folder, model=predictor.model, predictor=predictor,
                   columns=columns_of(manifest, predictor.model))

    @classmethod
    def _build_inference(cls, folder: Path, manifest: Manifest, options: LoadOptions, name: str) -> Servable:
        """A package with ``code/inference.py``: its handlers over its flavor's model (or its model_fn's)."""
        from kiln.registry._sagemaker import _call, _code_on_path, _object_predictor

        require_trust(manifest, options, "code/inference.py")
        code = folder / "code"
        with _code_on_path(code):
            module = load_handlers(folder)
            model_fn = getattr(module, "model_fn", None)
            if model_fn is not None:
                model = _call(model_fn, str(folder), context=HandlerContext(str(folder)))
                predictor = _object_predictor(model, manifest, "inference.py") if _has_predict(model) else None
            elif manifest.flavor == "custom":
                raise InvalidArgument("code/inference.py of a custom model must define model_fn(model_dir)")
            else:
                predictor = get_flavor(manifest.flavor).load(folder, manifest, options)
                model = predictor.model
        return cls(name=name, manifest=manifest, folder=folder, model=model, predictor=predictor,
                   columns=columns_of(manifest, model), module=module, code=code)

    # -- SageMaker / MLflow ----------------------------------------------------------------

    def invoke(self, body: bytes, content_type: str | None, accept: str | None, attributes: str | None = None) -> Reply:
        """Answer an ``/invocations`` request body (SageMaker's handlers and defaults, MLflow's JSON).

        Raises:
            UnsupportedMediaType: a content type the defaults do not decode.
            NotAcceptable: an accept type the defaults do not encode.
            InvalidArgument: an empty body, invalid JSON, wrong column count, a value that is not a number.
            ModelError: the model or the package's handlers raised (their message, no traceback).
        """
        if not self._handlers:
            kind = _codecs.choose_accept(accept)  # 406 before any work
            if self._plain and type(body) is bytes:
                rows = _codecs.simple_rows(body, media_type(content_type) or _codecs.CSV, self.columns.count)
                if rows is not None:
                    return _codecs.encode(self._predict_rows(rows), kind)
            decoded = _codecs.decode(body, content_type, self.columns)
            rows = conform(decoded.rows, self.columns)
            if decoded.mlflow:
                method = (decoded.params or {}).get("predict_method", "predict")
                if method == "predict_proba":
                    return Reply(json_bytes({"predictions": to_list(self.predict_proba_array(rows))}), JSON)
                if method != "predict":
                    raise InvalidArgument(f"params.predict_method {str(method)[:40]!r} is not predict or predict_proba")
                return Reply(json_bytes({"predictions": to_list(self._predict_rows(rows))}), JSON)
            return _codecs.encode(self._predict_rows(rows), kind)
        return self._invoke_handlers(body, content_type, accept, attributes)

    def _invoke_handlers(self, body: bytes, content_type: str | None, accept: str | None, attributes: str | None) -> Reply:
        accept_h = accept if accept and accept.strip() and accept.strip() != "*/*" else JSON
        ctx = HandlerContext(str(self.folder), content_type=content_type, accept=accept, attributes=attributes)
        if self._transform_fn is not None:
            result = self._run(self._transform_fn, ctx, self.model, self._raw(body, content_type), content_type, accept_h)
            return self._reply(result, accept_h)
        if self._output_fn is None:
            _codecs.choose_accept(accept)
        mlflow = False
        if self._input_fn is not None:
            data = self._run(self._input_fn, ctx, self._raw(body, content_type), content_type)
        else:
            decoded = _codecs.decode(body, content_type, self.columns)
            data, mlflow = conform(decoded.rows, self.columns), decoded.mlflow
            if self._predict_fn is not None and self._framework == "xgboost":
                from kiln.registry._sagemaker import _default_input

                data = _default_input(data, "xgboost")  # the XGBoost container hands predict_fn a DMatrix
        preds = self._run(self._predict_fn, ctx, data, self.model) if self._predict_fn else self._predict_rows(data)
        if self._output_fn is not None:
            return self._reply(self._run(self._output_fn, ctx, preds, accept_h), accept_h)
        if mlflow:
            return Reply(json_bytes({"predictions": to_list(preds)}), JSON)
        return _codecs.encode(preds, accept)

    def decode(self, body: bytes, content_type: str | None) -> Any:
        """Rows from a request body by the default decoders; None when the package's own
        ``input_fn`` or ``transform_fn`` decides how its bodies read.

        Raises:
            UnsupportedMediaType, InvalidArgument: as :meth:`invoke`.
        """
        if self._input_fn is not None or self._transform_fn is not None:
            return None
        return conform(_codecs.decode(body, content_type, self.columns).rows, self.columns)

    def encode(self, predictions: Any, accept: str | None) -> Reply:
        """Predictions as a response body: the package's ``output_fn`` if it has one, else the default encoders.

        Raises:
            NotAcceptable: an accept type the default encoders do not write.
            ModelError: the package's output_fn raised.
        """
        if self._output_fn is not None:
            accept_h = accept if accept and accept.strip() and accept.strip() != "*/*" else JSON
            ctx = HandlerContext(str(self.folder), accept=accept)
            return self._reply(self._run(self._output_fn, ctx, predictions, accept_h), accept_h)
        return _codecs.encode(predictions, accept)

    def predict_array(self, rows: Any) -> Any:
        """Predictions for 2-D rows (an array or a DataFrame; 1-D is one row), as a numpy array.

        Raises:
            InvalidArgument: wrong column count, or a model that only serves through transform_fn.
            ModelError: the model raised.
        """
        if self._transform_fn is not None:
            raise InvalidArgument("this model answers through its transform_fn; send request bodies to invoke()")
        rows = conform(rows, self.columns)
        if self._predict_fn is not None:
            ctx = HandlerContext(str(self.folder))
            return np.asarray(self._run(self._predict_fn, ctx, rows, self.model))
        return np.asarray(self._predict_rows(rows))

    # -- Open Inference Protocol V2 ----------------------------------------------------------

    def infer_v2(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer a V2 ``infer`` body: ``{"id"?, "inputs": [...], "outputs"?}``.

        One input is the rows (2-D; 1-D is one row, or one column for a one-column model);
        several inputs are columns by name, each of shape ``[N]`` or ``[N, 1]``. Outputs
        are ``predict`` (the default) and, for classifiers, ``predict_proba``.

        Raises:
            InvalidArgument: a malformed request (names the field), wrong shapes or datatypes.
            ModelError: the model raised.
        """
        if not isinstance(request, dict):
            raise InvalidArgument('a V2 infer request is a JSON object: {"inputs": [{"name", "shape", "datatype", "data"}]}')
        inputs = request.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InvalidArgument("inputs must be a non-empty list of tensors")
        wanted = self._v2_outputs(request.get("outputs"))
        rows = self._v2_rows([_codecs.v2_tensor(t, f"inputs[{i}]") for i, t in enumerate(inputs)])
        outputs = []
        for name in wanted:
            values = self.predict_proba_array(rows) if name == "predict_proba" else self.predict_array(rows)
            outputs.append(_codecs.v2_output(name, values))
        rid = request.get("id")
        return {"model_name": self.name, "id": str(rid) if rid is not None else uuid.uuid4().hex, "outputs": outputs}

    def _v2_outputs(self, asked: Any) -> list[str]:
        if asked is None:
            return ["predict"]
        if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
            raise InvalidArgument('outputs must be a list of {"name": ...}')
        known = ["predict", "predict_proba"] if self.can_predict_proba else ["predict"]
        names = [o["name"] for o in asked]
        for name in names:
            if name not in known:
                raise InvalidArgument(f"output {name[:60]!r} is not one this model gives; ask for {' or '.join(known)}")
        return names or ["predict"]

    def _v2_rows(self, tensors: list[tuple[str, Any]]) -> Any:
        cols = self.columns
        if len(tensors) == 1:
            arr = tensors[0][1]
            if arr.ndim == 1 and cols.count == 1:
                arr = arr.reshape(-1, 1)
            if arr.ndim not in (1, 2):
                raise InvalidArgument(f"inputs[0] must be 2-D (rows × columns); got shape {list(arr.shape)}")
            return arr.astype(np.float64) if arr.dtype.kind in "biu" and cols.all_numeric else arr
        import pandas as pd

        lengths = set()
        data = {}
        for i, (name, arr) in enumerate(tensors):
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise InvalidArgument(f"inputs[{i}] ({name!r}) is a column: its shape must be [N] or [N, 1], not {list(arr.shape)}")
            if name in data:
                raise InvalidArgument(f"inputs[{i}] repeats the name {name!r}")
            data[name] = arr
            lengths.add(len(arr))
        if len(lengths) != 1:
            raise InvalidArgument(f"input columns have different lengths {sorted(lengths)}; each column needs one value per row")
        return pd.DataFrame(data)

    def metadata_v2(self) -> dict[str, Any]:
        """V2 model metadata: name, platform, inputs and outputs (-1 for variable dimensions)."""
        sig = self.manifest.signature
        cols = self.columns
        types = {c.name: c.type for c in sig.inputs} if sig is not None else {}
        first = sig.inputs[0].type if sig is not None and sig.inputs else "float64"
        if cols.names and not cols.all_numeric:
            inputs = [{"name": n, "datatype": _v2_type(types.get(n, "float64")), "shape": [-1]} for n in cols.names]
        else:
            inputs = [{"name": "input-0", "datatype": _v2_type(first), "shape": [-1, cols.count if cols.count is not None else -1]}]
        out_type = sig.outputs[0].type if sig is not None and sig.outputs else "float64"
        width = len(sig.outputs) if sig is not None and len(sig.outputs) > 1 else None
        outputs = [{"name": "predict", "datatype": _v2_type(out_type), "shape": [-1, width] if width else [-1]}]
        if self.can_predict_proba:
            classes = self.manifest.classes
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes) if classes else -1]})
        return {"name": self.name, "versions": [], "platform": self.manifest.flavor, "inputs": inputs, "outputs": outputs}

    @property
    def can_predict_proba(self) -> bool:
        return self._predictor is not None and self._predictor.can_predict_proba and self._predict_fn is None

    def predict_proba_array(self, rows: Any) -> Any:
        """Class probabilities for 2-D rows, one column per class (classifiers that give them).

        Raises:
            InvalidArgument: the model gives no probabilities.
            ModelError: the model raised.
        """
        if not self.can_predict_proba or self._predictor is None:
            raise InvalidArgument(f"this {self.manifest.flavor} model does not give class probabilities")
        rows = conform(rows, self.columns)
        return self._guard(self._predictor.predict_proba, rows)

    # -- inside --------------------------------------------------------------------------

    def _predict_rows(self, rows: Any) -> Any:
        fast = self._fast
        if fast is not None and type(rows) is np.ndarray:
            return fast(rows)
        return self._default_predict(rows)

    def _default_predict(self, data: Any) -> Any:
        predictor = self._predictor
        if predictor is None:
            raise InvalidArgument("this model has no default predict; its package defines predict_fn")
        if isinstance(data, np.ndarray) or hasattr(data, "iloc") or hasattr(data, "tocsr"):
            return self._guard(predictor.predict, data)
        from kiln.registry._sagemaker import _default_predict

        return self._guard(_default_predict, self.model, data)  # what an input_fn made (a DMatrix, a dict...)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except KilnError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model's own error, answered as ModelError
            raise ModelError(_message(exc, self._redact)) from None

    def _run(self, handler: _Handler, ctx: HandlerContext, *args: Any) -> Any:
        if handler.takes_context:
            args = (*args, ctx)
        code = self._code
        if code is not None:
            sys.path.insert(0, code)
        try:
            return handler.fn(*args)
        except KilnError:
            raise
        except Exception as exc:  # noqa: BLE001 - the package's own code failed
            raise ModelError(_message(exc, self._redact)) from None
        finally:
            if code is not None:
                try:
                    sys.path.remove(code)
                except ValueError:
                    pass

    @staticmethod
    def _raw(body: bytes, content_type: str | None) -> bytes | str:
        """The body as the toolkit hands it to input_fn / transform_fn: text for JSON and CSV, else bytes."""
        if media_type(content_type) in UTF8_TYPES and isinstance(body, (bytes, bytearray)):
            try:
                return bytes(body).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument("request body is not UTF-8 text") from None
        return body

    @staticmethod
    def _reply(result: Any, accept: str) -> Reply:
        """An output_fn's / transform_fn's answer: a body, or ``(body, content_type)``."""
        content_type = accept
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result
        if isinstance(result, str):
            return Reply(result.encode("utf-8"), str(content_type))
        if isinstance(result, (bytes, bytearray, memoryview)):
            return Reply(bytes(result), str(content_type))
        return Reply(json_bytes(result), str(content_type))

    def __repr__(self) -> str:
        return f"Servable(name={self.name!r}, flavor={self.manifest.flavor!r}, fast_path={self.fast_path!r})"


def _v2_type(dtype: str) -> str:
    try:
        return _codecs.v2_datatype(np.dtype(dtype))
    except TypeError:
        return "BYTES"


def _has_predict(model: Any) -> bool:
    return callable(getattr(model, "predict", None))


def _message(exc: BaseException, redact: list[str]) -> str:
    """The model's own error, one paragraph, without this server's paths."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    for path in redact:
        if path:
            text = text.replace(path, "<model_dir>")
    return text[:2000]


def _numeric(dtype: str) -> bool:
    try:
        return np.dtype(dtype).kind in "biufc"
    except TypeError:
        return dtype not in ("object", "str", "string", "category", "bytes")


def columns_of(manifest: Manifest, model: Any) -> Columns:
    """The columns a model takes: its own feature names and count where it knows them, else its signature's."""
    names: tuple[str, ...] | None = None
    count: int | None = None
    numeric: tuple[bool, ...] | None = None
    sig = manifest.signature
    if sig is not None and sig.inputs:
        count = len(sig.inputs)
        if all(c.name for c in sig.inputs):
            names = tuple(str(c.name) for c in sig.inputs)
        numeric = tuple(_numeric(c.type) for c in sig.inputs)
    own_names, own_count = _model_features(model)
    if own_names:
        if names is None or sorted(names) != sorted(own_names):
            numeric = None
        names, count = own_names, len(own_names)
    elif own_count is not None:
        count = own_count
        if names is not None and len(names) != own_count:
            names, numeric = None, None
    if numeric is not None and count is not None and len(numeric) != count:
        numeric = None
    if names is not None and numeric is not None and sig is not None and [c.name for c in sig.inputs] != list(names):
        by_name = {c.name: _numeric(c.type) for c in sig.inputs}
        numeric = tuple(by_name.get(n, True) for n in names)
    return Columns(names=names, count=count, numeric=numeric)


def _model_features(model: Any) -> tuple[tuple[str, ...] | None, int | None]:
    """(feature names, feature count) the model object records, where it does."""
    if type(model).__name__ == "BuiltinModel" and isinstance(getattr(model, "manifest", None), dict):
        count = model.manifest.get("feature_count")
        return None, count if isinstance(count, int) else None
    known = getattr(model, "feature_names_in_", None)
    if known is not None:
        return tuple(str(n) for n in known), len(known)
    count = getattr(model, "n_features_in_", None)
    if isinstance(count, int):
        return None, count
    module = type(model).__module__
    try:
        if module.startswith("xgboost") and type(model).__name__ == "Booster":
            names = model.feature_names
            return (tuple(names) if names else None), int(model.num_features())
        if module.startswith("lightgbm") and type(model).__name__ == "Booster":
            names = model.feature_name()
            unnamed = all(n == f"Column_{i}" for i, n in enumerate(names))
            return (None if unnamed else tuple(names)), int(model.num_feature())
        if type(model).__name__ == "InferenceSession":
            shape = model.get_inputs()[0].shape
            return None, shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    except Exception:  # noqa: BLE001 - a model that cannot say: no column check
        return None, None
    return None, None
