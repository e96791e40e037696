"""The AutoML model package and the ``automl`` flavor that serves it.

A package holds ``automl.json`` (the column schema, the classes, the ensemble's members
and weights) and one skops file per member and fold: a scikit-learn Pipeline of the
type-aware preprocessing and the estimator. Loading brings no code of the package's:
:func:`kiln.automl._frame.prepare` (Kiln's) reads the raw rows, and skops loads only
scikit-learn, numpy and SciPy types plus the LightGBM and XGBoost estimators and their
boosters and CatBoost's estimators, so serving it needs no trust (``runs_code`` is False).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from kiln.core.errors import InvalidArgument, PermissionDenied
from kiln.registry._flavors import (
    Flavor,
    FlavorCapabilities,
    LoadOptions,
    PackageSchema,
    Predictor,
    _vetted,
    register_flavor,
)
from kiln.registry._models import ColumnSpec, Manifest, Signature

__all__ = ["AutoMLFlavor", "AutoMLModel", "load_package", "read_spec", "save_package"]

MANIFEST = "automl.json"
# automl.json is small (a schema, classes, member file names); anything bigger is not one.
MAX_SPEC_BYTES = 16 << 20
# Beyond the vetted scikit-learn/numpy/SciPy/estimator types: the boosters the LightGBM and
# XGBoost estimators hold, and CatBoost's estimators (where it is installed), whose state is
# the model's text or bytes, parsed by the library, never run: CatBoost's __setstate__ reads
# its binary model, evaluation arrays and plain parameters; any object among those would be
# a type of its own, and refused here.
EXTRA_TYPES = frozenset({
    "collections.OrderedDict", "lightgbm.basic.Booster", "xgboost.core.Booster",
    "catboost.core.CatBoostClassifier", "catboost.core.CatBoostRegressor",
})


class _Column(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    name: StrictStr
    kind: Literal["numeric", "categorical", "text", "date"]


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    columns: list[_Column] = Field(min_length=1)
    dropped: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class _Member(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    weight: StrictFloat | StrictInt
    files: list[StrictStr] = Field(min_length=1)


class _Spec(BaseModel):
    """The part of automl.json that Kiln reads: checked field by field, as data."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=False)

    task: Literal["classification", "regression"]
    classes: list[StrictBool | StrictInt | StrictFloat | StrictStr] | None = None
    inputs: list[StrictStr] = Field(min_length=1)
    columns: _Schema = Field(alias="schema")
    members: list[_Member] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> _Spec:
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError("inputs name a column twice")
        names = [c.name for c in self.columns.columns]
        if len(set(names)) != len(names):
            raise ValueError("schema.columns name a column twice")
        unknown = [n for n in names if n not in set(self.inputs)]
        if unknown:
            raise ValueError(f"schema.columns name {unknown[0][:80]!r}, which is not among the inputs")
        if (self.task == "classification") != (self.classes is not None):
            raise ValueError("classes must be a list for a classification model and null for a regression one")
        if self.classes is not None and len(self.classes) < 2:
            raise ValueError("a classification model needs at least two classes")
        return self

    def signature(self) -> Signature:
        """The raw rows the model takes: every input column, numeric ones as numbers and the
        others (categories, text, dates, dropped columns) as text, as :func:`prepare` reads them."""
        kinds = {c.name: c.kind for c in self.columns.columns}
        return Signature(inputs=[ColumnSpec(name=n, type="float64" if kinds.get(n) == "numeric" else "str") for n in self.inputs])


def read_spec(folder: Path) -> tuple[dict[str, Any], _Spec]:
    """``automl.json`` of a package, parsed strictly: the raw document and its checked fields.

    The one reading of the file, at registration (by the job or by path) and at load.

    Raises:
        InvalidArgument: the file is missing, too large, not JSON or not shaped as
            :func:`save_package` writes it; the message names the file.
    """
    path = Path(folder) / MANIFEST
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise InvalidArgument(f"not an AutoML package: {MANIFEST} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_SPEC_BYTES:
        raise InvalidArgument(f"{MANIFEST} in the model package is larger than {MAX_SPEC_BYTES >> 20} MB; it is not an AutoML package's")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{MANIFEST} in the model package is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{MANIFEST} in the model package must be a JSON object, not {type(raw).__name__}")
    try:
        spec = _Spec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors(include_input=False)[:3])
        raise InvalidArgument(f"{MANIFEST} in the model package is malformed: {problems[:600]}") from None
    return raw, spec


class AutoMLModel:
    """An AutoML ensemble: raw rows in (the dataset's column names), predictions out."""

    def __init__(self, spec: dict[str, Any], members: list[tuple[float, list[Any]]]) -> None:
        self.spec = spec
        self.members = members
        self.classes_ = spec.get("classes")
        # The dataset's columns but the target, in its order: what a raw row holds.
        self.feature_names_in_ = np.asarray(spec["inputs"], dtype=object)

    @property
    def classify(self) -> bool:
        return self.spec["task"] == "classification"

    def _frame(self, data: Any) -> Any:
        import pandas as pd

        from kiln.automl._frame import prepare

        if not isinstance(data, pd.DataFrame):
            if isinstance(data, list) and data and isinstance(data[0], dict):
                data = pd.DataFrame.from_records(data)
            else:
                arr = np.asarray(data, dtype=object)
                if arr.ndim == 1:
                    arr = arr.reshape(1, -1)
                names = list(self.feature_names_in_)
                if arr.shape[1] != len(names):
                    raise InvalidArgument(f"rows have {arr.shape[1]} values; the model takes {len(names)} columns: {names}")
                data = pd.DataFrame(arr, columns=names)
        try:
            return prepare(data, self.spec["schema"])
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None

    def _raw(self, data: Any) -> Any:
        X = self._frame(data)
        total = None
        k = len(self.classes_ or [])
        for weight, folds in self.members:
            part = None
            for model in folds:
                if self.classify:
                    p = np.asarray(model.predict_proba(X), dtype=float)
                    if p.shape[1] != k:
                        full = np.zeros((p.shape[0], k))
                        full[:, np.asarray(model.classes_, dtype=int)] = p
                        p = full
                else:
                    p = np.asarray(model.predict(X), dtype=float)
                part = p if part is None else part + p
            assert part is not None
            part = part / len(folds) * weight
            total = part if total is None else total + part
        return total

    def predict_proba(self, data: Any) -> Any:
        if not self.classify:
            raise InvalidArgument("a regression model gives no class probabilities")
        return self._raw(data)

    def predict(self, data: Any) -> Any:
        raw = self._raw(data)
        if not self.classify:
            return raw
        classes = np.asarray(self.classes_, dtype=object)
        out = classes[raw.argmax(axis=1)]
        try:
            return out.astype(type(self.classes_[0])) if isinstance(self.classes_[0], (int, float, bool)) else out
        except (TypeError, ValueError):
            return out


def save_package(folder: Path, spec: dict[str, Any], members: list[tuple[str, float, list[Any]]]) -> list[str]:
    """Write ``automl.json`` and one skops file per member fold; returns the files written."""
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    entries, written = [], []
    for cid, weight, models in members:
        files = []
        for j, model in enumerate(models):
            name = f"{cid}-fold{j}.skops"
            sio.dump(model, folder / name)
            files.append(name)
        written += files
        entries.append({"candidate": cid, "weight": weight, "files": files})
    (folder / MANIFEST).write_text(json.dumps({**spec, "members": entries}, indent=1, default=str))
    return [*written, MANIFEST]


def load_package(folder: Path, *, trusted_types: tuple[str, ...] = ()) -> AutoMLModel:
    """Load a package :func:`save_package` wrote, refusing any type outside the vetted ones.

    Raises:
        InvalidArgument: ``automl.json`` is missing, malformed or names a file outside the folder.
        PermissionDenied: a model file holds a type Kiln does not load by default.
    """
    import skops.io as sio

    folder = Path(folder)
    spec, _ = read_spec(folder)
    entries = spec["members"]
    members = []
    for entry in entries:
        models = []
        for name in entry["files"]:
            if Path(name).name != name or not name.endswith(".skops"):
                raise InvalidArgument(f"{MANIFEST} names model file {name!r}; it must be a .skops file in the package")
            path = folder / name
            untrusted = sio.get_untrusted_types(file=path)
            refused = [t for t in untrusted if not _vetted(t) and t not in EXTRA_TYPES and t not in trusted_types]
            if refused:
                raise PermissionDenied(f"model file {name} holds types Kiln does not load by default: {', '.join(refused[:5])}")
            models.append(sio.load(path, trusted=list(untrusted)))
        members.append((float(entry["weight"]), models))
    return AutoMLModel(spec, members)


class AutoMLFlavor(Flavor):
    name = "automl"
    capabilities = FlavorCapabilities(from_object=False, runs_code=False)

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        raise InvalidArgument("an AutoML model is registered by the AutoML job that built it")

    def detect(self, folder: Path) -> dict[str, Any] | None:
        return {} if (Path(folder) / MANIFEST).is_file() else None

    def check(self, folder: Path, manifest: Manifest) -> None:
        if MANIFEST not in manifest.files:
            raise InvalidArgument(f"an AutoML model package needs {MANIFEST}")

    def schema(self, folder: Path) -> PackageSchema:
        _, spec = read_spec(folder)
        return PackageSchema(signature=spec.signature(), task=spec.task, classes=spec.classes)

    def load(self, folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
        model = load_package(folder, trusted_types=options.trusted_types)
        return Predictor(manifest=manifest, model=model, predict=model.predict,
                         predict_proba=model.predict_proba if model.classify else None)


register_flavor(AutoMLFlavor())
