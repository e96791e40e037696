from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiln.core.errors import PermissionDenied, Unavailable
from kiln.core.storage import LocalStore, ObjectStore, S3Store, open_store
from kiln.testing import ObjectStoreContract


class TestLocalStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return LocalStore(tmp_path / "objects")


class TestS3Store(ObjectStoreContract):
    @pytest.fixture
    def store(self, s3_bucket: str, s3_endpoint: str) -> ObjectStore:
        return open_store(s3_bucket, endpoint_url=s3_endpoint)


@pytest.mark.parametrize("where", ["missing bucket", "closed port"])
def test_ping_says_an_unreachable_s3_store_is_unavailable(s3_endpoint: str, s3_bucket: str, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url, endpoint = ("s3://kiln-no-such-bucket/lake", s3_endpoint) if where == "missing bucket" else (s3_bucket, "http://127.0.0.1:1")
    with pytest.raises(Unavailable, match="does not answer"):
        open_store(url, endpoint_url=endpoint).ping()


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    os.symlink(outside, tmp_path / "objects" / "link")
    with pytest.raises(PermissionDenied):
        store.read_bytes("link/secret")
    with pytest.raises(PermissionDenied):
        store.put_bytes("link/new", b"x")
    assert not (outside / "new").exists()


def test_open_store_picks_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    assert isinstance(open_store("s3://bucket/prefix", endpoint_url="http://127.0.0.1:1"), S3Store)
