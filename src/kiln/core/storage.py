"""Object storage over fsspec: a local folder by default, S3 by ``s3://bucket/prefix``.

Keys are always built by Kiln from validated names; :func:`check_key` still
refuses anything that could leave the root, and the local backend also refuses
symlinks that point out of it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, ClassVar

from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable

if TYPE_CHECKING:
    import fsspec

__all__ = [
    "Capabilities",
    "LocalStore",
    "ObjectInfo",
    "ObjectStore",
    "S3Store",
    "check_key",
    "open_store",
    "register_store",
]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Capabilities:
    atomic_rename: bool
    local_paths: bool


def check_key(key: str) -> str:
    """Validate an object key: relative, POSIX, no '..', '.', empty or odd parts."""
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidArgument(f"invalid object key {key!r}")
    if key.startswith("/") or "\\" in key or "\x00" in key or ":" in key.split("/")[0]:
        raise InvalidArgument(f"invalid object key {key!r}: must be a relative path")
    parts = PurePosixPath(key).parts
    if any(p in ("", ".", "..") for p in key.split("/")) or not parts:
        raise InvalidArgument(f"invalid object key {key!r}: '.', '..' and empty parts are refused")
    return key


class ObjectStore(ABC):
    """Where Kiln keeps files. Small on purpose; see :class:`Capabilities`."""

    capabilities: ClassVar[Capabilities]
    fs: fsspec.AbstractFileSystem
    url: str

    @abstractmethod
    def path(self, key: str) -> str:
        """The backend path of ``key`` (usable with :attr:`fs`, pyarrow and DuckDB)."""

    @abstractmethod
    def put_file(self, key: str, source: str | os.PathLike[str]) -> ObjectInfo:
        """Copy a local file to ``key``; the object appears whole or not at all."""

    @abstractmethod
    def open_write(self, key: str) -> Any:
        """A context manager yielding a binary file; the object appears on close."""

    @abstractmethod
    def delete(self, key_or_prefix: str) -> None:
        """Remove an object or everything under a prefix (missing is fine)."""

    @abstractmethod
    def list(self, prefix: str) -> list[tuple[str, int, float]]:
        """(key, size, modified time) of every object under ``prefix``."""

    # -- shared behaviour ---------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        with self.open_write(key) as fh:
            fh.write(data)
        return ObjectInfo(key, len(data), hashlib.sha256(data).hexdigest())

    def open(self, key: str) -> IO[bytes]:
        try:
            return self.fs.open(self.path(check_key(key)), "rb")
        except FileNotFoundError:
            raise NotFound(f"object {key!r} does not exist") from None

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(check_key(key))))

    def info(self, key: str) -> ObjectInfo:
        """Size and sha256 of a stored object (reads it once)."""
        digest = hashlib.sha256()
        size = 0
        with self.open(key) as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return ObjectInfo(key, size, digest.hexdigest())

    def get_file(self, key: str, dest: str | os.PathLike[str]) -> None:
        with self.open(key) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)

    def ping(self) -> None:
        """Raise Unavailable when the store cannot be reached."""
        try:
            self.fs.ls(self.path("ping").rsplit("/", 1)[0])
        except FileNotFoundError:
            return
        except Exception as exc:  # noqa: BLE001 - any transport failure means unavailable
            raise Unavailable(f"object storage {self.url} does not answer: {exc}") from None


def sha256_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class LocalStore(ObjectStore):
    """A folder on this machine; writes go to a temp name then ``os.replace``."""

    capabilities = Capabilities(atomic_rename=True, local_paths=True)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.url = str(self.root)

    @functools.cached_property
    def fs(self) -> fsspec.AbstractFileSystem:  # type: ignore[override]
        """fsspec's local filesystem, imported on first use (reads and writes here need none)."""
        import fsspec

        return fsspec.filesystem("file")

    def open(self, key: str) -> IO[bytes]:
        try:
            return open(self.path(check_key(key)), "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"object {key!r} does not exist") from None

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(check_key(key)))

    def path(self, key: str) -> str:
        target = self.root / check_key(key)
        resolved = target.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise PermissionDenied(f"object key {key!r} resolves outside the store")
        return str(target)

    def put_file(self, key: str, source: str | os.PathLike[str]) -> ObjectInfo:
        with self.open_write(key) as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
        size, digest = sha256_file(self.path(key))
        return ObjectInfo(key, size, digest)

    def open_write(self, key: str) -> Any:
        return _AtomicLocalWriter(Path(self.path(key)))

    def delete(self, key_or_prefix: str) -> None:
        target = Path(self.path(key_or_prefix))
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        # Prune folders left empty, up to the root.
        parent = target.parent
        while parent != self.root and parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str) -> list[tuple[str, int, float]]:
        base = Path(self.path(prefix))
        if not base.exists():
            return []
        out = []
        for path in [base] if base.is_file() else base.rglob("*"):
            if path.is_file() and not path.is_symlink():
                st = path.stat()
                out.append((path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime))
        return sorted(out)


class _AtomicLocalWriter:
    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")

    def __enter__(self) -> IO[bytes]:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.tmp, "wb")
        return self.fh

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


class S3Store(ObjectStore):
    """An S3-compatible bucket and prefix (s3fs). PUTs are atomic per object."""

    capabilities = Capabilities(atomic_rename=False, local_paths=False)

    def __init__(self, url: str, *, endpoint_url: str = "") -> None:
        try:
            import s3fs
        except ImportError:  # pragma: no cover - depends on extras
            raise InvalidArgument("s3:// storage needs the s3 extra: pip install 'kiln[s3]'") from None
        rest = url.removeprefix("s3://").strip("/")
        if not rest:
            raise InvalidArgument(f"invalid storage URL {url!r}: use s3://bucket[/prefix]")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self.url = url
        kwargs: dict[str, Any] = {}
        if endpoint_url:
            kwargs["client_kwargs"] = {"endpoint_url": endpoint_url}
            kwargs["endpoint_url"] = endpoint_url
        self.storage_options = kwargs
        self.fs = s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)

    def path(self, key: str) -> str:
        check_key(key)
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def put_file(self, key: str, source: str | os.PathLike[str]) -> ObjectInfo:
        size, digest = sha256_file(source)
        self.fs.put_file(str(source), self.path(key))
        return ObjectInfo(key, size, digest)

    def open_write(self, key: str) -> Any:
        return _S3Writer(self.fs.open(self.path(key), "wb"))

    def delete(self, key_or_prefix: str) -> None:
        path = self.path(key_or_prefix)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache()

    def list(self, prefix: str) -> list[tuple[str, int, float]]:
        base = self.path(prefix)
        root = "/".join(p for p in (self.bucket, self.prefix) if p) + "/"
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for path, meta in found.items():
            modified = meta.get("LastModified")
            mtime = modified.timestamp() if hasattr(modified, "timestamp") else 0.0
            out.append((path.removeprefix(root), int(meta.get("size", 0)), mtime))
        return sorted(out)

    def ping(self) -> None:
        try:
            self.fs.ls(self.bucket)
        except Exception as exc:  # noqa: BLE001
            raise Unavailable(f"object storage {self.url} does not answer: {exc}") from None


class _S3Writer:
    """s3fs uploads on close even after an exception; abort instead, so nothing appears."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh

    def __enter__(self) -> Any:
        return self.fh

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.fh.close()
        else:
            self.fh.discard()
            self.fh.closed = True


_FACTORIES: dict[str, Callable[..., ObjectStore]] = {}


def register_store(scheme: str, factory: Callable[..., ObjectStore]) -> None:
    """Register a backend for a URL scheme (built-ins register the same way)."""
    _FACTORIES[scheme] = factory


register_store("file", lambda url, **_: LocalStore(url.removeprefix("file://")))
register_store("s3", lambda url, **kw: S3Store(url, endpoint_url=kw.get("endpoint_url", "")))


def open_store(url: str, *, endpoint_url: str = "") -> ObjectStore:
    """Open the object store named by ``url`` (a path, ``file://`` or ``s3://``)."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    factory = _FACTORIES.get(scheme)
    if factory is None:
        raise InvalidArgument(
            f"unsupported storage URL {url!r}: use a folder path or s3://bucket/prefix "
            f"(known schemes: {sorted(_FACTORIES)})"
        )
    return factory(url, endpoint_url=endpoint_url)


def iter_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(_CHUNK):
        yield chunk
