"""Dataset bundles: every version moves between workspaces; a bad bundle imports nothing."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from kiln.core.context import Context, local_context
from kiln.core.errors import AlreadyExists, InvalidArgument, KilnError, NotFound, PayloadTooLarge
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
from kiln.lake.bundles import BundleService


def _three_versions(ws: Workspace) -> DatasetService:
    ds = DatasetService(ws, local_context())
    ds.write_table("sales", pd.DataFrame({"city": ["paris", "lyon"], "amount": [10.5, 3.25]}), source={"kind": "test"}, lineage={"parents": ["raw@1"]}, description="daily sales")
    ds.write_table("sales", pd.DataFrame({"city": ["nice"], "amount": [7.0]}), append=True)
    ds.write_table("sales", pd.DataFrame({"city": ["x"], "amount": [1.0]}))
    return ds


@pytest.fixture
def bundle(ws: Workspace, tmp_path: Path) -> Path:
    _three_versions(ws)
    return BundleService(ws, local_context()).export("sales", tmp_path / "sales.kiln.tar")


def test_a_bundle_moves_every_version_with_schema_source_lineage_and_checksums(any_ws: Workspace, tmp_path: Path) -> None:
    from kiln.core.config import load_settings

    ws = Workspace(load_settings(home=str(tmp_path / "elsewhere")))
    source = _three_versions(ws)
    path = BundleService(ws, local_context()).export("sales", tmp_path / "sales.tar")
    importer = Context(actor="token:importer", role="editor")
    started = time.time()
    imported = BundleService(any_ws, importer).import_(path)
    target = DatasetService(any_ws, local_context())
    assert [v.version for v in imported] == [1, 2, 3]
    for before, after in zip(source.versions("sales"), target.versions("sales"), strict=True):
        assert (after.version, after.row_count, after.columns, after.lineage) == (before.version, before.row_count, before.columns, before.lineage)
        # Created here by the importer; the original author is kept as provenance.
        assert after.created_by == "token:importer" and after.created_at >= started
        provenance = after.source.pop("bundle")
        assert after.source == before.source
        assert (provenance["author"], provenance["authored_at"], provenance["imported_by"], provenance["file"]) == (before.created_by, before.created_at, "token:importer", "sales.tar")
        assert [f.sha256 for f in after.files] == [f.sha256 for f in before.files]
        assert target.read_table(after.ref).equals(source.read_table(before.ref))
    assert [d.description for d in target.list()] == ["daily sales"]
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and len(names) == 1 + 3, "a file shared by two versions is stored once"
    ws.close()


def test_export_refuses_a_stored_file_that_does_not_match_its_sha256(any_ws: Workspace, tmp_path: Path) -> None:
    key = _three_versions(any_ws).get("sales@2").files[-1].key
    data = bytearray(any_ws.store.read_bytes(key))
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the hash tells
    any_ws.store.put_bytes(key, bytes(data))
    with pytest.raises(KilnError, match=f"stored file {key} of dataset 'sales' does not match its recorded sha256"):
        BundleService(any_ws, local_context()).export("sales", tmp_path / "out" / "sales.tar")
    assert list((tmp_path / "out").iterdir()) == [], "no bundle, not even a partial one"


def test_import_under_a_new_name_and_refuse_a_taken_one(ws: Workspace, bundle: Path) -> None:
    svc = BundleService(ws, local_context())
    with pytest.raises(AlreadyExists, match="--name NEW"):
        svc.import_(bundle)
    assert svc.import_(bundle, name="sales-copy")[-1].row_count == 1
    assert DatasetService(ws, local_context()).read_table("sales-copy@2").num_rows == 3


def _rewrite(src: Path, dest: Path, change: Callable[[str, bytes], tuple[str, bytes] | None], extra: list[tarfile.TarInfo] | None = None) -> Path:
    """Copy a bundle, passing each member through ``change`` (None drops it)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for member in tin.getmembers():
            fh = tin.extractfile(member)
            assert fh is not None
            changed = change(member.name, fh.read())
            if changed is not None:
                info = tarfile.TarInfo(changed[0])
                info.size = len(changed[1])
                tout.addfile(info, io.BytesIO(changed[1]))
        for info in extra or []:
            tout.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return dest


def _flip_byte(name: str, data: bytes) -> tuple[str, bytes]:
    if name.endswith(".parquet") and not getattr(_flip_byte, "done", False):
        _flip_byte.done = True  # type: ignore[attr-defined]
        data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
    return name, data


def _edit_manifest(everywhere: bool) -> Callable[[str, bytes], tuple[str, bytes]]:
    """Claim one more row in the first file: in every version that lists it, or in one only."""
    def change(name: str, data: bytes) -> tuple[str, bytes]:
        if name == "manifest.json":
            manifest = orjson.loads(data)
            sha = manifest["versions"][0]["files"][0]["sha256"]
            for version in manifest["versions"][: None if everywhere else 1]:
                for f in version["files"]:
                    if f["sha256"] == sha:
                        f["rows"] += 1
                        version["row_count"] += 1
            data = orjson.dumps(manifest)
        return name, data
    return change


def _huge_version(data: bytes) -> bytes:
    import json

    manifest = json.loads(data)
    manifest["versions"][-1]["version"] = 2**63  # the database holds 64-bit integers
    return json.dumps(manifest).encode()


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _plain(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


@pytest.mark.parametrize("case, change, extra, match", [
    ("corrupted file", _flip_byte, None, "corrupted or was tampered with"),
    ("manifest edited", _edit_manifest(everywhere=True), None, "holds 2 rows, the manifest says 3"),
    ("manifest contradicts itself", _edit_manifest(everywhere=False), None, "listed with different sizes"),
    ("file missing", lambda n, d: None if n.endswith(".parquet") else (n, d), None, "does not match its manifest"),
    ("no manifest", lambda n, d: None if n == "manifest.json" else (n, d), None, "no manifest.json"),
    ("manifest not JSON", lambda n, d: (n, b"{not json") if n == "manifest.json" else (n, d), None, "manifest is not valid"),
    ("version past 64 bits", lambda n, d: (n, _huge_version(d)) if n == "manifest.json" else (n, d), None, "manifest is not valid"),
    ("dot-dot member", None, [_plain("../escape.txt")], "'../escape.txt' is refused"),
    ("nested dot-dot", None, [_plain("files/../../escape.txt")], "is refused"),
    ("absolute member", None, [_plain("/tmp/kiln-escape.txt")], "is refused"),
    ("backslash member", None, [_plain("..\\..\\escape.txt")], "is refused"),
    ("symlink member", None, [_link("files/" + "a" * 64 + ".parquet", "/etc/passwd")], "only plain files"),
    ("unexpected member", None, [_plain("notes.txt")], "holds only manifest.json"),
])
def test_a_bad_bundle_is_refused_and_imports_nothing(ws: Workspace, bundle: Path, tmp_path: Path, case: str, change: Any, extra: Any, match: str) -> None:
    _flip_byte.done = False  # type: ignore[attr-defined]
    bad = _rewrite(bundle, tmp_path / "bad.tar", change or (lambda n, d: (n, d)), extra)
    objects_before = sorted(p for p in (ws.settings.home / "objects").rglob("*") if p.is_file())
    with pytest.raises(InvalidArgument, match=match):
        BundleService(ws, local_context()).import_(bad, name="other")
    assert [d.name for d in DatasetService(ws, local_context()).list()] == ["sales"]
    assert sorted(p for p in (ws.settings.home / "objects").rglob("*") if p.is_file()) == objects_before, "no file was written"
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/kiln-escape.txt").exists()


def test_not_a_tar_is_refused(ws: Workspace, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"PK\x03\x04 definitely not a tar" * 50)
    with pytest.raises(InvalidArgument, match="not a Kiln bundle"):
        BundleService(ws, local_context()).import_(junk)


def test_bundles_through_the_cli_and_rest(ws: Workspace, cli: Callable[..., Any], http: Any, tmp_path: Path) -> None:
    _three_versions(ws)
    out = tmp_path / "b.tar"
    assert cli("datasets", "export", "sales", "--bundle", str(out)).code == 0 and out.is_file()
    assert cli("datasets", "export", "sales").code != 0, "DEST or --bundle is needed"
    done = cli("datasets", "import", str(out), "--name", "sales-two", "--json")
    assert done.code == 0 and [v["version"] for v in orjson.loads(done.out)] == [1, 2, 3]
    assert cli("datasets", "import", str(out)).code != 0
    body = http.get("/v1/datasets/sales/bundle")
    assert body.status_code == 200 and body.headers["content-type"] == "application/x-tar"
    made = http.post("/v1/datasets/bundles", params={"name": "sales-three"}, content=body.content, headers={"content-type": "application/octet-stream"})
    assert made.status_code == 201 and made.json()[-1]["name"] == "sales-three"
    data = body.content
    corrupt = data[:3000] + bytes([data[3000] ^ 0xFF]) + data[3001:]  # inside the first Parquet file
    bad = http.post("/v1/datasets/bundles", params={"name": "sales-four"}, content=corrupt, headers={"content-type": "application/octet-stream"})
    assert bad.status_code == 400 and "nothing was imported" in bad.json()["error"]["message"]
    assert http.get("/v1/datasets/nope/bundle").status_code == 404


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def gzip_bomb(path: Path, member: str, size: int = 200 << 20) -> Path:
    """A gzipped tar whose one member unpacks to ``size`` zero bytes (about 1/1000 of it packed)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(member)
        info.size = size
        tar.addfile(info, _Zeros(size))
    return path


def test_a_bundle_bomb_is_refused_before_anything_is_staged(ws: Workspace, tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", "manifest.json")
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(PayloadTooLarge, match="unpacks to more than 64 MB"):
        BundleService(ws, local_context()).import_(bomb, name="bomb")
    staged = sum(p.stat().st_size for p in (ws.settings.home / "tmp").rglob("*") if p.is_file())
    assert staged == 0


def test_a_bundle_of_one_version(ws: Workspace, tmp_path: Path, cli: Callable[..., Any]) -> None:
    """`kiln datasets export sales@2 --bundle` was refused; it bundles that version alone."""
    source = _three_versions(ws)
    result = cli("datasets", "export", "sales@2", "--bundle", str(tmp_path / "two.tar"))
    assert result.code == 0, result
    imported = BundleService(ws, local_context()).import_(tmp_path / "two.tar", name="sales-two")
    assert [v.version for v in imported] == [2]
    assert DatasetService(ws, local_context()).read_table("sales-two@2").equals(source.read_table("sales@2"))
    with pytest.raises(NotFound, match="no version 9"):
        BundleService(ws, local_context()).export("sales@9", tmp_path / "nine.tar")
    assert not (tmp_path / "nine.tar").exists()
