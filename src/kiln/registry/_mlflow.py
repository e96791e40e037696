"""Import of an MLflow model folder: read its ``MLmodel`` and map its flavor onto Kiln's.

Native formats load natively (XGBoost, LightGBM boosters, ONNX, skops); MLflow's
scikit-learn flavor is a pickle (or cloudpickle), so such a model is marked as
coming from outside Kiln and loads only with ``trust_pickle=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from kiln.core.errors import InvalidArgument
from kiln.registry._models import ColumnSpec, Lineage, Signature
from kiln.registry._package import check_package_path

__all__ = ["read_mlmodel"]

_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool", "string": "object", "binary": "bytes"}


def _signature(raw: Any) -> Signature | None:
    if not isinstance(raw, dict):
        return None

    def cols(text: Any) -> list[ColumnSpec]:
        try:
            items = orjson.loads(text) if isinstance(text, str) else (text or [])
        except orjson.JSONDecodeError:
            return []
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                kind = str(item.get("type", "object"))
                dtype = item.get("tensor-spec", {}).get("dtype") if kind == "tensor" else _TYPES.get(kind, kind)
                out.append(ColumnSpec(name=item.get("name"), type=str(dtype or "object")))
        return out

    return Signature(inputs=cols(raw.get("inputs")), outputs=cols(raw.get("outputs")))


def read_mlmodel(folder: Path) -> tuple[str, dict[str, Any], Signature | None, Lineage] | None:
    """(flavor, flavor options, signature, lineage) of an MLflow model folder, or None if it is not one.

    Raises:
        InvalidArgument: the MLmodel file is unreadable or names only flavors Kiln cannot load.
    """
    path = Path(folder) / "MLmodel"
    if not path.is_file():
        return None
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"MLmodel is not valid YAML: {exc}") from None
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    if not isinstance(flavors, dict):
        raise InvalidArgument("MLmodel has no 'flavors' section; is this an MLflow model folder?")
    lineage = Lineage(extra={k: str(spec[k]) for k in ("run_id", "model_uuid", "utc_time_created", "mlflow_version") if spec.get(k)})
    signature = _signature(spec.get("signature"))

    def file_of(section: dict[str, Any], *keys: str) -> str:
        for key in keys:
            if section.get(key):
                return check_package_path(str(section[key]))
        raise InvalidArgument(f"MLmodel's flavor section does not name its model file ({' / '.join(keys)})")

    if isinstance(flavors.get("onnx"), dict):
        return "onnx", {"file": file_of(flavors["onnx"], "data")}, signature, lineage
    if isinstance(flavors.get("xgboost"), dict):
        sec = flavors["xgboost"]
        cls = str(sec.get("model_class", "xgboost.core.Booster")).rsplit(".", 1)[-1]
        api = "sklearn" if cls.startswith("XGB") else "booster"
        opts = {"file": file_of(sec, "data"), "format": str(sec.get("model_format", "auto")), "api": api, "class": cls}
        return "xgboost", opts, signature, lineage
    if isinstance(flavors.get("lightgbm"), dict):
        sec = flavors["lightgbm"]
        cls = str(sec.get("model_class", "lightgbm.basic.Booster"))
        if cls.endswith(".Booster"):
            return "lightgbm", {"file": file_of(sec, "data"), "format": "text"}, signature, lineage
        # MLflow pickles LightGBM's scikit-learn wrappers.
        return "sklearn", {"file": file_of(sec, "data"), "format": "pickle"}, signature, lineage
    if isinstance(flavors.get("sklearn"), dict):
        sec = flavors["sklearn"]
        fmt = str(sec.get("serialization_format", "cloudpickle"))
        name = file_of(sec, "pickled_model", "data")
        if fmt == "skops" or name.endswith(".skops"):
            return "sklearn", {"file": name, "format": "skops"}, signature, lineage
        return "sklearn", {"file": name, "format": "pickle"}, signature, lineage
    raise InvalidArgument(
        f"MLflow model flavors {sorted(flavors)} are not supported; Kiln imports onnx, xgboost, lightgbm and sklearn "
        "MLflow models (or package it with code/inference.py as a custom model)"
    )
