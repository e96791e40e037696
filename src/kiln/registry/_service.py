"""The model registry: register packages, version them, approve them, alias them, load them."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from kiln.core.names import Ref, check_alias, check_name, parse_ref
from kiln.core.storage import check_key
from kiln.core.workspace import Workspace
from kiln.registry._build import _PACKAGES, prepare_folder, runs_code, with_package_schema
from kiln.registry._flavors import LoadOptions, Predictor, get_flavor
from kiln.registry._load import load_folder
from kiln.registry._models import (
    APPROVAL_STATUSES,
    MANIFEST_NAME,
    Lineage,
    Manifest,
    Model,
    ModelFile,
    ModelVersion,
)
from kiln.registry._package import (
    check_package_path,
    framework_versions,
    iter_tar,
    new_manifest,
    verify_folder,
    write_manifest,
)
from kiln.registry._tables import model_aliases, model_versions, models
from kiln.registry._worker import WorkerPredictor

__all__ = ["ModelService", "referenced_prefixes"]


def referenced_prefixes(conn: Connection) -> set[str]:
    """Folders committed model versions use (the GC root of ``models/``)."""
    return {r[0] for r in conn.execute(sa.select(model_versions.c.prefix))}


def _version(row: Any, aliases: list[str]) -> ModelVersion:
    manifest = Manifest.model_validate_json(row.manifest)
    return ModelVersion(
        name=row.name, version=row.version, flavor=row.flavor, status=row.status, description=row.description,
        aliases=sorted(aliases), task=manifest.task, classes=manifest.classes, signature=manifest.signature,
        framework_versions=manifest.framework_versions, lineage=manifest.lineage, origin=manifest.origin,
        files=[ModelFile(path=p, size=d.size, sha256=d.sha256) for p, d in sorted(manifest.files.items())],
        size=row.size, created_at=row.created_at, created_by=row.created_by, status_updated_at=row.status_updated_at,
        status_updated_by=row.status_updated_by, status_comment=row.status_comment,
        runs_code=runs_code(manifest), trusted_by=row.trusted_by, trusted_at=row.trusted_at,
    )


class ModelService:
    """Registered models and their versions."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- register -----------------------------------------------------------------------

    def register_folder(
        self,
        *,
        name: str,
        folder: str | Path,
        flavor: str | None = None,
        description: str = "",
        run_id: str | None = None,
        job: str | None = None,
        datasets: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Register the package in ``folder`` as the next version of model ``name``.

        Files are stored first; one transaction then creates the version, so a
        failure leaves nothing registered (only files for ``kiln gc``). ``run_id`` may be
        any run reference (id, id prefix, ``experiment/run-name``); without ``datasets``
        the run's recorded inputs (the dataset versions it read) become the lineage.

        Raises:
            InvalidArgument: bad name, unknown flavor, files not matching their hashes, no model found.
            NotFound: ``run_id`` names no run.
        """
        check_name(name, kind="model")
        if run_id is not None:
            run_id = self._resolve_run(run_id)
            if datasets is None:
                datasets = self._run_inputs(run_id)  # what the run read is what the model was trained on
        for ref in datasets or []:
            parse_ref(ref, kind="dataset")
        src = Path(folder)
        manifest = prepare_folder(src, flavor=flavor)
        lineage = manifest.lineage.model_copy(
            update={k: v for k, v in {"run_id": run_id, "job": job, "datasets": list(datasets) if datasets else None}.items() if v}
        )
        manifest = manifest.model_copy(update={"lineage": lineage, "created_at": manifest.created_at or time.time()})
        if lineage.run_id:
            self._check_run(lineage.run_id)
        return self._store(name, src, manifest, description)

    def register_job_model(
        self,
        *,
        name: str,
        folder: str | Path,
        flavor: str,
        flavor_options: dict[str, Any],
        job: str,
        run_id: str | None,
        submitter: str,
        source_sha256: str,
        datasets: Sequence[str] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Register the model a finished training job saved, trusted because Kiln ran that job.

        For the job runner only: no operation declares it and no route reaches it, so a
        request can never claim this provenance. The version records
        ``trusted_by="job:<job>"`` in the same transaction that creates it, with lineage
        (job, run, datasets, submitter, the code's sha256). The signature, task and classes
        are read from the package's own files, as when the same folder is registered by path.

        Raises:
            InvalidArgument: bad name, unknown flavor, options naming files the folder lacks,
                a malformed schema file in the package.
            NotFound: ``run_id`` names no run.
        """
        check_name(name, kind="model")
        if not isinstance(job, str) or not job:
            raise InvalidArgument("register_job_model needs the id of the job that trained the model")
        if run_id is not None:
            run_id = self._resolve_run(run_id)
            if datasets is None:
                datasets = self._run_inputs(run_id)
        for ref in datasets or []:
            parse_ref(ref, kind="dataset")
        src = Path(folder)
        chosen = get_flavor(flavor)
        packages = _PACKAGES.get(str(flavor_options.get("framework", "")), _PACKAGES.get(flavor, ()))
        lineage = Lineage(
            job=job, run_id=run_id, datasets=list(datasets or []),
            extra={"submitter": submitter, "source_sha256": source_sha256},
        )
        manifest = new_manifest(
            src, flavor=chosen.name, options=dict(flavor_options), origin="kiln",
            framework_versions=framework_versions(*packages), lineage=lineage,
        )
        chosen.check(src, manifest)
        manifest = with_package_schema(src, manifest)
        return self._store(name, src, manifest, description, trusted_by=f"job:{job}")

    def _store(self, name: str, src: Path, manifest: Manifest, description: str, *, trusted_by: str | None = None) -> ModelVersion:
        """Store a package's files, then commit its version in one transaction (nothing half-written)."""
        prefix = f"models/{name}/{uuid.uuid4().hex}/"
        stored = []
        try:
            for rel in sorted(manifest.files):
                stored.append(self.ws.store.put_file(check_key(prefix + rel), src / rel))
            with tempfile.TemporaryDirectory() as tmp:
                write_manifest(Path(tmp), manifest)
                self.ws.store.put_file(prefix + MANIFEST_NAME, Path(tmp) / MANIFEST_NAME)
            for info in stored:
                want = manifest.files[info.key[len(prefix):]]
                if info.sha256 != want.sha256:
                    raise InvalidArgument(f"model file {info.key[len(prefix):]!r} changed while it was being registered; try again")
            version = self._commit_version(name, manifest, prefix, description, trusted_by=trusted_by)
        except BaseException:
            self.ws.store.delete(prefix.rstrip("/"))
            raise
        return version

    def _resolve_run(self, ref: str) -> str:
        """The full id of the run ``ref`` names (an id, a unique prefix or ``experiment/run-name``)."""
        from kiln.tracking._resolve import resolve_run

        with self.ws.db.read() as conn:
            return resolve_run(conn, ref)

    def _run_inputs(self, run_id: str) -> list[str]:
        from kiln.tracking._runs import run_inputs

        with self.ws.db.read() as conn:
            return run_inputs(conn, run_id)

    def _check_run(self, run_id: str) -> None:
        from kiln.tracking._tables import runs

        with self.ws.db.read() as conn:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                raise NotFound(f"run {run_id} does not exist; pass the id of the run that trained the model")

    def _commit_version(self, name: str, manifest: Manifest, prefix: str, description: str, *, trusted_by: str | None = None) -> ModelVersion:
        now = time.time()
        size = sum(d.size for d in manifest.files.values())
        audit = {"flavor": manifest.flavor, **({"trusted_by": trusted_by} if trusted_by else {})}
        with self.ws.mutation(self.ctx, action="models.register", resource=f"models/{name}", details=audit) as (conn, details):
            # Insert-if-missing, then lock the row: two first registrations of one model at once
            # (PostgreSQL) wait on each other instead of one failing on the primary key.
            conn.execute(
                _dialect_insert(conn)(models).on_conflict_do_nothing(index_elements=["name"]),
                {"name": name, "description": "", "created_at": now, "created_by": self.ctx.actor, "updated_at": now},
            )
            conn.execute(sa.select(models.c.name).where(models.c.name == name).with_for_update()).one()
            conn.execute(models.update().where(models.c.name == name), {"updated_at": now})
            latest = conn.execute(sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == name)).scalar()
            version = (latest or 0) + 1
            details["version"] = version
            conn.execute(
                model_versions.insert(),
                {
                    "name": name, "version": version, "flavor": manifest.flavor, "status": "PendingManualApproval",
                    "description": description, "manifest": manifest.model_dump_json(), "prefix": prefix, "size": size,
                    "file_count": len(manifest.files), "run_id": manifest.lineage.run_id, "created_at": now,
                    "created_by": self.ctx.actor, "status_updated_at": None, "status_updated_by": None, "status_comment": None,
                    "trusted_by": trusted_by, "trusted_at": now if trusted_by else None,
                },
            )
            got = conn.execute(sa.select(model_versions).where(model_versions.c.name == name, model_versions.c.version == version)).one()
        return _version(got, [])

    # -- reads ------------------------------------------------------------------------------

    def _resolve(self, conn: Connection, ref: str | Ref) -> Any:
        parsed = parse_ref(ref, kind="model") if isinstance(ref, str) else ref
        name = parsed.name
        if parsed.alias is not None:
            version = conn.execute(sa.select(model_aliases.c.version).where(model_aliases.c.name == name, model_aliases.c.alias == parsed.alias)).scalar()
            if version is None:
                self._require_model(conn, name)
                raise NotFound(f"model {name!r} has no alias {parsed.alias!r}; `kiln models show {name}` lists its aliases")
        elif parsed.version is not None:
            version = parsed.version
        else:
            version = conn.execute(sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == name)).scalar()
            if version is None:
                self._require_model(conn, name)
                raise NotFound(f"model {name!r} has no versions yet")
        row = conn.execute(sa.select(model_versions).where(model_versions.c.name == name, model_versions.c.version == version)).first()
        if row is None:
            self._require_model(conn, name)
            latest = conn.execute(sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == name)).scalar()
            raise NotFound(f"model {name!r} has no version {version} (latest is {latest})")
        return row

    def _require_model(self, conn: Connection, name: str) -> None:
        if conn.execute(sa.select(models.c.name).where(models.c.name == name)).first() is None:
            raise NotFound(f"model {name!r} does not exist; `kiln models ls` lists registered models")

    def _aliases(self, conn: Connection, name: str) -> dict[str, int]:
        return dict(conn.execute(sa.select(model_aliases.c.alias, model_aliases.c.version).where(model_aliases.c.name == name)).all())

    def get_version(self, *, ref: str) -> ModelVersion:
        """A version by ``name`` (latest), ``name@3`` or ``name@alias``.

        Raises:
            NotFound: no such model, version or alias.
        """
        with self.ws.db.read() as conn:
            row = self._resolve(conn, ref)
            aliases = [a for a, v in self._aliases(conn, row.name).items() if v == row.version]
        return _version(row, aliases)

    def list_versions(self, *, name: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""
        check_name(name, kind="model")
        with self.ws.db.read() as conn:
            self._require_model(conn, name)
            aliases = self._aliases(conn, name)
            rows = conn.execute(sa.select(model_versions).where(model_versions.c.name == name).order_by(model_versions.c.version.desc())).all()
        return [_version(r, [a for a, v in aliases.items() if v == r.version]) for r in rows]

    def _model(self, conn: Connection, row: Any) -> Model:
        stats = conn.execute(sa.select(sa.func.max(model_versions.c.version), sa.func.count()).where(model_versions.c.name == row.name)).one()
        return Model(
            name=row.name, description=row.description, created_at=row.created_at, created_by=row.created_by,
            updated_at=row.updated_at, latest_version=stats[0], version_count=stats[1], aliases=self._aliases(conn, row.name),
        )

    def get(self, *, name: str) -> Model:
        """A model with its latest version number and aliases."""
        check_name(name, kind="model")
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(models).where(models.c.name == name)).first()
            if row is None:
                raise NotFound(f"model {name!r} does not exist; `kiln models ls` lists registered models")
            return self._model(conn, row)

    def list(self) -> list[Model]:
        """Every registered model, by name."""
        with self.ws.db.read() as conn:
            return [self._model(conn, r) for r in conn.execute(sa.select(models).order_by(models.c.name)).all()]

    # -- changes --------------------------------------------------------------------------

    def set_status(self, *, ref: str, status: str, comment: str | None = None) -> ModelVersion:
        """Set a version's approval status: PendingManualApproval, Approved or Rejected.

        Needs the approver role (an editor may not approve what it registered).

        Raises:
            PermissionDenied: the caller is not an approver or admin.
            Conflict: rejecting a version that an alias points at.
        """
        if status not in APPROVAL_STATUSES:
            raise InvalidArgument(f"approval status must be one of {', '.join(APPROVAL_STATUSES)}, not {status!r}")
        parsed = parse_ref(ref, kind="model")
        action = {"Approved": "models.approve", "Rejected": "models.reject"}.get(status, "models.status")
        with self.ws.mutation(self.ctx, action=action, resource=f"models/{parsed.name}", role="approver", details={"ref": str(parsed), "status": status}) as (conn, details):
            row = self._resolve(conn, parsed)
            details["version"] = row.version
            held = sorted(a for a, v in self._aliases(conn, row.name).items() if v == row.version)
            if status == "Rejected" and held:
                raise Conflict(
                    f"{row.name}@{row.version} holds alias {', '.join(held)}; a rejected version cannot serve "
                    f"under an alias - point it elsewhere first (`kiln models alias {row.name} {held[0]} VERSION`)"
                )
            conn.execute(
                model_versions.update().where(model_versions.c.name == row.name, model_versions.c.version == row.version),
                {"status": status, "status_updated_at": time.time(), "status_updated_by": self.ctx.actor, "status_comment": (comment or None) and comment[:4000]},
            )
        return self.get_version(ref=f"{row.name}@{row.version}")

    def update(self, *, ref: str, description: str) -> Model | ModelVersion:
        """Set the description of a model (``name``) or of one version (``name@3``)."""
        parsed = parse_ref(ref, kind="model")
        with self.ws.mutation(self.ctx, action="models.update", resource=f"models/{parsed.name}", details={"ref": ref}) as (conn, _):
            if parsed.version is None and parsed.alias is None:
                self._require_model(conn, parsed.name)
                conn.execute(models.update().where(models.c.name == parsed.name), {"description": description[:8000], "updated_at": time.time()})
            else:
                row = self._resolve(conn, parsed)
                conn.execute(model_versions.update().where(model_versions.c.name == row.name, model_versions.c.version == row.version), {"description": description[:8000]})
        if parsed.version is None and parsed.alias is None:
            return self.get(name=parsed.name)
        return self.get_version(ref=ref)

    def set_alias(self, *, name: str, alias: str, version: int) -> Model:
        """Point ``alias`` (e.g. ``champion``) at a version; ``name@alias`` then resolves to it."""
        check_name(name, kind="model")
        check_alias(alias)
        with self.ws.mutation(self.ctx, action="models.alias", resource=f"models/{name}", details={"alias": alias, "version": version}) as (conn, _):
            row = self._resolve(conn, Ref(name, version=version))
            if row.status == "Rejected":
                raise Conflict(f"{name}@{version} was rejected; an alias may point only at a version that is not rejected")
            ins = _dialect_insert(conn)(model_aliases)
            conn.execute(
                ins.on_conflict_do_update(index_elements=["name", "alias"], set_={"version": ins.excluded.version, "updated_at": ins.excluded.updated_at}),
                {"name": name, "alias": alias, "version": version, "updated_at": time.time()},
            )
        return self.get(name=name)

    def delete_alias(self, *, name: str, alias: str) -> Model:
        check_name(name, kind="model")
        check_alias(alias)
        with self.ws.mutation(self.ctx, action="models.unalias", resource=f"models/{name}", details={"alias": alias}) as (conn, _):
            self._require_model(conn, name)
            gone = conn.execute(model_aliases.delete().where(model_aliases.c.name == name, model_aliases.c.alias == alias)).rowcount
            if not gone:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
        return self.get(name=name)

    def trust(self, *, ref: str, trusted: bool = True, comment: str | None = None) -> ModelVersion:
        """Record that an admin trusts (or no longer trusts) a version's code to run on the server.

        A package whose loading runs its own code (a pickle, ``code/inference.py``) is
        loaded by the server only after this, and only in a worker process.

        Raises:
            PermissionDenied: the caller is not an admin.
        """
        parsed = parse_ref(ref, kind="model")
        action = "models.trust" if trusted else "models.distrust"
        with self.ws.mutation(self.ctx, action=action, resource=f"models/{parsed.name}", role="admin", details={"ref": str(parsed)}) as (conn, details):
            row = self._resolve(conn, parsed)
            details["version"] = row.version
            if comment:
                details["comment"] = comment[:500]
            values = {"trusted_by": self.ctx.actor, "trusted_at": time.time()} if trusted else {"trusted_by": None, "trusted_at": None}
            conn.execute(model_versions.update().where(model_versions.c.name == row.name, model_versions.c.version == row.version), values)
        return self.get_version(ref=f"{row.name}@{row.version}")

    # -- files ------------------------------------------------------------------------------

    def _located(self, ref: str) -> tuple[Any, Manifest]:
        with self.ws.db.read() as conn:
            row = self._resolve(conn, ref)
        return row, Manifest.model_validate_json(row.manifest)

    def open_file(self, *, ref: str, path: str) -> tuple[ModelFile, IO[bytes]]:
        """One file of a version's package, by its path in the package.

        Raises:
            InvalidArgument: the path is not a plain relative path.
            NotFound: the package has no such file.
        """
        check_package_path(path)
        row, manifest = self._located(ref)
        if path == MANIFEST_NAME:
            data = manifest.model_dump_json(indent=2).encode()
            import io

            return ModelFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest()), io.BytesIO(data)
        digest = manifest.files.get(path)
        if digest is None:
            raise NotFound(f"model {row.name}@{row.version} has no file {path!r}")
        return ModelFile(path=path, size=digest.size, sha256=digest.sha256), self.ws.store.open(row.prefix + path)

    def write_tar(self, *, ref: str, out: IO[bytes]) -> None:
        """Write a version's package (files and manifest) as a tar to ``out``."""
        row, manifest = self._located(ref)

        def items() -> Iterator[tuple[str, IO[bytes], int]]:
            for rel, digest in sorted(manifest.files.items()):
                with self.ws.store.open(row.prefix + rel) as fh:
                    yield rel, fh, digest.size
            import io

            data = manifest.model_dump_json(indent=2).encode()
            yield MANIFEST_NAME, io.BytesIO(data), len(data)

        iter_tar(items(), out)

    def download(self, *, ref: str, dest: str | Path) -> ModelVersion:
        """Copy a version's package into ``dest``, checking every file's sha256.

        Raises:
            InvalidArgument: a stored file does not match its hash.
        """
        row, manifest = self._located(ref)
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        for rel in sorted(manifest.files):
            out = (root / rel).resolve()
            if root not in out.parents:
                raise InvalidArgument(f"package path {rel!r} would land outside {str(dest)!r}")
            out.parent.mkdir(parents=True, exist_ok=True)
            with self.ws.store.open(row.prefix + rel) as src, open(out, "wb") as fh:
                shutil.copyfileobj(src, fh, 1 << 20)
        write_manifest(root, manifest)
        verify_folder(root, manifest, exact=False)
        return self.get_version(ref=f"{row.name}@{row.version}")

    def load(self, *, ref: str, trust_pickle: bool = False, trusted_types: Sequence[str] = ()) -> Predictor:
        """Load a version into THIS process as a :class:`Predictor`, after checking every file's sha256.

        For the caller's own process (the SDK in-process, a notebook): ``trust_pickle``
        is that caller's decision to run the package's code (a pickle, ``code/inference.py``).
        The server never loads models this way; it uses :meth:`start_worker`.

        Raises:
            InvalidArgument: a stored file does not match its hash.
            PermissionDenied: the model runs code (a pickle from outside Kiln,
                ``code/inference.py``) and ``trust_pickle`` is False, or holds types no one has vetted.
        """
        row, manifest = self._located(ref)
        folder = self._fetch(row, manifest)
        return load_folder(folder, manifest, LoadOptions(trust_pickle=trust_pickle, trusted_types=tuple(trusted_types)))

    def start_worker(self, *, ref: str, trusted_types: Sequence[str] = ()) -> WorkerPredictor:
        """Load a version in a worker process of its own (how the server runs models).

        Whether the package's code may run is decided here, from the server's
        ``model_code`` setting and the version's recorded trust, never by the caller.

        Raises:
            PermissionDenied: the package runs code and no admin trusted this version,
                or the server runs no model code at all.
            ModelError: the model failed, crashed or hung while loading.
        """
        row, manifest = self._located(ref)
        trusted = self.code_may_run(row, manifest)
        folder = self._fetch(row, manifest)
        return WorkerPredictor.start(
            folder, manifest, trusted=trusted, trusted_types=tuple(trusted_types),
            timeout_s=self.ws.settings.worker_timeout_s, label=f"model {row.name}@{row.version}", home=self.ws.settings.home,
        )

    def code_may_run(self, row: Any, manifest: Manifest) -> bool:
        """Whether a version's package may run its own code where it is served (a worker,
        an endpoint, a multi-model endpoint's load): the server's ``model_code`` setting and
        the version's recorded trust decide, never the caller. See :func:`code_may_run`."""
        return code_may_run(
            ref=f"{row.name}@{row.version}", runs_code=runs_code(manifest), what=code_kind(manifest),
            trusted_by=row.trusted_by, created_by=row.created_by, model_code=self.ws.settings.model_code,
        )

    def _fetch(self, row: Any, manifest: Manifest) -> Path:
        """The version's verified package in this machine's cache."""
        folder = cache_folder(self.ws.settings.home, row.name, row.version, row.prefix)
        if not _cached(folder, manifest):
            tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
            try:
                self.download(ref=f"{row.name}@{row.version}", dest=tmp)
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return folder


def code_kind(manifest: Manifest) -> str:
    """What code a package runs, in words for a refusal."""
    if manifest.flavor == "custom" or "code/inference.py" in manifest.files:
        return "code/inference.py"
    if manifest.flavor == "sagemaker":
        return f"training code (code/{manifest.flavor_options.get('entry_point', '')})"
    return "a pickle"


def code_may_run(
    *, ref: str, runs_code: bool, trusted_by: str | None, model_code: str, what: str = "code (a pickle, code/inference.py or a training script)",
    created_by: str | None = None, own_flag: str | None = None, own: bool = False,
) -> bool:
    """The registry's one rule for running a package's own code where it is served.

    A package without code needs no trust. One with code runs only if the server runs
    model code (``KILN_MODEL_CODE`` is not ``never``) and an admin trusted the version
    (or Kiln's own job registered it: ``trusted_by``). ``kiln serve`` in a user's own
    shell may also pass its user's own flag (``own``, named ``own_flag`` in the refusal).

    Returns:
        Whether the code runs (False: the package has none).

    Raises:
        PermissionDenied: the package has code and may not run it, saying who can allow it.
    """
    if not runs_code:
        return False
    if own:
        return True
    alt = f"; or pass {own_flag} to run it in this foreground server" if own_flag else ""
    if model_code == "never":
        raise PermissionDenied(f"model {ref} holds {what}, and this server runs no model code (KILN_MODEL_CODE=never){alt}")
    if trusted_by is None:
        by = f" (uploaded by {created_by})" if created_by else ""
        raise PermissionDenied(f"model {ref} holds {what}{by}; loading it runs that code. An admin who trusts it can allow it: `kiln models trust {ref}`{alt}")
    return True


def cache_folder(home: Path, name: str, version: int, prefix: str) -> Path:
    """Where a loaded package is kept on this machine (re-verified on every load)."""
    tag = hashlib.sha256(prefix.encode()).hexdigest()[:12]
    folder = Path(home) / "cache" / "models" / f"{name}-{version}-{tag}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def _cached(folder: Path, manifest: Manifest) -> bool:
    if not folder.is_dir():
        return False
    try:
        verify_folder(folder, manifest, exact=False)
    except InvalidArgument:
        return False
    return True


def _dialect_insert(conn: Connection) -> Any:
    from kiln.tracking._experiments import _insert

    return _insert(conn)

