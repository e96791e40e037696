"""SDK: the model registry (``client.models``)."""

from __future__ import annotations

import builtins
import io
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kiln.core.errors import InvalidArgument
from kiln.core.names import parse_ref
from kiln.registry._build import package_model
from kiln.registry._flavors import LoadOptions, Predictor
from kiln.registry._models import MANIFEST_NAME, Manifest, Model, ModelVersion
from kiln.registry._package import (
    check_package_path,
    extract_tar,
    read_manifest,
    scan_folder,
    tar_folder,
    verify_folder,
)
from kiln.registry._service import ModelService, load_folder
from kiln.registry import _ops as ops
from kiln.sdk._base import Namespace

__all__ = ["Models"]

_MAX_DOWNLOAD = 1 << 40


def _path(ref: str) -> str:
    """``/v1/models/{name}/versions/{version-or-alias}`` for a reference (the streamed routes)."""
    from kiln.sdk._base import seg

    return ops.GET_VERSION.path_for({"ref": ref}, seg)


def _active_run_id() -> str | None:
    from kiln.sdk.run import current_run

    run = current_run()
    return run.id if run is not None else None


class Models(Namespace):
    """``client.models``: register, approve, alias, download and load models."""

    def register(
        self,
        name: str,
        *,
        model: Any = None,
        path: str | os.PathLike[str] | None = None,
        flavor: str | None = None,
        sample_input: Any = None,
        code_dir: str | os.PathLike[str] | None = None,
        description: str = "",
        run_id: str | None = None,
        job: str | None = None,
        datasets: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Register a fitted model object, or a package folder, as the next version of ``name``.

        ``client.models.register("churn", model=fitted, sample_input=X[:5])`` packages a
        scikit-learn (skops), XGBoost (UBJ), LightGBM (text) or ONNX model in its native
        format, with a signature from ``sample_input``; inside ``with Run(...)`` the run is
        recorded as its lineage. ``path=`` registers a folder (its ``kiln-model.json``, an
        MLflow ``MLmodel``, ``code/inference.py``, an AutoML package's ``automl.json``, whose
        schema becomes the signature, or a recognised model file).

        Args:
            name: the model's name.
            model: a fitted model object.
            path: a package folder (instead of ``model``).
            flavor: force a flavor (sklearn, xgboost, lightgbm, onnx, custom, automl).
            sample_input: a few rows of training input, for the signature.
            code_dir: a folder with ``inference.py`` to ship as ``code/``.
            description: the version's description.
            run_id: the run that trained it (default: the active Run, if any).
            job: the job that trained it.
            datasets: dataset versions it was trained on (``sales@3``).
        """
        if (model is None) == (path is None):
            raise InvalidArgument("register needs exactly one of model= (a fitted object) or path= (a package folder)")
        run_id = run_id or _active_run_id()
        with tempfile.TemporaryDirectory(prefix="kiln-package-") as tmp:
            folder = Path(path) if path is not None else Path(tmp) / "package"
            if model is not None:
                package_model(model, folder, flavor=flavor, sample_input=sample_input, code_dir=Path(code_dir) if code_dir else None)
                flavor = None
            if self._local:
                return self._svc(ModelService).register_folder(
                    name=name, folder=folder, flavor=flavor, description=description, run_id=run_id, job=job, datasets=datasets
                )
            parse_ref(name, kind="model")
            body = tar_folder(folder, scan_folder(folder))
            params = {"flavor": flavor, "description": description, "run_id": run_id, "job": job, "datasets": list(datasets or []) or None}
            got = self._http("POST", f"/v1/models/{name}/versions", content=body, params=params, headers={"content-type": "application/octet-stream"})
        return ModelVersion.model_validate(got)

    def list(self) -> list[Model]:
        """Every registered model."""
        return self._call(ops.LIST)  # type: ignore[no-any-return]

    def get(self, name: str) -> Model:
        """A model with its latest version and aliases."""
        return self._call(ops.GET, name=name)  # type: ignore[no-any-return]

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        """Every version of a model, newest first."""
        return self._call(ops.VERSIONS, name=name)  # type: ignore[no-any-return]

    def get_version(self, ref: str) -> ModelVersion:
        """A version by ``name``, ``name@3`` or ``name@alias``."""
        return self._call(ops.GET_VERSION, ref=ref)  # type: ignore[no-any-return]

    def set_status(self, ref: str, status: str, *, comment: str | None = None) -> ModelVersion:
        """Set the approval status: PendingManualApproval, Approved or Rejected (approver role)."""
        return self._call(ops.STATUS, ref=ref, status=status, comment=comment)  # type: ignore[no-any-return]

    def approve(self, ref: str, *, comment: str | None = None) -> ModelVersion:
        """Mark a version Approved (approver role)."""
        return self._call(ops.APPROVE, ref=ref, comment=comment)  # type: ignore[no-any-return]

    def reject(self, ref: str, *, comment: str | None = None) -> ModelVersion:
        """Mark a version Rejected (approver role); it may not hold an alias."""
        return self._call(ops.REJECT, ref=ref, comment=comment)  # type: ignore[no-any-return]

    def trust(self, ref: str, *, trusted: bool = True, comment: str | None = None) -> ModelVersion:
        """Trust a version's code (a pickle, ``code/inference.py``) to run on the server (admin only).

        ``trusted=False`` takes the trust back.
        """
        return self._call(ops.TRUST, ref=ref, trusted=trusted, comment=comment)  # type: ignore[no-any-return]

    def set_alias(self, name: str, alias: str, version: int) -> Model:
        """Point ``alias`` at ``version`` (``client.models.load("churn@champion")`` then finds it)."""
        return self._call(ops.SET_ALIAS, name=name, alias=alias, version=version)  # type: ignore[no-any-return]

    def delete_alias(self, name: str, alias: str) -> Model:
        """Remove an alias."""
        return self._call(ops.DELETE_ALIAS, name=name, alias=alias)  # type: ignore[no-any-return]

    def update(self, ref: str, *, description: str) -> Model | ModelVersion:
        """Describe a model (``name``) or one version (``name@3``)."""
        parsed = parse_ref(ref, kind="model")
        op = ops.DESCRIBE if parsed.version is None and parsed.alias is None else ops.DESCRIBE_VERSION
        return self._call(op, ref=ref, description=description)  # type: ignore[no-any-return]

    def read_file(self, ref: str, path: str) -> bytes:
        """One file of a version's package."""
        if self._local:
            _, fh = self._svc(ModelService).open_file(ref=ref, path=path)
            with fh:
                return fh.read()
        check_package_path(path)
        with self._t.stream("GET", _path(ref) + "/files/" + quote(path)) as resp:  # type: ignore[union-attr]
            return resp.read()

    def download(self, ref: str, dest: str | os.PathLike[str]) -> ModelVersion:
        """Copy a version's package into folder ``dest``, checking every file's sha256."""
        if self._local:
            return self._svc(ModelService).download(ref=ref, dest=Path(dest))
        version = self.get_version(ref)
        with self._t.stream("GET", _path(f"{version.name}@{version.version}") + "/package.tar") as resp:  # type: ignore[union-attr]
            buf = io.BytesIO(resp.read())
        with tempfile.TemporaryDirectory(prefix="kiln-download-") as tmp:
            extract_tar(buf, Path(tmp), max_bytes=_MAX_DOWNLOAD)
            manifest = read_manifest(Path(tmp))
            if manifest is None:
                raise InvalidArgument(f"the server's package of {version.ref} has no {MANIFEST_NAME}")
            verify_folder(Path(tmp), manifest)
            target = Path(dest)
            target.mkdir(parents=True, exist_ok=True)
            shutil.copytree(tmp, target, dirs_exist_ok=True)
        return version

    def load(self, ref: str, *, trust_pickle: bool = False, trusted_types: Sequence[str] = ()) -> Predictor:
        """Load a version as a predictor (``.predict``, ``.predict_proba``), after checking hashes.

        Args:
            ref: ``name``, ``name@3`` or ``name@champion``.
            trust_pickle: allow a pickle that came from outside Kiln (it can run any code).
            trusted_types: extra types to allow in a skops file, by full name.
        """
        if self._local:
            return self._svc(ModelService).load(ref=ref, trust_pickle=trust_pickle, trusted_types=trusted_types)
        folder = Path(tempfile.mkdtemp(prefix="kiln-model-"))
        try:
            self.download(ref, folder)
            manifest = Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
            predictor = load_folder(folder, manifest, LoadOptions(trust_pickle=trust_pickle, trusted_types=tuple(trusted_types)))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # A custom model_fn may keep reading its folder: remove it with the predictor.
        weakref.finalize(predictor, shutil.rmtree, folder, True)
        return predictor
