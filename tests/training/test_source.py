"""A job's code: packed like the SageMaker SDK's sourcedir.tar.gz, unpacked safely,
requirements installed only when missing, laid out as a model package."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from kiln.core.errors import InvalidArgument, PayloadTooLarge
from kiln.training import (
    model_package,
    pack_source,
    requirements_command,
    requirements_env,
    unpack_source,
)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_pack_is_deterministic_and_lays_out_like_the_sdk(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"train.py": "print(1)\n", "util/helpers.py": "X = 1\n", "__pycache__/train.cpython-311.pyc": "junk"})
    dep = _tree(tmp_path / "libs" / "mylib", {"__init__.py": "", "features.py": "Y = 2\n"})
    single = _tree(tmp_path / "extra", {"constants.py": "Z = 3\n"}) / "constants.py"
    first = pack_source(source_dir=src, entry_point="train.py", dependencies=[dep, single], out=tmp_path / "a.tar.gz")
    os.utime(src / "train.py", (1, 1))
    (src / "util" / "helpers.py").chmod(0o600)
    second = pack_source(source_dir=src, entry_point="train.py", dependencies=[dep, single], out=tmp_path / "b.tar.gz")
    assert first == second and len(first) == 64
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert _names(tmp_path / "a.tar.gz") == ["constants.py", "mylib", "mylib/__init__.py", "mylib/features.py", "train.py", "util", "util/helpers.py"]


def test_lone_entry_point(tmp_path: Path) -> None:
    script = _tree(tmp_path / "somewhere", {"fit.py": "print(1)\n"}) / "fit.py"
    pack_source(source_dir=None, entry_point=str(script), out=tmp_path / "s.tar.gz")
    assert _names(tmp_path / "s.tar.gz") == ["fit.py"]


@pytest.mark.parametrize(
    ("source", "entry", "message"),
    [
        ("src", "missing.py", "entry point 'missing.py' not found: looked for '.*/src/missing.py'"),
        ("src", "../train.py", "must be a relative path"),
        (None, "nowhere/fit.py", "entry point 'nowhere/fit.py' not found: looked for '.*nowhere/fit.py'"),
        ("no-such-dir", "train.py", "is not a folder"),
    ],
)
def test_missing_entry_point_says_where_it_looked(tmp_path: Path, source: str | None, entry: str, message: str) -> None:
    _tree(tmp_path / "src", {"train.py": ""})
    with pytest.raises(InvalidArgument, match=message):
        pack_source(source_dir=tmp_path / source if source else None, entry_point=entry, out=tmp_path / "o.tar.gz")


def test_symlinks_inside_are_followed_outside_refused(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"train.py": "", "real/conf.yaml": "a: 1\n"})
    (src / "conf.yaml").symlink_to(src / "real" / "conf.yaml")
    (src / "alias").symlink_to(src / "real")
    pack_source(source_dir=src, entry_point="train.py", out=tmp_path / "ok.tar.gz")
    assert {"conf.yaml", "alias/conf.yaml"} <= set(_names(tmp_path / "ok.tar.gz"))
    (tmp_path / "secret").write_text("s")
    (src / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidArgument, match="symbolic link to .*secret.*outside"):
        pack_source(source_dir=src, entry_point="train.py", out=tmp_path / "bad.tar.gz")
    assert not (tmp_path / "bad.tar.gz").exists()


def test_too_large_and_name_clash(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"train.py": "", "data.csv": "x" * 5000})
    with pytest.raises(InvalidArgument, match="larger than .*keep data in channels"):
        pack_source(source_dir=src, entry_point="train.py", out=tmp_path / "o.tar.gz", max_bytes=4096)
    with pytest.raises(InvalidArgument, match="two .* 'train.py'"):
        pack_source(source_dir=src, entry_point="train.py", dependencies=[src / "train.py"], out=tmp_path / "o.tar.gz")


def test_unpack_round_trip_keeps_exec_bits(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"train.sh": "#!/bin/sh\n", "pkg/a.py": "A = 1\n"})
    (src / "train.sh").chmod(0o755)
    pack_source(source_dir=src, entry_point="train.sh", out=tmp_path / "s.tar.gz")
    unpack_source(tmp_path / "s.tar.gz", tmp_path / "code")
    assert (tmp_path / "code" / "pkg" / "a.py").read_text() == "A = 1\n"
    assert os.access(tmp_path / "code" / "train.sh", os.X_OK) and not os.access(tmp_path / "code" / "pkg" / "a.py", os.X_OK)
    with pytest.raises(InvalidArgument, match="not empty"):
        unpack_source(tmp_path / "s.tar.gz", tmp_path / "code")
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        unpack_source(tmp_path / "s.tar.gz", tmp_path / "small", max_bytes=8)
    assert list((tmp_path / "small").iterdir()) == []


def _evil(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("ok.py"), io.BytesIO(b""))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escape.py"),
        tarfile.TarInfo("a/../../escape.py"),
        tarfile.TarInfo("/abs/escape.py"),
        tarfile.TarInfo("a\\..\\escape.py"),
        _link("link", "/etc/passwd", tarfile.SYMTYPE),
        _link("hard", "/etc/passwd", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "backslash", "symlink", "hardlink"],
)
def test_unpack_refuses_escapes_and_links(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _evil(tmp_path, member)
    with pytest.raises(InvalidArgument):
        unpack_source(archive, tmp_path / "job" / "code")
    assert list((tmp_path / "job" / "code").iterdir()) == []
    assert not (tmp_path / "job" / "escape.py").exists() and not (tmp_path / "escape.py").exists()


@pytest.mark.parametrize(
    ("requirements", "missing"),
    [
        (None, None),
        ("numpy\nscikit-learn>=1.0  # comment\n\n# only a comment\n", None),
        ("pandas; python_version < '3'\nkiln-no-such-package==1.0 ; python_version < '3'\n", None),
        ("numpy\nkiln-no-such-package==1.0\n", ["kiln-no-such-package==1.0"]),
        ("numpy<1\n", ["numpy<1"]),
        ("kiln[s3,ml]\n", None),
        ("kiln[bench]\n", ["kiln[bench]"]),  # mlflow: installed only in the benchmarks' own venv
    ],
)
def test_requirements_only_when_missing(tmp_path: Path, requirements: str | None, missing: list[str] | None) -> None:
    if requirements is not None:
        (tmp_path / "requirements.txt").write_text(requirements)
    got = requirements_command(tmp_path, tmp_path / "deps")
    want = None if missing is None else [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--target", str(tmp_path / "deps"), *missing]
    assert got == want


@pytest.mark.parametrize("requirements", ["-r other.txt\n", "--index-url https://example.invalid/simple\nnumpy\n", "./local_pkg\n", "pkg @ https://example.invalid/pkg.whl\n"])
def test_requirements_with_options_go_to_pip_whole(tmp_path: Path, requirements: str) -> None:
    (tmp_path / "requirements.txt").write_text(requirements)
    assert requirements_command(tmp_path, tmp_path / "deps")[-2:] == ["-r", str(tmp_path / "requirements.txt")]  # type: ignore[index]
    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert requirements_command(tmp_path, tmp_path / "deps", python="/opt/other/python")[-2:] == ["-r", str(tmp_path / "requirements.txt")]  # type: ignore[index]


def test_requirements_env() -> None:
    assert requirements_env(Path("/t"), {"PYTHONPATH": "/a:/b"}) == {"PYTHONPATH": "/t:/a:/b"}
    assert requirements_env(Path("/t"), {}) == {"PYTHONPATH": "/t"}


def test_model_package_takes_the_jobs_code(tmp_path: Path) -> None:
    model = _tree(tmp_path / "model", {"model.joblib": "m", "sub/extra.json": "{}", "code/inference.py": "stale"})
    code = _tree(tmp_path / "code", {"train.py": "t", "inference.py": "fresh", "__pycache__/x.pyc": "c"})
    dest = model_package(model, code, tmp_path / "pkg")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["code/inference.py", "code/train.py", "model.joblib", "sub/extra.json"]
    assert (dest / "code" / "inference.py").read_text() == "fresh"
