"""Model packages on disk: scanning, hashing, manifests, signatures and safe tar files.

A package is a folder holding the model's files, an optional ``code/inference.py``
and ``kiln-model.json``. Every path in it is a plain relative POSIX path (no
``..``, no links, nothing outside the folder); every file's sha256 is in the
manifest and is checked before anything loads it.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import stat
import tarfile
import time
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import IO, Any

import orjson

from kiln.core.errors import InvalidArgument, PayloadTooLarge
from kiln.core.storage import check_key, sha256_file
from kiln.registry._models import MANIFEST_NAME, ColumnSpec, FileDigest, Manifest, Signature

__all__ = [
    "check_package_path",
    "extract_tar",
    "framework_versions",
    "hash_folder",
    "read_manifest",
    "scan_folder",
    "signature_of",
    "tar_folder",
    "verify_folder",
    "write_manifest",
]

MAX_FILES = 10_000
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=@,")


def check_package_path(path: str) -> str:
    """A file path inside a package: relative POSIX parts of safe characters only."""
    if not isinstance(path, str) or not path or len(path) > 512:
        raise InvalidArgument(f"invalid package path {str(path)[:80]!r}")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", "..") or not set(part) <= _NAME_OK or part.startswith("-"):
            raise InvalidArgument(
                f"invalid package path {path[:80]!r}: use relative paths of letters, digits and . _ - + = @ , "
                "('..', absolute paths, backslashes and encoded characters are refused)"
            )
    return check_key(path)


def scan_folder(folder: Path) -> list[str]:
    """Relative paths of every file in ``folder``; links and special files are refused."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidArgument(f"{str(folder)!r} is not a folder; a model package is a folder of files")
    root = root.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            info = full.lstat()
            rel = full.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                raise InvalidArgument(f"package file {rel!r} is a symbolic link; copy the file into the package instead")
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                raise InvalidArgument(f"package entry {rel!r} is not a regular file")
            if "__pycache__" in rel.split("/"):
                continue
            found.append(check_package_path(rel))
            if len(found) > MAX_FILES:
                raise InvalidArgument(f"a model package may hold at most {MAX_FILES} files")
    return sorted(found)


def hash_folder(folder: Path, paths: list[str]) -> dict[str, FileDigest]:
    out = {}
    for rel in paths:
        size, digest = sha256_file(Path(folder) / rel)
        out[rel] = FileDigest(sha256=digest, size=size)
    return out


def read_manifest(folder: Path) -> Manifest | None:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise InvalidArgument(f"{MANIFEST_NAME} is not a valid manifest: {str(exc)[:500]}") from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    (Path(folder) / MANIFEST_NAME).write_bytes(
        orjson.dumps(orjson.loads(manifest.model_dump_json()), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )


def verify_folder(folder: Path, manifest: Manifest, *, exact: bool = True) -> None:
    """Check that ``folder`` holds exactly the manifest's files, each with its sha256.

    Raises:
        InvalidArgument: a file is missing, extra, or its content does not match its hash.
    """
    present = [p for p in scan_folder(folder) if p != MANIFEST_NAME]
    listed = set(manifest.files)
    for rel in listed:
        check_package_path(rel)
    missing = sorted(listed - set(present))
    if missing:
        raise InvalidArgument(f"model package is missing {missing[0]!r}, which {MANIFEST_NAME} lists")
    extra = sorted(set(present) - listed)
    if exact and extra:
        raise InvalidArgument(f"model package file {extra[0]!r} is not listed in {MANIFEST_NAME}; list it with its sha256 or remove it")
    for rel in sorted(listed):
        size, digest = sha256_file(Path(folder) / rel)
        want = manifest.files[rel]
        if digest != want.sha256 or size != want.size:
            raise InvalidArgument(
                f"model file {rel!r} does not match its sha256 in {MANIFEST_NAME} (changed or corrupted); "
                "nothing was loaded or registered"
            )


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def signature_of(sample_input: Any, sample_output: Any = None) -> Signature | None:
    """A signature from sample input (and output): column names and dtypes."""
    if sample_input is None:
        return None
    inputs: list[ColumnSpec] = []
    if hasattr(sample_input, "schema") and hasattr(sample_input, "to_pandas"):  # pyarrow Table
        sample_input = sample_input.to_pandas()
    if hasattr(sample_input, "dtypes") and hasattr(sample_input, "columns"):
        inputs = [ColumnSpec(name=str(c), type=_dtype_name(t)) for c, t in sample_input.dtypes.items()]
    else:
        import numpy as np

        arr = np.asarray(sample_input)
        width = arr.shape[1] if arr.ndim == 2 else 1
        inputs = [ColumnSpec(name=None, type=_dtype_name(arr.dtype)) for _ in range(width)]
    outputs: list[ColumnSpec] = []
    if sample_output is not None:
        import numpy as np

        out = np.asarray(sample_output)
        width = out.shape[1] if out.ndim == 2 else 1
        outputs = [ColumnSpec(name="prediction" if width == 1 else None, type=_dtype_name(out.dtype)) for _ in range(width)]
    return Signature(inputs=inputs, outputs=outputs)


def framework_versions(*packages: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def new_manifest(folder: Path, *, flavor: str, options: dict[str, Any], origin: str, **fields: Any) -> Manifest:
    """A manifest hashing every file now in ``folder`` (except the manifest itself)."""
    paths = [p for p in scan_folder(folder) if p != MANIFEST_NAME]
    return Manifest(flavor=flavor, flavor_options=options, files=hash_folder(folder, paths), origin=origin, created_at=time.time(), **fields)  # type: ignore[arg-type]


# -- tar files ----------------------------------------------------------------------


def tar_folder(folder: Path, paths: list[str]) -> bytes:
    """An uncompressed tar of ``paths`` under ``folder`` (what remote registration uploads)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in paths:
            tar.add(str(Path(folder) / rel), arcname=rel, recursive=False)
    return buf.getvalue()


def iter_tar(paths_and_files: Iterator[tuple[str, IO[bytes], int]], out: IO[bytes]) -> None:
    """Write a tar of (path, file, size) items to ``out``."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rel, fh, size in paths_and_files:
            info = tarfile.TarInfo(rel)
            info.size = size
            info.mode = 0o644
            tar.addfile(info, fh)


def extract_tar(data: IO[bytes], dest: Path, *, max_bytes: int) -> list[str]:
    """Extract a tar of plain files into ``dest``, refusing links, devices and escaping paths.

    Raises:
        InvalidArgument: a member is not a regular file or directory, or its path is unsafe.
        PayloadTooLarge: the members add up to more than ``max_bytes``.
    """
    root = Path(dest).resolve()
    written: list[str] = []
    total = 0
    try:
        tar = tarfile.open(fileobj=data, mode="r:*")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the upload is not a tar file: {exc}") from None
    with tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isdir():
                continue
            if not member.isfile():
                raise InvalidArgument(f"tar member {member.name[:80]!r} is not a regular file (links and devices are refused)")
            check_package_path(name)
            target = (root / name).resolve()
            if root not in target.parents:
                raise InvalidArgument(f"tar member {member.name[:80]!r} would land outside the package")
            total += member.size
            if total > max_bytes:
                raise PayloadTooLarge(f"the package unpacks to more than {max_bytes / (1 << 20):g} MB; nothing was registered")
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            written.append(name)
            if len(written) > MAX_FILES:
                raise InvalidArgument(f"a model package may hold at most {MAX_FILES} files")
    return written
