"""Users' source for jobs and functions: packed once on the submitter's side, stored by its
sha256 under ``jobs/code/``, and unpacked into a job's folder when it runs.

One upload serves every kind of job: the SDK packs a folder (``pack_source``), stores it
here in-process or through ``POST /v1/jobs/code``, then names it by hash in the job's
request, which stays plain JSON.

Functions pack their whole folder the same way (``pack_source`` without an entry point).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.workspace import Workspace
from kiln.jobs._models import CodeArchive

__all__ = ["CodeService", "code_key", "fetch_archive"]

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
