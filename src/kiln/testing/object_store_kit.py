"""The contract every :class:`kiln.core.storage.ObjectStore` backend passes."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest

from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.storage import ObjectStore

BAD_KEYS = ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", "a\\b", "c:/x", "nul\x00", ".", "a/.."]


class ObjectStoreContract:
    """Provide a ``store`` fixture returning an empty store."""

    @pytest.fixture
    def store(self) -> ObjectStore:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_put_and_read_bytes(self, store: ObjectStore) -> None:
        info = store.put_bytes("a/b/c.bin", b"hello")
        assert (info.size, info.sha256) == (5, hashlib.sha256(b"hello").hexdigest())
        assert store.read_bytes("a/b/c.bin") == b"hello"
        assert store.exists("a/b/c.bin") and not store.exists("a/b/missing")

    def test_put_file_records_size_and_hash(self, store: ObjectStore, tmp_path: Any) -> None:
        src = tmp_path / "f.bin"
        data = bytes(range(256)) * 5000
        src.write_bytes(data)
        info = store.put_file("files/f.bin", src)
        assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
        assert store.info("files/f.bin") == info

    def test_overwrite_replaces_whole_object(self, store: ObjectStore) -> None:
        store.put_bytes("k", b"first version")
        store.put_bytes("k", b"2nd")
        assert store.read_bytes("k") == b"2nd"

    def test_failed_write_leaves_nothing(self, store: ObjectStore) -> None:
        with pytest.raises(RuntimeError), store.open_write("half/written.bin") as fh:
            fh.write(b"x" * 1000)
            raise RuntimeError("crash mid-write")
        assert not store.exists("half/written.bin")
        assert [k for k, *_ in store.list("half")] == []

    def test_list_and_delete_prefix(self, store: ObjectStore) -> None:
        for key in ("p/1", "p/2", "p/q/3", "other/4"):
            store.put_bytes(key, key.encode())
        assert [k for k, *_ in store.list("p")] == ["p/1", "p/2", "p/q/3"]
        sizes = {k: size for k, size, _ in store.list("p")}
        assert sizes["p/q/3"] == 5
        store.delete("p")
        assert store.list("p") == [] and store.exists("other/4")
        store.delete("never/existed")

    def test_missing_object_is_not_found(self, store: ObjectStore) -> None:
        with pytest.raises(NotFound):
            store.read_bytes("nope")

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_keys_that_could_escape_are_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidArgument):
            store.put_bytes(key, b"x")
        with pytest.raises(InvalidArgument):
            store.read_bytes(key)

    def test_concurrent_writers_to_distinct_keys(self, store: ObjectStore) -> None:
        def write(i: int) -> None:
            store.put_bytes(f"c/{i}", str(i).encode() * 100)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(store.list("c")) == 8
        assert store.read_bytes("c/7") == b"7" * 100

    def test_ping(self, store: ObjectStore) -> None:
        """A store that answers pings without raising, empty or not, and writes nothing doing so."""
        assert store.ping() is None and not store.exists("ping")
        store.put_bytes("p/k", b"x")
        assert store.ping() is None and [key for key, _, _ in store.list("p")] == ["p/k"]
