"""Model package files: signatures from samples, framework versions, tars in and out, and the
bounds extract_tar keeps (the guard for uploads of model packages)."""

from __future__ import annotations

import io
import platform
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kiln.core.errors import InvalidArgument, PayloadTooLarge
from kiln.registry import _package
from kiln.registry._package import extract_tar, framework_versions, iter_tar, signature_of, tar_folder


def _specs(specs: list) -> list[tuple[str | None, str]]:
    return [(c.name, c.type) for c in specs]


def test_a_signature_names_and_types_every_column_of_each_kind_of_sample() -> None:
    frame = pd.DataFrame({"age": [30, 40], "income": [1.5, 2.5], "city": ["a", "b"]})
    named = [("age", "int64"), ("income", "float64"), ("city", frame["city"].dtype.name)]  # "object" or "str" by pandas version
    assert _specs(signature_of(frame).inputs) == named
    assert _specs(signature_of(pa.Table.from_pandas(frame)).inputs) == named
    assert _specs(signature_of(np.zeros((4, 3), np.float32)).inputs) == [(None, "float32")] * 3
    assert _specs(signature_of(pd.Series([1, 2, 3])).inputs) == [(None, "int64")]
    assert signature_of(None) is None


def test_a_signature_names_one_output_prediction_and_leaves_several_unnamed() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    assert signature_of(frame).outputs == []
    assert _specs(signature_of(frame, np.array([0, 1])).outputs) == [("prediction", "int64")]
    assert _specs(signature_of(frame, np.zeros((2, 3))).outputs) == [(None, "float64")] * 3


def test_framework_versions_skip_what_is_not_installed() -> None:
    got = framework_versions("no-such-package-kiln", "numpy")
    assert got == {"python": platform.python_version(), "numpy": np.__version__}


def _tar(members: list[tuple[str, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_extract_takes_dot_slash_names_folders_first_and_nested_files(tmp_path: Path) -> None:
    data = _tar([("./", None), ("./code", None), ("./model.bin", b"weights"), ("code/sub/inference.py", b"x = 1\n")])
    assert extract_tar(data, tmp_path, max_bytes=1 << 20) == ["model.bin", "code/sub/inference.py"]
    assert (tmp_path / "model.bin").read_bytes() == b"weights" and (tmp_path / "code/sub/inference.py").read_text() == "x = 1\n"


def test_extract_bounds_are_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert extract_tar(_tar([("a.bin", b"x" * 6), ("b.bin", b"y" * 4)]), tmp_path / "exact", max_bytes=10) == ["a.bin", "b.bin"]
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        extract_tar(_tar([("a.bin", b"x" * 6), ("b.bin", b"y" * 5)]), tmp_path / "over", max_bytes=10)
    monkeypatch.setattr(_package, "MAX_FILES", 2)
    assert len(extract_tar(_tar([("a", b"1"), ("b", b"2")]), tmp_path / "two", max_bytes=100)) == 2
    with pytest.raises(InvalidArgument, match="^a model package may hold at most 2 files$"):
        extract_tar(_tar([("a", b"1"), ("b", b"2"), ("c", b"3")]), tmp_path / "three", max_bytes=100)
    with pytest.raises(InvalidArgument, match="^the upload is not a tar file: "):
        extract_tar(io.BytesIO(b"not a tar at all" * 40), tmp_path / "junk", max_bytes=100)


def test_extract_refuses_a_member_that_a_link_in_the_destination_would_send_outside(tmp_path: Path) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "code").symlink_to(outside)  # not from the tar (links in it are refused): already there
    with pytest.raises(InvalidArgument) as info:
        extract_tar(_tar([("code/x.py", b"1")]), dest, max_bytes=100)
    assert info.value.message == "tar member 'code/x.py' would land outside the package" and list(outside.iterdir()) == []


def test_tars_made_here_hold_plain_readable_files(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"abc")
    out = io.BytesIO()
    iter_tar(iter([("m.bin", io.BytesIO(b"abc"), 3)]), out)
    for blob in (out.getvalue(), tar_folder(tmp_path, ["m.bin"])):
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            (member,) = tar.getmembers()
            assert (member.name, member.isfile(), tar.extractfile(member).read()) == ("m.bin", True, b"abc")  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getmembers()[0].mode == 0o644


ADVICE = ": use relative paths of letters, digits and . _ - + = @ , ('..', absolute paths, backslashes and encoded characters are refused)"


@pytest.mark.parametrize(("path", "message"), [
    ("", "invalid package path ''"),
    (123, "invalid package path '123'"),
    ("a" * 513, f"invalid package path {'a' * 80!r}"),
    ("a//b", "invalid package path 'a//b'" + ADVICE),
    ("a/./b", "invalid package path 'a/./b'" + ADVICE),
    ("a/../b", "invalid package path 'a/../b'" + ADVICE),
    ("a/-rf", "invalid package path 'a/-rf'" + ADVICE),
    ("a/b%2e", "invalid package path 'a/b%2e'" + ADVICE),
])
def test_package_paths_are_refused_with_advice(path: object, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        _package.check_package_path(path)  # type: ignore[arg-type]
    assert info.value.message == message


def test_the_longest_and_the_widest_package_paths_are_taken() -> None:
    widest = "".join(sorted(_package._NAME_OK))  # every allowed character in one part
    for path in ("a" * 512, f"code/{widest}"):
        assert _package.check_package_path(path) == path


def test_a_folder_scan_skips_bytecode_and_refuses_links_and_fifos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    with pytest.raises(InvalidArgument) as info:
        _package.scan_folder(tmp_path / "nope")
    assert info.value.message == f"{str(tmp_path / 'nope')!r} is not a folder; a model package is a folder of files"
    (tmp_path / "code/__pycache__").mkdir(parents=True)
    (tmp_path / "code/__pycache__/inference.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "code/inference.py").write_text("")
    (tmp_path / "model.bin").write_bytes(b"w")
    monkeypatch.setattr(_package, "MAX_FILES", 2)
    assert _package.scan_folder(tmp_path) == ["code/inference.py", "model.bin"]  # at the cap
    (tmp_path / "extra.bin").write_bytes(b"x")
    with pytest.raises(InvalidArgument, match="^a model package may hold at most 2 files$"):
        _package.scan_folder(tmp_path)
    (tmp_path / "extra.bin").unlink()
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InvalidArgument, match="^package entry 'pipe' is not a regular file$"):
        _package.scan_folder(tmp_path)
    (tmp_path / "pipe").unlink()
    (tmp_path / "link.bin").symlink_to(tmp_path / "model.bin")
    with pytest.raises(InvalidArgument, match="^package file 'link.bin' is a symbolic link; copy the file into the package instead$"):
        _package.scan_folder(tmp_path)


def test_a_same_size_change_fails_verification_and_a_bad_manifest_is_named(tmp_path: Path) -> None:
    import time

    (tmp_path / "model.bin").write_bytes(b"weights")
    before = time.time()
    manifest = _package.new_manifest(tmp_path, flavor="custom", options={}, origin="folder")
    assert before <= manifest.created_at <= time.time()  # type: ignore[operator]
    _package.verify_folder(tmp_path, manifest)
    (tmp_path / "model.bin").write_bytes(b"WEIGHTS")  # same size, other bytes: only the hash tells
    with pytest.raises(InvalidArgument) as info:
        _package.verify_folder(tmp_path, manifest)
    assert info.value.message == "model file 'model.bin' does not match its sha256 in kiln-model.json (changed or corrupted); nothing was loaded or registered"
    (tmp_path / "kiln-model.json").write_text('{"flavor": 3}')
    with pytest.raises(InvalidArgument, match="^kiln-model.json is not a valid manifest: 2 validation errors for Manifest"):
        _package.read_manifest(tmp_path)
