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


def _in_manifest(edit: Callable[[dict[str, Any]], None]) -> Callable[[str, bytes], tuple[str, bytes]]:
    """Change the manifest (only) with ``edit``."""
    def change(name: str, data: bytes) -> tuple[str, bytes]:
        if name != "manifest.json":
            return name, data
        manifest = orjson.loads(data)
        edit(manifest)
        return name, orjson.dumps(manifest)
    return change


def _grow_files(manifest: dict[str, Any]) -> None:
    """Claim one more byte for every file, consistently in every version."""
    for version in manifest["versions"]:
        for f in version["files"]:
            f["bytes"] += 1
        version["byte_size"] += len(version["files"])


RELATIVE = "member names must be relative paths"


@pytest.mark.parametrize("case, change, extra, match", [
    ("corrupted file", _flip_byte, None, "corrupted or was tampered with"),
    ("manifest edited", _edit_manifest(everywhere=True), None, "holds 2 rows, the manifest says 3"),
    ("manifest contradicts itself", _edit_manifest(everywhere=False), None, "listed with different sizes"),
    ("file missing", lambda n, d: None if n.endswith(".parquet") else (n, d), None, "does not match its manifest"),
    ("no manifest", lambda n, d: None if n == "manifest.json" else (n, d), None, "^bundle has no manifest.json; nothing was imported$"),
    ("manifest not JSON", lambda n, d: (n, b"{not json") if n == "manifest.json" else (n, d), None, "manifest is not valid: unexpected character"),
    ("version past 64 bits", lambda n, d: (n, _huge_version(d)) if n == "manifest.json" else (n, d), None, "manifest is not valid: (?s:.*)less than or equal to 9223372036854775807"),
    ("version listed twice", _in_manifest(lambda m: m["versions"].append(m["versions"][0])), None, "^bundle manifest lists a version twice; nothing was imported$"),
    ("sizes do not add up", _in_manifest(lambda m: m["versions"][0].update(byte_size=m["versions"][0]["byte_size"] + 1)), None, "version 1's files do not add up to its row count and size"),
    ("no columns", _in_manifest(lambda m: m["versions"][1].update(columns=[])), None, "gives version 2 no columns"),
    ("file of another size", _in_manifest(_grow_files), None, r"files/[0-9a-f]{64}\.parquet has \d+ bytes, the manifest says \d+"),
    ("bad dataset name", _in_manifest(lambda m: m["dataset"].update(name="Not A Name")), None, "invalid dataset name 'Not A Name'"),
    ("member twice", None, [_plain("manifest.json")], "member 'manifest.json' appears twice"),
    ("dot-dot member", None, [_plain("../escape.txt")], f"'../escape.txt' is refused: {RELATIVE}"),
    ("nested dot-dot", None, [_plain("files/../../escape.txt")], RELATIVE),
    ("absolute member", None, [_plain("/tmp/kiln-escape.txt")], RELATIVE),
    ("backslash member", None, [_plain("..\\..\\escape.txt")], RELATIVE),
    ("backslash alone", None, [_plain("files\\x.parquet")], RELATIVE),
    ("drive letter", None, [_plain("C:/escape.txt")], RELATIVE),
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


def test_a_damaged_archive_or_a_file_that_is_not_parquet_is_refused(ws: Workspace, bundle: Path, tmp_path: Path) -> None:
    import hashlib

    import gzip

    cut = tmp_path / "cut.tar.gz"
    packed = gzip.compress(bundle.read_bytes())
    cut.write_bytes(packed[: len(packed) // 2])  # the stream ends inside a file
    with pytest.raises(InvalidArgument, match=r"bundle cut\.tar\.gz is damaged"):
        BundleService(ws, local_context()).import_(cut, name="other")
    junk = b"not parquet at all" * 10
    sha = hashlib.sha256(junk).hexdigest()

    def swap(m: dict[str, Any]) -> None:
        m["versions"] = [{**m["versions"][0], "row_count": 0, "byte_size": len(junk), "files": [{"sha256": sha, "rows": 0, "bytes": len(junk)}]}]

    fake = _rewrite(bundle, tmp_path / "fake.tar", lambda n, d: _in_manifest(swap)(n, d) if n == "manifest.json" else None,
                    extra=[_plain(f"files/{sha}.parquet")])
    with tarfile.open(fake) as tin, tarfile.open(tmp_path / "fake2.tar", "w") as tout:  # the member's bytes are the junk
        for member in tin.getmembers():
            data = junk if member.name.endswith(".parquet") else tin.extractfile(member).read()  # type: ignore[union-attr]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidArgument, match=f"bundle member files/{sha}.parquet is not a Parquet file"):
        BundleService(ws, local_context()).import_(tmp_path / "fake2.tar", name="other")


def _zeros_tar(path: Path, sizes: list[int]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"files/{i:064x}.parquet")
            info.size = size
            tar.addfile(info, _Zeros(size))
    return path


def test_the_unpacked_bound_adds_every_member_and_follows_the_upload_cap(tmp_path: Path) -> None:
    from kiln.core.config import load_settings

    ws = Workspace(load_settings(home=str(tmp_path / "kiln"), max_upload_mb=1))  # a bundle may unpack to 4 x 1 MiB
    svc = BundleService(ws, local_context())
    with pytest.raises(PayloadTooLarge, match="unpacks to more than 4 MB"):
        svc.import_(_zeros_tar(tmp_path / "over.tar.gz", [2 << 20, 2 << 20, 1]), name="over")
    with pytest.raises(InvalidArgument, match="no manifest.json"):  # exactly the bound: past the size check
        svc.import_(_zeros_tar(tmp_path / "exact.tar.gz", [2 << 20, 2 << 20]), name="exact")
    ws.close()


def test_the_member_and_manifest_bounds_are_exact(ws: Workspace, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.lake import bundles

    with tarfile.open(bundle) as tar:
        members, manifest_size = len(tar.getmembers()), tar.getmember("manifest.json").size
    monkeypatch.setattr(bundles, "_MAX_MEMBERS", members)
    monkeypatch.setattr(bundles, "_MAX_MANIFEST", manifest_size)
    assert [v.version for v in BundleService(ws, local_context()).import_(bundle, name="at-the-bounds")] == [1, 2, 3]
    more = _rewrite(bundle, tmp_path / "more.tar", lambda n, d: (n, d), [_plain("notes.txt")])
    with pytest.raises(InvalidArgument, match=f"bundle has more than {members} members"):
        BundleService(ws, local_context()).import_(more, name="more")
    monkeypatch.setattr(bundles, "_MAX_MANIFEST", 2 << 20)
    big = _rewrite(bundle, tmp_path / "big.tar", lambda n, d: (n, d + b" " * (2 << 20)) if n == "manifest.json" else (n, d))
    with pytest.raises(InvalidArgument, match="bundle manifest is larger than 2 MB"):
        BundleService(ws, local_context()).import_(big, name="big")


def test_a_taken_name_is_refused_before_any_file_is_stored_and_again_at_commit(ws: Workspace, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = lambda: sorted(p for p in (ws.settings.home / "objects").rglob("*") if p.is_file())  # noqa: E731
    before = objects()
    with pytest.raises(AlreadyExists, match="dataset 'sales' already exists in this workspace"):
        BundleService(ws, local_context()).import_(bundle)
    assert objects() == before, "refused before a file was stored"
    # Taken between the check and the commit (another importer): the commit refuses it too.
    monkeypatch.setattr(BundleService, "_check_free", lambda self, name: None)
    with pytest.raises(AlreadyExists, match="dataset 'sales' already exists in this workspace"):
        BundleService(ws, local_context()).import_(bundle)
    assert [v.version for v in DatasetService(ws, local_context()).versions("sales")] == [1, 2, 3]


def test_an_import_is_audited_with_its_provenance_and_stages_inside_the_workspace(ws: Workspace, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.core import audit

    verify, staged_in = BundleService._verify, []
    monkeypatch.setattr(BundleService, "_verify", lambda self, src, staging, progress: staged_in.append(staging.parent) or verify(self, src, staging, progress))

    long_name = tmp_path / ("b" * 220 + ".tar")
    long_name.write_bytes(bundle.read_bytes())
    exported_at = orjson.loads(tarfile.open(bundle).extractfile("manifest.json").read())["exported_at"]  # type: ignore[union-attr]
    before = time.time()
    imported = BundleService(ws, local_context()).import_(long_name, name="copy")
    with ws.db.read() as conn:
        event = audit.list_events(conn, resource="datasets/copy")[0]
    assert event.action == "datasets.import"
    assert event.details == {"versions": 3, "bundle": long_name.name[:200], "exported_as": "sales", "exported_at": exported_at}
    provenance = imported[0].source["bundle"]
    assert (provenance["file"], provenance["exported_as"], provenance["exported_at"]) == (long_name.name[:200], "sales", exported_at)
    assert provenance["imported_at"] >= before
    assert all(f.key.startswith("datasets/copy/") for v in imported for f in v.files)
    staging = ws.settings.home / "tmp"  # beside the store, not in the system's /tmp
    assert staged_in == [staging] and [p.name for p in staging.iterdir() if p.name != "duckdb"] == [], "staged in the workspace, then removed"


def test_names_and_paths_are_checked_with_clear_messages(ws: Workspace, bundle: Path, tmp_path: Path) -> None:
    svc = BundleService(ws, local_context())
    with pytest.raises(InvalidArgument, match="invalid dataset name 'Bad Name'"):
        svc.import_(bundle, name="Bad Name")
    with pytest.raises(NotFound, match=f"bundle '{tmp_path / 'nope.tar'}' does not exist"):
        svc.import_(tmp_path / "nope.tar")
    with pytest.raises(InvalidArgument, match="invalid dataset name 'Bad Name'"):
        svc.export("Bad Name", tmp_path / "x.tar")
    with pytest.raises(InvalidArgument, match="datasets have no aliases; bundle sales or sales@VERSION"):
        svc.export("sales@prod", tmp_path / "x.tar")
    with pytest.raises(InvalidArgument, match="is a folder; give a file path"):
        svc.export("sales", tmp_path)
    deep = svc.export("sales", tmp_path / "a" / "b" / "sales.tar")  # folders made as needed
    with tarfile.open(deep) as tar:
        assert {m.mode for m in tar.getmembers()} == {0o644} and tar.getmembers()[0].name == "manifest.json"


def test_files_bigger_than_a_read_round_trip(ws: Workspace, tmp_path: Path) -> None:
    import numpy as np

    DatasetService(ws, local_context()).write_table("wide", pd.DataFrame({"x": np.random.default_rng(0).normal(size=50_000)}))
    assert DatasetService(ws, local_context()).get("wide").files[0].bytes > 64 << 10
    svc = BundleService(ws, local_context())
    svc.import_(svc.export("wide", tmp_path / "wide.tar"), name="wide-copy")
    assert DatasetService(ws, local_context()).read_table("wide-copy").equals(DatasetService(ws, local_context()).read_table("wide"))


def test_export_and_import_report_increasing_progress_to_the_end(ws: Workspace, tmp_path: Path) -> None:
    from kiln.core.progress import reporting

    _three_versions(ws)
    svc = BundleService(ws, local_context())
    for run in (lambda: svc.export("sales", tmp_path / "p.tar"), lambda: svc.import_(tmp_path / "p.tar", name="p")):
        seen: list[float] = []
        with reporting(seen.append):
            run()
        assert len(seen) >= 3 and seen == sorted(set(seen)) and seen[0] > 0 and seen[-1] == 1.0, seen
