"""Building packages: from a fitted model object, or by reading a folder a user brings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.registry import _native, _sagemaker  # noqa: F401 - register the native and sagemaker flavors
from kiln.registry._flavors import flavor_for_object, flavor_runs_code, get_flavor
from kiln.registry._mlflow import read_mlmodel
from kiln.registry._models import MANIFEST_NAME, Lineage, Manifest
from kiln.registry._package import (
    framework_versions,
    new_manifest,
    read_manifest,
    signature_of,
    verify_folder,
    write_manifest,
)

__all__ = ["package_model", "prepare_folder", "with_package_schema"]

_PACKAGES = {
    "sklearn": ("scikit-learn", "skops", "numpy"),
    "xgboost": ("xgboost", "xgboost-cpu", "numpy"),
    "lightgbm": ("lightgbm", "numpy"),
    "onnx": ("onnxruntime", "onnx"),
    "custom": ("numpy",),
    "automl": ("scikit-learn", "skops", "numpy", "pandas", "lightgbm", "xgboost", "xgboost-cpu"),
}
# Folder flavors are detected in this order: handlers decide over files they load themselves,
# and a package that says what its model files are (a built-in algorithm's kiln-algorithm.json,
# an AutoML package's automl.json) before the lone model file it holds.
_DETECT_ORDER = ("custom", "builtin", "automl", "onnx", "xgboost", "lightgbm", "sklearn")


def _task_of(model: Any) -> str | None:
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    except Exception:  # noqa: BLE001 - objects that are not estimators have no task
        return None
    return None


def package_model(
    model: Any,
    folder: str | Path,
    *,
    flavor: str | None = None,
    sample_input: Any = None,
    code_dir: str | Path | None = None,
    lineage: Lineage | None = None,
) -> Manifest:
    """Write ``model`` as a package into an empty ``folder`` and return its manifest.

    The flavor's native format is used (skops, XGBoost UBJ, LightGBM text, ONNX);
    the signature comes from ``sample_input`` and the model's predictions on it.

    Raises:
        InvalidArgument: no flavor can package this object, or the folder is not empty.
    """
    dest = Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InvalidArgument(f"{str(dest)!r} is not empty; package into an empty folder")
    chosen = get_flavor(flavor) if flavor else flavor_for_object(model)
    if not chosen.capabilities.from_object:
        raise InvalidArgument(f"a {chosen.name} model registers from a folder, not from an object")
    options = chosen.save(model, dest)
    if code_dir is not None:
        src = Path(code_dir)
        if not (src / "inference.py").is_file():
            raise InvalidArgument(f"{str(src)!r} has no inference.py")
        shutil.copytree(src, dest / "code", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    sample_output = None
    if sample_input is not None and hasattr(model, "predict"):
        try:
            sample_output = model.predict(sample_input)
        except Exception as exc:  # noqa: BLE001 - any model error here means a bad sample
            raise InvalidArgument(f"the model cannot predict on sample_input: {type(exc).__name__}: {exc}") from None
    classes = getattr(model, "classes_", None)
    manifest = new_manifest(
        dest, flavor=chosen.name, options=options, origin="kiln",
        task=_task_of(model), classes=[c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None,
        signature=signature_of(sample_input, sample_output),
        framework_versions=framework_versions(*_PACKAGES.get(chosen.name, ())), lineage=lineage or Lineage(),
    )
    write_manifest(dest, manifest)
    return manifest


def prepare_folder(folder: Path, *, flavor: str | None = None) -> Manifest:
    """The manifest a folder registers with: its own (hashes verified), an MLflow import, or a new one.

    Raises:
        InvalidArgument: unknown flavor, files that do not match their hashes, or a
            folder in which no flavor recognises a model.
    """
    if flavor is not None:
        get_flavor(flavor)
    own = read_manifest(folder)
    if own is not None:
        get_flavor(own.flavor)
        if flavor and flavor != own.flavor:
            raise InvalidArgument(f"{MANIFEST_NAME} says flavor {own.flavor!r} but {flavor!r} was asked for")
        verify_folder(folder, own)
        # A pickle brought in a folder is not Kiln's own, whatever its manifest says.
        origin = "folder" if own.origin == "kiln" and _pickled(own) else own.origin
        manifest = own.model_copy(update={"origin": origin})
    else:
        imported = read_mlmodel(folder)
        if imported is not None:
            name, options, signature, lineage = imported
            if flavor and flavor != name:
                raise InvalidArgument(f"this MLflow model has flavor {name!r}, not {flavor!r}")
            manifest = new_manifest(folder, flavor=name, options=options, origin="mlflow", signature=signature, lineage=lineage)
        else:
            manifest = _detect(folder, flavor)
    get_flavor(manifest.flavor).check(folder, manifest)
    return with_package_schema(folder, manifest)


def with_package_schema(folder: Path, manifest: Manifest) -> Manifest:
    """``manifest`` with the signature, task and classes the package's own files state.

    The one reading of a package's schema, for every registration of a folder (by a job,
    by path through the SDK, the CLI or an upload): where the flavor's files carry one, it
    replaces what a manifest or an MLflow file claims, since it is what the model reads rows by.

    Raises:
        InvalidArgument: the package's schema file is malformed (the message names it).
    """
    found = get_flavor(manifest.flavor).schema(folder)
    if found is None:
        return manifest
    return manifest.model_copy(update={"signature": found.signature, "task": found.task, "classes": found.classes})


def runs_code(manifest: Manifest) -> bool:
    """Whether loading this package runs code it brought: a pickle, code/inference.py, a training script."""
    return flavor_runs_code(manifest.flavor) or _pickled(manifest) or "code/inference.py" in manifest.files


def _pickled(manifest: Manifest) -> bool:
    fmt = manifest.flavor_options.get("format")
    # The sklearn flavor unpickles every format but skops, whatever the manifest calls it.
    return fmt in ("pickle", "joblib", "cloudpickle") or (manifest.flavor == "sklearn" and fmt not in (None, "skops"))


def _detect(folder: Path, flavor: str | None) -> Manifest:
    names = [flavor] if flavor else list(_DETECT_ORDER)
    for name in names:
        options = get_flavor(name).detect(folder)
        if options is not None:
            return new_manifest(folder, flavor=name, options=options, origin="folder", framework_versions={})
    if flavor:
        raise InvalidArgument(f"no {flavor} model found in {str(folder)!r}")
    raise InvalidArgument(
        f"cannot tell what model {str(folder)!r} holds: add {MANIFEST_NAME}, an MLmodel file, code/inference.py, "
        "or a model file (*.skops, *.onnx, *.ubj, xgboost-model, LightGBM model.txt), or pass --flavor"
    )
