"""Flavors with native, pickle-free formats: XGBoost (JSON/UBJ), LightGBM (text), ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.registry._flavors import (
    Flavor,
    FlavorCapabilities,
    LoadOptions,
    Predictor,
    as_array,
    as_frame,
    estimator_predictor,
    first_file,
    register_flavor,
)
from kiln.registry._models import Manifest

__all__ = ["LightGBMFlavor", "OnnxFlavor", "XGBoostFlavor"]


def _need(module: str, extra: str = "ml") -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InvalidArgument(f"this model needs {module}: pip install 'kiln[{extra}]'") from None


def _from(model: Any, package: str) -> bool:
    return any(c.__module__.split(".")[0] == package for c in type(model).__mro__)


class XGBoostFlavor(Flavor):
    name = "xgboost"
    capabilities = FlavorCapabilities(from_object=True)

    def accepts(self, model: Any) -> bool:
        return _from(model, "xgboost")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        xgb = _need("xgboost")
        target = Path(folder) / "model.ubj"
        model.save_model(str(target))
        api = "sklearn" if isinstance(model, xgb.XGBModel) else "booster"
        return {"file": "model.ubj", "format": "ubj", "api": api, "class": type(model).__name__}

    def detect(self, folder: Path) -> dict[str, Any] | None:
        found = first_file(folder, "xgboost-model", "*.ubj")
        if found:
            return {"file": found, "format": "ubj" if found.endswith(".ubj") else "auto", "api": "booster"}
        # Booster.save_model("model.json"): a JSON document whose first key is "learner".
        for path in sorted(Path(folder).rglob("*.json")):
            rel = path.relative_to(folder)
            if rel.parts[0] != "code" and path.name != "kiln-model.json" and _xgboost_json(path):
                return {"file": rel.as_posix(), "format": "json", "api": "booster"}
        return None

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        xgb = _need("xgboost")
        opts = manifest.flavor_options
        path = str(Path(folder) / opts["file"])
        cls_name = opts.get("class", "")
        if opts.get("api") == "sklearn" and cls_name in ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"):
            model = getattr(xgb, cls_name)()
            model.load_model(path)
            return estimator_predictor(model, manifest)
        booster = xgb.Booster()
        # A file named without .json/.ubj (SageMaker's xgboost-model) loads from its bytes:
        # XGBoost tells the format from them there, instead of guessing from the name with a warning.
        booster.load_model(bytearray(Path(path).read_bytes()) if opts.get("format") == "auto" else path)

        def predict(data: Any) -> Any:
            # As SageMaker's XGBoost container: rows from CSV carry no feature names.
            return booster.predict(xgb.DMatrix(as_array(data, manifest, float)), validate_features=False)

        return Predictor(manifest=manifest, model=booster, predict=predict)


def _xgboost_json(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    return head.startswith(b"{") and head[1:].lstrip().startswith(b'"learner"')


class LightGBMFlavor(Flavor):
    name = "lightgbm"
    capabilities = FlavorCapabilities(from_object=True)

    def accepts(self, model: Any) -> bool:
        return _from(model, "lightgbm")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        lgb = _need("lightgbm")
        booster = model.booster_ if isinstance(model, lgb.LGBMModel) else model
        booster.save_model(str(Path(folder) / "model.txt"))
        opts: dict[str, Any] = {"file": "model.txt", "format": "text", "class": type(model).__name__}
        classes = getattr(model, "classes_", None) if isinstance(model, lgb.LGBMModel) else None
        if classes is not None:
            opts["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
        return opts

    def detect(self, folder: Path) -> dict[str, Any] | None:
        for candidate in (first_file(folder, "model.txt"), first_file(folder, "*.lgb"), first_file(folder, "*.txt")):
            if candidate:
                with open(Path(folder) / candidate, "rb") as fh:
                    if fh.read(5) == b"tree\n":
                        return {"file": candidate, "format": "text"}
        return None

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        import numpy as np

        lgb = _need("lightgbm")
        booster = lgb.Booster(model_file=str(Path(folder) / manifest.flavor_options["file"]))
        classes = manifest.flavor_options.get("classes") or manifest.classes
        if not classes:
            return Predictor(manifest=manifest, model=booster, predict=lambda d: booster.predict(as_frame(d, manifest)))
        labels = np.asarray(classes)

        def proba(data: Any) -> Any:
            p = np.asarray(booster.predict(as_frame(data, manifest)))
            return np.column_stack([1 - p, p]) if p.ndim == 1 else p

        return Predictor(manifest=manifest, model=booster, predict=lambda d: labels[np.argmax(proba(d), axis=1)], predict_proba=proba)


class OnnxFlavor(Flavor):
    name = "onnx"
    capabilities = FlavorCapabilities(from_object=True)

    def accepts(self, model: Any) -> bool:
        return type(model).__name__ == "ModelProto" and hasattr(model, "SerializeToString")

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        (Path(folder) / "model.onnx").write_bytes(model.SerializeToString())
        return {"file": "model.onnx"}

    def detect(self, folder: Path) -> dict[str, Any] | None:
        found = first_file(folder, "*.onnx")
        return {"file": found} if found else None

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        import numpy as np

        ort = _need("onnxruntime")
        session = ort.InferenceSession(str(Path(folder) / manifest.flavor_options["file"]), providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0]
        dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}.get(first.type, np.float32)
        outputs = [o.name for o in session.get_outputs()]

        def run(data: Any) -> list[Any]:
            return session.run(None, {first.name: as_array(data, manifest, dtype)})

        def predict(data: Any) -> Any:
            out = np.asarray(run(data)[0])
            return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

        proba = None
        if len(outputs) > 1:

            def proba(data: Any) -> Any:
                raw = run(data)[1]
                if isinstance(raw, list) and raw and isinstance(raw[0], dict):  # ZipMap output
                    keys = list(raw[0])
                    return np.array([[row[k] for k in keys] for row in raw])
                return np.asarray(raw)

        return Predictor(manifest=manifest, model=session, predict=predict, predict_proba=proba)


register_flavor(XGBoostFlavor())
register_flavor(LightGBMFlavor())
register_flavor(OnnxFlavor())
