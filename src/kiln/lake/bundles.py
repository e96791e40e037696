"""Dataset bundles: one file that moves a dataset, with every version, between workspaces.

A bundle is a tar archive::

    manifest.json                 the dataset, each version's schema, source,
                                  lineage, row counts and each file's sha256
    files/<sha256>.parquet        each distinct Parquet file once

Import trusts nothing in the archive: every member name must be exactly one
of those (no ``..``, absolute paths, links or devices), every file's sha256,
size and Parquet row count must match the manifest, and only when all of it
checks out are files written to the store and then the whole dataset
committed in one metadata transaction. A refused bundle leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import orjson
import pyarrow.parquet as pq
import sqlalchemy as sa
from pydantic import BaseModel, Field, ValidationError

import kiln
from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, InvalidArgument, KilnError, NotFound, PayloadTooLarge
from kiln.core.limits import unpacked_limit
from kiln.core.names import check_name, parse_ref
from kiln.core.progress import Progress
from kiln.core.workspace import Workspace
from kiln.lake import _tables as t
from kiln.lake._models import Column, DatasetVersion

__all__ = ["BundleService", "Manifest"]

FORMAT = "kiln.dataset-bundle"
_MANIFEST = "manifest.json"
_FILE_RE = re.compile(r"files/([0-9a-f]{64})\.parquet")
_MAX_MANIFEST = 64 << 20
_MAX_MEMBERS = 100_000
_CHUNK = 1 << 20
_INT64 = 2**63 - 1  # the metadata database's integers


class BundleFile(BaseModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0, le=_INT64)
    bytes: int = Field(ge=0, le=_INT64)


class BundleVersion(BaseModel):
    version: int = Field(ge=1, le=_INT64)
    created_at: float
    created_by: str = Field(max_length=128)
    row_count: int = Field(ge=0, le=_INT64)
    byte_size: int = Field(ge=0, le=_INT64)
    columns: list[Column]
    source: dict[str, Any]
    lineage: dict[str, Any]
    files: list[BundleFile] = Field(min_length=1)


class BundleDataset(BaseModel):
    name: str
    description: str = Field("", max_length=100_000)
    created_at: float
    created_by: str = Field(max_length=128)


class Manifest(BaseModel):
    format: Literal["kiln.dataset-bundle"]
    format_version: Literal[1]
    kiln_version: str
    exported_at: float
    dataset: BundleDataset
    versions: list[BundleVersion] = Field(min_length=1)


def _member_name(sha: str) -> str:
    return f"files/{sha}.parquet"


def _refuse(message: str) -> InvalidArgument:
    return InvalidArgument(f"{message}; nothing was imported")


class _Hashing(io.RawIOBase):
    """Reads through to ``fh``, hashes what passes and counts it as progress."""

    def __init__(self, fh: IO[bytes], progress: Progress) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.progress = progress

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.digest.update(data)
        self.progress.advance(len(data))
        return data


class BundleService:
    """Export a dataset to a bundle file, and import one."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- export ------------------------------------------------------------------

    def export(self, name: str, dest: str | os.PathLike[str]) -> Path:
        """Write every version of dataset ``name`` to a bundle at ``dest`` (``name@3``: that
        version alone, keeping its number).

        Raises:
            NotFound: no such dataset or version.
            KilnError: a stored file does not match its recorded sha256 (storage corruption).
        """
        from kiln.lake.datasets import DatasetService

        ref = parse_ref(name, kind="dataset")
        if ref.alias is not None:
            raise InvalidArgument(f"datasets have no aliases; bundle {ref.name} or {ref.name}@VERSION")
        name = ref.name
        self.ctx.require("viewer")
        datasets = DatasetService(self.ws, self.ctx)
        versions = datasets.versions(name) if ref.version is None else [datasets.get(ref)]
        with self.ws.db.read() as conn:
            ds = conn.execute(sa.select(t.datasets).where(t.datasets.c.name == name)).first()
        if ds is None or not versions:
            raise NotFound(f"dataset {name!r} does not exist; `kiln datasets ls` lists datasets")
        manifest = Manifest(
            format=FORMAT, format_version=1, kiln_version=kiln.__version__, exported_at=time.time(),
            dataset=BundleDataset(name=name, description=ds.description, created_at=ds.created_at, created_by=ds.created_by),
            versions=[
                BundleVersion(
                    version=v.version, created_at=v.created_at, created_by=v.created_by, row_count=v.row_count,
                    byte_size=v.byte_size, columns=v.columns, source=v.source, lineage=v.lineage,
                    files=[BundleFile(sha256=f.sha256, rows=f.rows, bytes=f.bytes) for f in v.files],
                )
                for v in versions
            ],
        )
        keys = {f.sha256: f.key for v in versions for f in v.files}
        target = Path(dest).expanduser().absolute()
        if target.is_dir():
            raise InvalidArgument(f"{target} is a folder; give a file path for the bundle")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        sizes = {f.sha256: f.bytes for v in manifest.versions for f in v.files}
        progress = Progress(sum(sizes[sha] for sha in keys))  # bytes of the files to copy
        try:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                body = orjson.dumps(manifest.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
                tar.addfile(_info(_MANIFEST, len(body)), io.BytesIO(body))
                for sha, key in keys.items():
                    with self.ws.store.open(key) as fh:
                        reader = _Hashing(fh, progress)
                        tar.addfile(_info(_member_name(sha), sizes[sha]), reader)
                    if reader.digest.hexdigest() != sha:
                        raise KilnError(f"stored file {key} of dataset {name!r} does not match its recorded sha256: storage is corrupted, so it is not exported")
            os.replace(tmp, target)
            progress.finish()
        finally:
            tmp.unlink(missing_ok=True)
        return target

    # -- import ------------------------------------------------------------------

    def import_(self, path: str | os.PathLike[str], *, name: str | None = None) -> list[DatasetVersion]:
        """Import a bundle as dataset ``name`` (default: the name it was exported under).

        Raises:
            InvalidArgument: not a bundle, an unsafe member name, or a file that does not
                match the manifest (corrupted or tampered); nothing is imported then.
            AlreadyExists: the dataset name is taken in this workspace.
        """
        if name is not None:
            check_name(name, kind="dataset")
        self.ctx.require("editor")
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"bundle {str(path)!r} does not exist")
        progress = Progress()  # checking and staging the files, then storing them, then the commit
        staging = Path(tempfile.mkdtemp(prefix="bundle-", dir=_tmp(self.ws)))
        try:
            manifest, staged = self._verify(src, staging, progress)
            target = check_name(name or manifest.dataset.name, kind="dataset")
            self._check_free(target)
            prefix = f"datasets/{target}/{uuid.uuid4().hex}"
            keys = {sha: f"{prefix}/{sha}.parquet" for sha in staged}
            storing = progress.part(0.7, 0.95, len(staged))
            for sha, file in staged.items():
                self.ws.store.put_file(keys[sha], file)
                storing.advance()
            versions = self._commit(target, manifest, keys, source_name=src.name)
            progress.finish()
            return versions
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _verify(self, src: Path, staging: Path, progress: Progress) -> tuple[Manifest, dict[str, Path]]:
        """Check every member and every file; stage the files. Raises before anything is written."""
        try:
            tar = tarfile.open(src, "r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _refuse(f"{src.name} is not a Kiln bundle (a tar archive): {exc}") from None
        limit = unpacked_limit(src.stat().st_size, int(self.ws.settings.max_upload_mb * 4 * (1 << 20)))
        with tar:
            members: dict[str, tarfile.TarInfo] = {}
            total = 0
            try:
                for i, member in enumerate(tar):
                    if i >= _MAX_MEMBERS:
                        raise _refuse(f"bundle has more than {_MAX_MEMBERS} members")
                    _check_member(member)
                    total += member.size
                    if total > limit:
                        raise PayloadTooLarge(f"bundle unpacks to more than {limit / (1 << 20):g} MB; nothing was imported")
                    if member.name in members:
                        raise _refuse(f"bundle member {member.name!r} appears twice")
                    members[member.name] = member
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise _refuse(f"bundle {src.name} is damaged: {exc}") from None
            manifest = _read_manifest(tar, members)
            check_name(manifest.dataset.name, kind="dataset")
            expected: dict[str, BundleFile] = {}
            for f in (f for v in manifest.versions for f in v.files):
                if expected.setdefault(f.sha256, f) != f:
                    raise _refuse(f"bundle manifest is inconsistent: file {f.sha256[:12]}... is listed with different sizes")
            wanted = {_member_name(sha) for sha in expected} | {_MANIFEST}
            if set(members) != wanted:
                missing = sorted(wanted - set(members))
                extra = sorted(set(members) - wanted)
                raise _refuse(f"bundle does not match its manifest (missing {missing[:5]}, unexpected {extra[:5]})")
            _check_versions(manifest)
            checking = progress.part(0.0, 0.7, sum(meta.bytes for meta in expected.values()))
            staged: dict[str, Path] = {}
            for sha, meta in expected.items():
                member = members[_member_name(sha)]
                if member.size != meta.bytes:
                    raise _refuse(f"bundle is corrupted or was tampered with: {member.name} has {member.size} bytes, the manifest says {meta.bytes}")
                out = staging / f"{sha}.parquet"
                digest = hashlib.sha256()
                fh = tar.extractfile(member)
                assert fh is not None
                with fh, open(out, "wb") as dst:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        dst.write(chunk)
                        checking.advance(len(chunk))
                if digest.hexdigest() != sha:
                    raise _refuse(f"bundle is corrupted or was tampered with: {member.name} has sha256 {digest.hexdigest()}, the manifest says {sha}")
                try:
                    rows = pq.ParquetFile(out).metadata.num_rows
                except Exception:  # noqa: BLE001 - any parse failure means the same thing
                    raise _refuse(f"bundle member {member.name} is not a Parquet file") from None
                if rows != meta.rows:
                    raise _refuse(f"bundle is inconsistent: {member.name} holds {rows} rows, the manifest says {meta.rows}")
                staged[sha] = out
        return manifest, staged

    def _check_free(self, name: str) -> None:
        with self.ws.db.read() as conn:
            if conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.name == name)).first() is not None:
                raise AlreadyExists(f"dataset {name!r} already exists in this workspace; import under another name with --name NEW")

    def _commit(self, name: str, manifest: Manifest, keys: dict[str, str], *, source_name: str) -> list[DatasetVersion]:
        ds_meta = manifest.dataset
        latest = max(v.version for v in manifest.versions)
        details = {"versions": len(manifest.versions), "bundle": source_name[:200], "exported_as": ds_meta.name, "exported_at": manifest.exported_at}
        out: list[DatasetVersion] = []
        # The versions are created here, now, by the importer; who wrote them first, and when,
        # is kept as provenance in each version's source.
        now = time.time()
        with self.ws.mutation(self.ctx, action="datasets.import", resource=f"datasets/{name}", details=details) as (conn, _):
            if conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.name == name).with_for_update()).first() is not None:
                raise AlreadyExists(f"dataset {name!r} already exists in this workspace; import under another name with --name NEW")
            ds_id = uuid.uuid4().hex
            conn.execute(t.datasets.insert().values(id=ds_id, name=name, description=ds_meta.description, created_at=now, created_by=self.ctx.actor, latest_version=latest))
            for v in sorted(manifest.versions, key=lambda v: v.version):
                vid = uuid.uuid4().hex
                source = {**v.source, "bundle": {
                    "file": source_name[:200], "imported_by": self.ctx.actor, "imported_at": now, "exported_as": ds_meta.name,
                    "exported_at": manifest.exported_at, "author": v.created_by, "authored_at": v.created_at,
                }}
                conn.execute(t.versions.insert().values(
                    id=vid, dataset_id=ds_id, version=v.version, created_at=now, created_by=self.ctx.actor,
                    schema=_dumps([c.model_dump() for c in v.columns]), row_count=v.row_count, byte_size=v.byte_size,
                    source=_dumps(source), lineage=_dumps(v.lineage),
                ))
                files = [{"version_id": vid, "idx": i, "key": keys[f.sha256], "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for i, f in enumerate(v.files)]
                conn.execute(t.files.insert(), files)
                out.append(DatasetVersion(
                    name=name, version=v.version, created_at=now, created_by=self.ctx.actor, row_count=v.row_count,
                    byte_size=v.byte_size, columns=v.columns, files=[{"key": f["key"], "rows": f["rows"], "bytes": f["bytes"], "sha256": f["sha256"]} for f in files],
                    source=source, lineage=v.lineage,
                ))
        return out


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def _tmp(ws: Workspace) -> Path:
    path = ws.settings.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    return info


def _check_member(member: tarfile.TarInfo) -> None:
    """Only ``manifest.json`` and ``files/<sha256>.parquet``, as plain files."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or "\x00" in name or ".." in parts or (parts and ":" in parts[0]):
        raise _refuse(f"bundle member {name[:200]!r} is refused: member names must be relative paths inside the bundle")
    if not member.isfile():
        raise _refuse(f"bundle member {name[:200]!r} is refused: only plain files are allowed (no links, folders or devices)")
    if name != _MANIFEST and not _FILE_RE.fullmatch(name):
        raise _refuse(f"bundle member {name[:200]!r} is refused: a bundle holds only manifest.json and files/<sha256>.parquet")


def _read_manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> Manifest:
    info = members.get(_MANIFEST)
    if info is None:
        raise _refuse("bundle has no manifest.json")
    if info.size > _MAX_MANIFEST:
        raise _refuse(f"bundle manifest is larger than {_MAX_MANIFEST >> 20} MB")
    fh = tar.extractfile(info)
    assert fh is not None
    with fh:
        raw = fh.read(_MAX_MANIFEST + 1)
    try:
        return Manifest.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise _refuse(f"bundle manifest is not valid: {str(exc)[:500]}") from None


def _check_versions(manifest: Manifest) -> None:
    numbers = [v.version for v in manifest.versions]
    if len(set(numbers)) != len(numbers):
        raise _refuse("bundle manifest lists a version twice")
    for v in manifest.versions:
        if sum(f.rows for f in v.files) != v.row_count or sum(f.bytes for f in v.files) != v.byte_size:
            raise _refuse(f"bundle manifest is inconsistent: version {v.version}'s files do not add up to its row count and size")
        if not v.columns:
            raise _refuse(f"bundle manifest gives version {v.version} no columns")
