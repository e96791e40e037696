"""The ``builtin`` model flavor: a model a Kiln built-in algorithm saved (``kiln-algorithm.json``
beside a native XGBoost, LightGBM or skops file). It brings no code: skops loads only each
algorithm's own types, so it needs no trust. The registry finds this module by the
flavor's name when it first meets one (``kiln.registry._flavors.PLUGIN_FLAVORS``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.registry._flavors import Flavor, FlavorCapabilities, LoadOptions, Predictor, register_flavor
from kiln.registry._models import Manifest

__all__ = ["BuiltinFlavor"]

MANIFEST = "kiln-algorithm.json"


class BuiltinFlavor(Flavor):
    name = "builtin"
    capabilities = FlavorCapabilities(from_object=False, runs_code=False)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        raise InvalidArgument("a builtin model is registered by the training job that saved it")

    def detect(self, folder: Path) -> dict[str, Any] | None:
        path = Path(folder) / MANIFEST
        if not path.is_file():
            return None
        try:
            return {"algorithm": str(json.loads(path.read_text())["algorithm"])}
        except (ValueError, KeyError, TypeError):
            return None

    def check(self, folder: Path, manifest: Manifest) -> None:
        if MANIFEST not in manifest.files:
            raise InvalidArgument(f"a builtin model package needs {MANIFEST} beside its model file")

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        from kiln.training.builtin import load_builtin

        model = load_builtin(folder)
        return Predictor(manifest=manifest, model=model, predict=model.predict, predict_proba=model.predict_proba if model.has_proba else None)


register_flavor(BuiltinFlavor())
