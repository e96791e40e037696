"""Users' source for jobs and functions: packed once on the submitter's side, stored by its
sha256 under ``jobs/code/``, and unpacked into a job's folder when it runs.

One upload serves every kind of job: the SDK packs a folder (``pack_source``), stores it
here in-process or through ``POST /v1/jobs/code``, then names it by hash in the job's
request, which stays plain JSON.

Functions pack a whole folder with :func:`pack_folder` and unpack it with
:func:`unpack_archive` (the same format: a deterministic gzipped tar of relative names).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound, PayloadTooLarge
from kiln.core.limits import unpacked_limit
from kiln.core.workspace import Workspace
from kiln.jobs._models import CodeArchive

__all__ = ["CodeService", "code_key", "fetch_archive", "pack_folder", "unpack_archive"]

_SHA = re.compile(r"[0-9a-f]{64}")


def code_key(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA.fullmatch(sha256):
        raise InvalidArgument("a code archive is named by its sha256: 64 lower-case hex digits")
    return f"jobs/code/{sha256}.tar.gz"


class CodeService:
    """Stored code archives."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def upload(self, *, stream: IO[bytes], limit: int) -> CodeArchive:
        """Store a gzipped tar of users' code (at most ``limit`` bytes); idempotent by hash."""
        self.ctx.require("editor")
        digest = hashlib.sha256()
        size = 0
        with tempfile.NamedTemporaryFile(prefix="kiln-code-", suffix=".tar.gz") as tmp:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise InvalidArgument(f"the code archive is larger than {limit >> 20} MB; leave data out of source_dir (pass it as a channel)")
                digest.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            return self.store(Path(tmp.name), sha256=digest.hexdigest(), size=size)

    def store(self, path: Path, *, sha256: str | None = None, size: int | None = None) -> CodeArchive:
        """Store the archive at ``path`` (in-process callers)."""
        self.ctx.require("editor")
        if sha256 is None:
            sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        _check_archive(path)
        key = code_key(sha256)
        if not self.ws.store.exists(key):
            with self.ws.mutation(self.ctx, action="jobs.code", resource=f"jobs/code/{sha256[:12]}", details={"size": size or path.stat().st_size}):
                self.ws.store.put_file(key, path)
        return CodeArchive(sha256=sha256, size=size if size is not None else path.stat().st_size)


def _check_archive(path: Path) -> None:
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise InvalidArgument(f"the code archive holds {member.name!r}, outside its root")
    except (tarfile.TarError, OSError, EOFError):
        raise InvalidArgument("the code archive is not a gzipped tar; the SDK and CLI pack source_dir for you") from None


def fetch_archive(ws: Workspace, sha256: str, dest: Path) -> Path:
    """Copy stored archive ``sha256`` to file ``dest`` and check its hash."""
    key = code_key(sha256)
    if not ws.store.exists(key):
        raise NotFound(f"no code archive {sha256[:12]}…; upload the source again")
    with ws.store.open(key) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    got = hashlib.sha256(dest.read_bytes()).hexdigest()
    if got != sha256:
        raise InvalidArgument(f"stored code archive {sha256[:12]}… does not match its hash; it was changed after upload")
    return dest


# -- a folder of code, packed and unpacked ----------------------------------------------------

MAX_CODE_BYTES = 256 << 20
MAX_CODE_FILES = 10_000
_SKIP = ("__pycache__", ".git")


def pack_folder(folder: str | os.PathLike[str], out: Path, *, max_bytes: int = MAX_CODE_BYTES) -> str:
    """Pack the folder of code ``folder`` into a deterministic gzipped tar at ``out``; return
    its sha256.

    Names are relative and sorted, times and owners zeroed, ``__pycache__`` and ``.git``
    left out, so the same code always packs to the same bytes (and is stored once).
    Symbolic links are followed while they stay inside the folder.

    Raises:
        InvalidArgument: not a folder, a link out of it, a special file, or too much code.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidArgument(f"code folder {str(folder)!r} is not a folder")
    real_root = root.resolve()
    files: list[tuple[str, Path | None]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        if here.resolve() != real_root and real_root not in here.resolve().parents:
            raise InvalidArgument(f"{str(here)!r} is a link to a folder outside {str(folder)!r}; copy what it points at into the folder")
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP)
        rel = here.relative_to(root).as_posix()
        if rel != ".":
            files.append((rel, None))
        for name in sorted(filenames):
            path = here / name
            target = path.resolve()
            if real_root not in target.parents:
                raise InvalidArgument(f"{str(path)!r} is a link to {str(target)!r}, outside {str(folder)!r}; copy it into the folder")
            if not target.is_file():
                raise InvalidArgument(f"{str(path)!r} is not a regular file (pipes, sockets and devices are refused)")
            total += target.stat().st_size
            if total > max_bytes or len(files) >= MAX_CODE_FILES:
                raise InvalidArgument(f"the code folder holds more than {max_bytes >> 20} MB or {MAX_CODE_FILES} files; give a folder that holds only code")
            files.append(((here / name).relative_to(root).as_posix(), target))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for arcname, path in sorted(files):
                info = tarfile.TarInfo(arcname)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    continue
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    info.size, info.mode = st.st_size, 0o755 if st.st_mode & 0o111 else 0o644
                    tar.addfile(info, fh)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _member_name(name: str) -> str:
    clean = name.removeprefix("./").rstrip("/")
    pure = PurePosixPath(clean)
    if "\\" in clean or "\x00" in clean or pure.is_absolute() or any(p in ("..", "") for p in clean.split("/")):
        raise InvalidArgument(f"the code archive holds {name[:120]!r}, outside its root")
    return clean


def unpack_archive(archive: Path, dest: Path, *, max_bytes: int = MAX_CODE_BYTES) -> None:
    """Extract a code archive into the new folder ``dest``: plain files and folders only,
    every name inside it, the total bounded (a gzip bomb stops early).

    Raises:
        InvalidArgument: not a gzipped tar; a link, a device, or a name outside the folder.
        PayloadTooLarge: it unpacks to more than its size allows.
    """
    dest.mkdir(parents=True)
    root = dest.resolve()
    limit = unpacked_limit(archive.stat().st_size, max_bytes)
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.name.removeprefix("./").strip("/"):
                    continue
                name = _member_name(member.name)
                target = root / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise InvalidArgument(f"the code archive holds {name[:120]!r}, a link or special file; only files and folders are unpacked")
                total += member.size
                if total > limit:
                    raise PayloadTooLarge(f"the code archive unpacks to more than {limit >> 20} MB")
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with src, open(target, "xb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
    except (tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise InvalidArgument(f"cannot unpack the code archive: {exc}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
