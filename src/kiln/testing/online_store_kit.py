"""The contract every :class:`kiln.features.OnlineStore` backend passes (SQLite, Redis,
PostgreSQL): SageMaker's conditional writes, deletes, expiry, atomic batches."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from kiln.features._base import OnlineRow, OnlineStore

__all__ = ["OnlineStoreContract"]


def _row(rid: str, t: float, data: bytes | None = b'{"x":1}', expires: float | None = None) -> OnlineRow:
    return OnlineRow(rid, t, expires, data)


class OnlineStoreContract:
    """Provide a ``store`` fixture returning an open store; each test uses a group of its own."""

    @pytest.fixture
    def store(self) -> OnlineStore:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def group(self, store: OnlineStore) -> str:
        name = f"g-{uuid.uuid4().hex[:10]}"
        yield name
        store.drop(name)

    def test_put_then_read_in_order(self, store: OnlineStore, group: str) -> None:
        assert store.write(group, [_row("a", 10.0, b'{"x":1}'), _row("b", 11.5, b'{"x":2}')]) == 2
        got = store.read(group, ["b", "missing", "a"], now=time.time())
        assert [g.data if g else None for g in got] == [b'{"x":2}', None, b'{"x":1}']
        assert got[0] is not None and (got[0].record_id, got[0].event_time) == ("b", 11.5)

    def test_older_event_time_does_not_replace(self, store: OnlineStore, group: str) -> None:
        store.write(group, [_row("a", 10.0, b"new")])
        assert store.write(group, [_row("a", 9.0, b"old")]) == 0
        assert store.read(group, ["a"], now=time.time())[0].data == b"new"  # type: ignore[union-attr]
        assert store.write(group, [_row("a", 10.0, b"same-time")]) == 1  # not older: replaces
        assert store.read(group, ["a"], now=time.time())[0].data == b"same-time"  # type: ignore[union-attr]

    def test_later_rows_of_a_batch_win_when_newer(self, store: OnlineStore, group: str) -> None:
        store.write(group, [_row("a", 1.0, b"1"), _row("a", 3.0, b"3"), _row("a", 2.0, b"2")])
        assert store.read(group, ["a"], now=time.time())[0].data == b"3"  # type: ignore[union-attr]

    def test_soft_delete_keeps_the_time_and_no_data(self, store: OnlineStore, group: str) -> None:
        store.write(group, [_row("a", 10.0)])
        store.write(group, [_row("a", 12.0, None)])
        got = store.read(group, ["a"], now=time.time())[0]
        assert got is not None and got.data is None and got.event_time == 12.0
        assert store.write(group, [_row("a", 11.0, b"late")]) == 0  # older than the delete

    def test_hard_delete_only_when_not_older(self, store: OnlineStore, group: str) -> None:
        store.write(group, [_row("a", 10.0), _row("b", 10.0)])
        assert store.write(group, [_row("a", 9.0, None)], hard_delete=True) == 0
        assert store.write(group, [_row("b", 10.0, None)], hard_delete=True) == 1
        got = store.read(group, ["a", "b"], now=time.time())
        assert got[0] is not None and got[1] is None
        assert store.write(group, [_row("b", 1.0, b"again")]) == 1  # a hard delete forgets the time

    def test_expired_records_are_not_returned(self, store: OnlineStore, group: str) -> None:
        now = time.time()
        store.write(group, [_row("old", now - 5, expires=now - 1), _row("live", now, expires=now + 3600), _row("forever", now)])
        got = store.read(group, ["old", "live", "forever"], now=now)
        assert [g is not None for g in got] == [False, True, True]

    def test_purge_removes_only_expired_records(self, store: OnlineStore, group: str) -> None:
        now = time.time()
        store.write(group, [_row("old", 1.0, expires=now - 10), _row("live", 2.0, expires=now + 3600), _row("forever", 3.0), _row("gone", 4.0, data=None, expires=None)])
        purged = store.purge_expired(now=now)
        assert purged == (0 if store.capabilities.native_expiry else 1)
        assert store.purge_expired(now=now) == 0  # nothing left to purge
        assert [r.record_id if r else None for r in store.read(group, ["old", "live", "forever"], now=now)] == [None, "live", "forever"]
        if not store.capabilities.native_expiry:  # the expired row is gone: a late, older record may take its place
            assert store.write(group, [_row("old", 0.5, expires=now + 3600)]) == 1

    def test_groups_are_apart_and_drop_removes_one(self, store: OnlineStore, group: str) -> None:
        other = f"{group}-b"
        store.write(group, [_row("a", 1.0, b"mine")])
        store.write(other, [_row("a", 1.0, b"theirs")])
        store.drop(other)
        assert store.read(other, ["a"], now=time.time()) == [None]
        assert store.read(group, ["a"], now=time.time())[0].data == b"mine"  # type: ignore[union-attr]

    def test_odd_record_ids_are_plain_keys(self, store: OnlineStore, group: str) -> None:
        ids = ["../x", "a:b", "*", "é", "with space", "a%2F", ""]
        store.write(group, [_row(rid, 1.0, b"v" + rid.encode()) for rid in ids])
        assert [g.data for g in store.read(group, ids, now=time.time())] == [b"v" + rid.encode() for rid in ids]  # type: ignore[union-attr]

    def test_concurrent_writers_keep_the_newest(self, store: OnlineStore, group: str) -> None:
        def writer(offset: int) -> None:
            for t in range(offset, 200, 4):
                store.write(group, [_row("k", float(t), str(t).encode())])

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert store.read(group, ["k"], now=time.time())[0].data == b"199"  # type: ignore[union-attr]

    def test_a_large_batch(self, store: OnlineStore, group: str) -> None:
        rows = [_row(str(i), float(i), str(i).encode()) for i in range(25_000)]
        assert store.write(group, rows) == 25_000
        got = store.read(group, ["0", "24999", "12345"], now=time.time())
        assert [g.data for g in got] == [b"0", b"24999", b"12345"]  # type: ignore[union-attr]

    # -- bulk loads (materialisation) ---------------------------------------------------------

    def test_a_bulk_load_writes_conditionally(self, store: OnlineStore, group: str) -> None:
        store.write(group, [_row("kept", 50.0, b"newer"), _row("replaced", 1.0, b"older")])
        batches = [(["a", "b", "kept"], [1.0, 2.0, 10.0], [None, None, None], [b"a", b"b", b"stale"]),
                   (["replaced", "c"], [5.0, 3.0], [None, time.time() - 1], [b"new", b"expired"])]
        assert store.write_bulk(group, iter(batches)) == 4  # kept stays: its stored record is newer
        got = store.read(group, ["a", "b", "kept", "replaced", "c"], now=time.time())
        assert [g.data if g else None for g in got] == [b"a", b"b", b"newer", b"new", None]
        rows = [(str(i), float(i), None, str(i).encode()) for i in range(1001)]  # more than one statement's worth, and a tail
        assert store.write_bulk(group, [tuple(list(c) for c in zip(*rows, strict=True))]) == 1001  # type: ignore[list-item]
        assert [g.data for g in store.read(group, ["0", "999", "1000"], now=time.time())] == [b"0", b"999", b"1000"]  # type: ignore[union-attr]
        now = time.time()  # with expiry times: every third row already expired
        rows = [(f"t{i}", float(i), now + (-10 if i % 3 == 0 else 3600), f"t{i}".encode()) for i in range(1001)]
        assert store.write_bulk(group, [tuple(list(c) for c in zip(*rows, strict=True))]) == 1001  # type: ignore[list-item]
        got = store.read(group, ["t0", "t1", "t999", "t1000"], now=now)
        assert [g.data if g else None for g in got] == [None, b"t1", None, b"t1000"]
        if not store.capabilities.native_expiry:
            assert got[1] is not None and got[1].expires_at == now + 3600

    def test_a_failed_bulk_load_leaves_the_store_as_it_was(self, store: OnlineStore, group: str) -> None:
        if not store.capabilities.atomic_bulk:
            pytest.skip("this store applies a bulk load batch by batch")
        store.write(group, [_row("a", 1.0, b"before")])

        def failing() -> object:
            yield (["a", "b"], [2.0, 2.0], [None, None], [b"after", b"new"])
            raise RuntimeError("the source broke")

        with pytest.raises(RuntimeError, match="the source broke"):
            store.write_bulk(group, failing())

        def refuse() -> None:
            raise RuntimeError("the offline half failed")

        with pytest.raises(RuntimeError, match="offline half"):
            store.write_bulk(group, [(["a", "b"], [2.0, 2.0], [None, None], [b"after", b"new"])], before_commit=refuse)
        got = store.read(group, ["a", "b"], now=time.time())
        assert got[0] is not None and got[0].data == b"before" and got[1] is None

    def test_a_reader_never_sees_half_a_bulk_load(self, store: OnlineStore, group: str) -> None:
        if not store.capabilities.atomic_bulk:
            pytest.skip("this store applies a bulk load batch by batch")
        store.write(group, [_row("a", 1.0, b"before")])
        seen: list[object] = []

        def look() -> None:  # every row is written, none committed: another thread reads
            th = threading.Thread(target=lambda: seen.extend(store.read(group, ["a", "b", "c"], now=time.time())))
            th.start()
            th.join()

        batches = [(["a", "b"], [2.0, 2.0], [None, None], [b"after", b"new"]), (["c"], [2.0], [None], [b"new"])]
        assert store.write_bulk(group, batches, before_commit=look) == 3
        assert len(seen) == 3 and seen[0].data == b"before" and seen[1:] == [None, None]  # type: ignore[union-attr]
        assert [g.data for g in store.read(group, ["a", "b", "c"], now=time.time())] == [b"after", b"new", b"new"]  # type: ignore[union-attr]
