"""A training job's code: packed as the SageMaker SDK packs ``sourcedir.tar.gz``, unpacked
safely into ``code/``, its ``requirements.txt`` installed only when needed, and the
model package (``model/`` plus ``code/``) a finished job registers.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import os
import shutil
import stat
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from kiln.core.errors import InvalidArgument, PayloadTooLarge
from kiln.core.limits import unpacked_limit
from kiln.core.storage import sha256_file

__all__ = [
    "MAX_SOURCE_BYTES",
    "model_package",
    "pack_source",
    "requirements_command",
    "requirements_env",
    "unpack_source",
]

MAX_SOURCE_BYTES = 256 << 20
MAX_SOURCE_FILES = 10_000
_SKIP_DIRS = ("__pycache__", ".git")


def _mb(n: int) -> str:
    return f"{n / (1 << 20):g} MB"


def _plain_relative(path: str, what: str) -> PurePosixPath:
    pure = PurePosixPath(path)
    if not path or "\\" in path or "\x00" in path or pure.is_absolute() or any(p in ("", ".", "..") for p in path.split("/")):
        raise InvalidArgument(f"{what} {path[:120]!r} must be a relative path inside its folder (no '..', no absolute path)")
    return pure


class _Collector:
    """Files to pack, by archive name: symlinks inside their root are followed, others refused."""

    def __init__(self, max_bytes: int) -> None:
        self.entries: dict[str, Path | None] = {}  # archive name -> file (None: a folder)
        self.total = 0
        self.max_bytes = max_bytes

    def add_file(self, arcname: str, path: Path) -> None:
        if arcname in self.entries:
            raise InvalidArgument(f"two files would be packed as {arcname!r}; rename one (dependencies land at the top of code/)")
        self.total += path.stat().st_size
        if self.total > self.max_bytes:
            raise InvalidArgument(
                f"the training code is larger than {_mb(self.max_bytes)}; keep data in channels and give a source_dir that holds only code"
            )
        self.entries[arcname] = path
        if len(self.entries) > MAX_SOURCE_FILES:
            raise InvalidArgument(f"the training code holds more than {MAX_SOURCE_FILES} files; give a source_dir that holds only code")

    def add_tree(self, folder: Path, prefix: str, root: Path, stack: tuple[Path, ...] = ()) -> None:
        real = folder.resolve()
        if real in stack:
            raise InvalidArgument(f"symbolic link loop at {str(folder)!r}")
        if prefix:
            if prefix in self.entries:
                raise InvalidArgument(f"two entries would be packed as {prefix!r}; rename one (dependencies land at the top of code/)")
            self.entries[prefix] = None
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            arc = f"{prefix}/{item.name}" if prefix else item.name
            path = Path(item.path)
            if item.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    raise InvalidArgument(f"{str(path)!r} is a symbolic link to {str(target)!r}, outside {str(root)!r}; copy what it points at into the folder")
                if target.is_dir():
                    self.add_tree(target, arc, root, (*stack, real))
                elif target.is_file():
                    self.add_file(arc, target)
                else:
                    raise InvalidArgument(f"{str(path)!r} is a symbolic link to nothing usable")
            elif item.is_dir(follow_symlinks=False):
                if item.name not in _SKIP_DIRS:
                    self.add_tree(path, arc, root, (*stack, real))
            elif item.is_file(follow_symlinks=False):
                self.add_file(arc, path)
            else:
                raise InvalidArgument(f"{str(path)!r} is not a regular file or folder (pipes, sockets and devices are refused)")


def pack_source(
    *,
    source_dir: Path | None,
    entry_point: str | None,
    dependencies: Sequence[Path] = (),
    out: Path,
    max_bytes: int = MAX_SOURCE_BYTES,
) -> str:
    """Pack a job's code into a deterministic ``tar.gz`` at ``out``; return its sha256.

    As the SageMaker SDK's ``sourcedir.tar.gz``: the contents of ``source_dir`` at the
    top, or only the entry point file when there is no ``source_dir``; each dependency
    (a folder or a file) added at the top under its own name. Symbolic links are
    followed when they stay inside their folder. Names are sorted, times and owners
    zeroed and ``__pycache__`` left out, so the same code always packs to the same bytes.

    Args:
        source_dir: the folder of code, or None for a lone ``entry_point`` file.
        entry_point: relative to ``source_dir``; without one, a path to the script. None
            packs ``source_dir`` whole with no entry point to check (a function's code).
        dependencies: folders or files to ship beside the code (``--dependencies``).
        out: the archive to write (replaced atomically).
        max_bytes: the most the code may hold, unpacked.

    Raises:
        InvalidArgument: the entry point is missing (the message says where it looked), a
            dependency is missing, a symbolic link points outside its folder, two entries
            share a name, or the code is too large.
    """
    collector = _Collector(max_bytes)
    if source_dir is not None:
        root = Path(source_dir)
        if not root.is_dir():
            raise InvalidArgument(f"source_dir {str(root)!r} is not a folder")
        if entry_point is not None:
            rel = _plain_relative(entry_point, "entry point")
            if not (root / rel).is_file():
                raise InvalidArgument(f"entry point {entry_point!r} not found: looked for {str((root / rel).absolute())!r}")
        collector.add_tree(root, "", root.resolve())
    elif entry_point is None:
        raise InvalidArgument("give source_dir, an entry point, or both")
    else:
        script = Path(entry_point)
        if not script.is_file():
            raise InvalidArgument(
                f"entry point {entry_point!r} not found: looked for {str(script.absolute())!r} "
                "(give source_dir when the script lives in a folder of code)"
            )
        collector.add_file(script.name, script.resolve())
    for dep in dependencies:
        dep_path = Path(os.path.abspath(dep))
        if not dep_path.exists():
            raise InvalidArgument(f"dependency {str(dep)!r} not found: looked for {str(dep_path)!r}")
        if dep_path.is_dir():
            collector.add_tree(dep_path, dep_path.name, dep_path.resolve())
        else:
            collector.add_file(dep_path.name, dep_path.resolve())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, tarfile.open(
            fileobj=gz, mode="w", format=tarfile.PAX_FORMAT
        ) as tar:
            for arcname in sorted(collector.entries):
                _add(tar, arcname, collector.entries[arcname])
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_file(out)[1]


def _add(tar: tarfile.TarFile, arcname: str, path: Path | None) -> None:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
        tar.addfile(info, fh)


def unpack_source(archive: Path, code_dir: Path, *, max_bytes: int = MAX_SOURCE_BYTES) -> None:
    """Extract a code archive into an empty ``code_dir``: plain files and folders only.

    Raises:
        InvalidArgument: not a tar file; a member is a link or device, or its path is
            absolute or climbs out with ``..``; ``code_dir`` is not empty.
        PayloadTooLarge: the members add up to more than the archive may unpack to
            (``kiln.core.limits.unpacked_limit`` of its size, at most ``max_bytes``).
    """
    dest = Path(code_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InvalidArgument(f"code folder {str(dest)!r} is not empty; unpack into an empty folder")
    root = dest.resolve()
    limit = unpacked_limit(Path(archive).stat().st_size, max_bytes)
    total = 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./").rstrip("/")
                if not name:
                    continue
                _plain_relative(name, "archive member")
                target = root / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise InvalidArgument(f"archive member {name[:120]!r} is a link or special file; only plain files and folders are unpacked")
                total += member.size
                if total > limit:
                    raise PayloadTooLarge(f"the code archive unpacks to more than {_mb(limit)}")
                parent = target.parent.resolve()
                if parent != root and root not in parent.parents:
                    raise InvalidArgument(f"archive member {name[:120]!r} would land outside the code folder")
                parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with src, open(target, "xb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
    except (tarfile.TarError, EOFError, OSError) as exc:
        _empty(dest)
        raise InvalidArgument(f"cannot unpack the code archive: {exc}") from None
    except BaseException:
        _empty(dest)
        raise


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


# -- requirements.txt ---------------------------------------------------------------------


def _requirement_lines(path: Path) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line = pending + raw
        pending = ""
        if line.lstrip().startswith("#"):
            continue
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _installed(requirement: object, *, extras: bool = True) -> bool:
    from packaging.requirements import Requirement

    assert isinstance(requirement, Requirement)
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
        return False
    if not (extras and requirement.extras):
        return True
    for line in importlib.metadata.requires(requirement.name) or []:
        dep = Requirement(line)
        if dep.marker is None or dep.marker.evaluate({"extra": ""}):
            continue  # a base requirement: installed with the package
        wanted = any(dep.marker.evaluate({"extra": extra}) for extra in requirement.extras)
        if wanted and not _installed(dep, extras=False):
            return False
    return True


def requirements_command(code_dir: Path, target: Path, *, python: str = sys.executable) -> list[str] | None:
    """The ``pip install --target`` command for the code's ``requirements.txt``, if it needs one.

    None when there is no ``requirements.txt`` or every requirement in it is already
    installed at a matching version in this environment (checked with ``packaging`` and
    ``importlib.metadata``, without running pip). When ``python`` is this interpreter and
    the file is plain requirements, only the missing ones are installed; a file with
    pip options (``-r``, ``-e``, ``--index-url``), URLs or paths is handed to pip whole.
    Put ``target`` on ``PYTHONPATH`` (:func:`requirements_env`) when running the script.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    req_file = Path(code_dir) / "requirements.txt"
    if not req_file.is_file():
        return None
    base = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--target", str(target)]
    whole = [*base, "-r", str(req_file)]
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        return whole  # another interpreter's packages cannot be checked from here
    missing: list[str] = []
    for line in _requirement_lines(req_file):
        if line.startswith("-"):
            return whole
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return whole  # a URL, a path or a wheel file
        if requirement.url:
            return whole
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if not _installed(requirement):
            missing.append(line)
    return [*base, *missing] if missing else None


def requirements_env(target: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``PYTHONPATH`` with ``target`` (where :func:`requirements_command` installs) in front of ``env``'s."""
    current = (os.environ if env is None else env).get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{target}:{current}" if current else str(target)}


# -- the model package --------------------------------------------------------------------


def model_package(model_dir: Path, code_dir: Path, dest: Path) -> Path:
    """Lay out a finished job's model package in an empty ``dest``: ``model_dir``'s files at
    the top and ``code_dir`` as ``code/``.

    As the SageMaker SDK repacks a model with its source: a ``code/`` folder the script
    saved into the model folder is replaced by the job's code. Symbolic links are
    followed when they stay inside their folder; ``__pycache__`` is left out.

    Raises:
        InvalidArgument: ``dest`` is not empty, or a symbolic link points outside its folder.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise InvalidArgument(f"{str(dest)!r} is not empty; lay out the model package in an empty folder")
    for src, prefix in ((Path(model_dir), ""), (Path(code_dir), "code")):
        collector = _Collector(1 << 62)
        if src.is_dir():
            collector.add_tree(src, prefix, src.resolve())
        for arcname, path in sorted(collector.entries.items()):
            if prefix == "" and (arcname == "code" or arcname.startswith("code/")):
                continue
            target = dest / arcname
            if path is None:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                if path.stat().st_mode & stat.S_IXUSR:
                    target.chmod(0o755)
    return dest
