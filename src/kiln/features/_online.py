"""Online store backends: SQLite (the default, a file beside the metadata), Redis and
PostgreSQL. Each passes the kit in ``tests/features/test_online_kit.py``."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kiln.core.config import _mask_password
from kiln.core.errors import InvalidArgument, Unavailable
from kiln.features._base import (
    BulkBatch,
    Capabilities,
    OnlineRow,
    OnlineStore,
    register_online_store,
)

__all__ = ["PostgresOnlineStore", "RedisOnlineStore", "SqliteOnlineStore"]

# A batch larger than this is applied in several atomic steps (a PutRecord batch is at most
# MAX_BATCH records, so it is always applied whole; a bulk load has write_bulk).
_CHUNK = 10_000
_PAGE_SIZE = 16384
# Rows a statement of SQLite's bulk upsert carries: 1 + 4 x 200 parameters, under the 999 that
# older SQLite builds allow.
_ROWS = 200


def _split_options(url: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The URL without Kiln's own query options, and those options."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for k, v in parse_qsl(parts.query):
        if k in allowed:
            ours[k] = v
        else:
            theirs.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


def _upsert_many(timed: bool) -> str:
    width = 4 if timed else 3
    rows = []
    for i in range(_ROWS):
        p = [f"?{2 + width * i + j}" for j in range(width)]
        rows.append(f"(?1, {p[0]}, {p[1]}, {p[2]}, {p[3]})" if timed else f"(?1, {p[0]}, {p[1]}, NULL, {p[2]})")
    return ("INSERT INTO online_records (grp, rid, event_time, expires_at, data) VALUES " + ", ".join(rows)
            + " ON CONFLICT (grp, rid) DO UPDATE SET event_time = excluded.event_time, expires_at = excluded.expires_at, "
            "data = excluded.data WHERE excluded.event_time >= online_records.event_time")


# How long a writer waits for SQLite's one write lock (a bulk load holds it until it commits).
_BUSY_S = 60.0


def _unwritable(exc: sqlite3.OperationalError) -> Unavailable:
    return Unavailable(
        f"the SQLite online store could not be written ({str(exc)[:200]}): another writer held it for more than {_BUSY_S:g} s "
        "(a bulk ingest holds it until it commits) or its disk refused. Records already written offline are kept; "
        "try again, or run `kiln features rebuild-online NAME` once the store is writable"
    )


class SqliteOnlineStore(OnlineStore):
    """One SQLite file (WAL), one connection per thread; the key is (group, record id)."""

    capabilities = Capabilities(native_expiry=False, shared=False, atomic_bulk=True)
    _UPSERT = (
        "INSERT INTO online_records (grp, rid, event_time, expires_at, data) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (grp, rid) DO UPDATE SET event_time = excluded.event_time, expires_at = excluded.expires_at, "
        "data = excluded.data WHERE excluded.event_time >= online_records.event_time"
    )
    # The same upsert for _ROWS rows at once, the group bound once (?1); [True] with an expiry
    # per row, [False] for rows that all have none (a parameter fewer a row to bind).
    _UPSERT_MANY: ClassVar[dict[bool, str]] = {timed: _upsert_many(timed) for timed in (True, False)}
    _DELETE = "DELETE FROM online_records WHERE grp = ? AND rid = ? AND event_time <= ?"
    _GET = "SELECT rid, event_time, expires_at, data FROM online_records WHERE grp = ? AND rid = ?"

    def __init__(self, url: str) -> None:
        path = url.removeprefix("sqlite:///")
        if not path or path == url:
            raise InvalidArgument(f"invalid online store URL {url!r}: use sqlite:///path/online.db")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        con = self._con()
        con.execute(
            "CREATE TABLE IF NOT EXISTS online_records (grp TEXT NOT NULL, rid TEXT NOT NULL, event_time REAL NOT NULL, "
            "expires_at REAL, data BLOB, PRIMARY KEY (grp, rid)) WITHOUT ROWID"
        )
        # Only records with a TTL are indexed: a purge finds the expired ones without a scan.
        con.execute("CREATE INDEX IF NOT EXISTS online_records_expiry ON online_records (expires_at) WHERE expires_at IS NOT NULL")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=_BUSY_S, isolation_level=None, check_same_thread=False)
        # Taken by a new file only (an existing store keeps its pages): 16 KB pages write a bulk
        # load with a quarter of the WAL frames and checkpoint copies, a system call each
        # (1M rows: 1.8 s of SQLite's CPU instead of 2.6-3.8 s at 4 KB); lookups as fast.
        con.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        # Reads through a memory map: a lookup touches pages without a read() each.
        con.execute("PRAGMA mmap_size=1073741824")
        return con

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def write(self, group: str, rows: Sequence[OnlineRow], *, hard_delete: bool = False) -> int:
        con = self._con()
        changed = 0
        try:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                con.execute("BEGIN IMMEDIATE")
                try:
                    if hard_delete:
                        cur = con.executemany(self._DELETE, [(group, r.record_id, r.event_time) for r in chunk])
                    else:
                        cur = con.executemany(self._UPSERT, [(group, r.record_id, r.event_time, r.expires_at, r.data) for r in chunk])
                    changed += max(cur.rowcount, 0)
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # busy past the timeout (a bulk load holds the write lock), or the disk
            raise _unwritable(exc) from None
        return changed

    def write_bulk(self, group: str, batches: Iterable[BulkBatch], *, before_commit: Callable[[], None] | None = None) -> int:
        """The whole load in one transaction (a reader sees none of it or all of it; an error,
        from SQLite, from ``batches`` or from ``before_commit``, rolls it all back), as
        multi-row upserts: one statement execution per :data:`_ROWS` rows instead of one per
        row, the cost that dominates a bulk load from Python. Feed it in key order: SQLite then
        appends. A connection of its own, closed after: the caller may be a passing thread."""
        batches = iter(batches)
        first = next(batches, None)  # the first batch (a sort's whole wait) before taking the write lock
        con = self._connect()
        changed = 0
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                for ids, times, expires, data in itertools.chain(() if first is None else (first,), batches):
                    n = len(ids)
                    timed = expires.count(None) != n
                    width = 4 if timed else 3
                    flat: list[Any] = [None] * (width * n)
                    if timed:
                        flat[0::4], flat[1::4], flat[2::4], flat[3::4] = ids, times, expires, data
                    else:
                        flat[0::3], flat[1::3], flat[2::3] = ids, times, data
                    step = width * _ROWS
                    whole = width * (n - n % _ROWS)
                    if whole:
                        cur = con.executemany(self._UPSERT_MANY[timed], ([group, *flat[i:i + step]] for i in range(0, whole, step)))
                        changed += max(cur.rowcount, 0)
                    if whole < len(flat):
                        done = n - n % _ROWS
                        tail = zip(ids[done:], times[done:], expires[done:], data[done:], strict=True)
                        cur = con.executemany(self._UPSERT, ((group, *row) for row in tail))
                        changed += max(cur.rowcount, 0)
                if before_commit is not None:
                    before_commit()
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise _unwritable(exc) from None
        finally:
            con.close()
        return changed

    def read(self, group: str, record_ids: Sequence[str], *, now: float) -> list[OnlineRow | None]:
        con = self._con()
        out: list[OnlineRow | None] = []
        for rid in record_ids:
            row = con.execute(self._GET, (group, rid)).fetchone()
            if row is None or (row[2] is not None and row[2] <= now):
                out.append(None)
            else:
                out.append(OnlineRow(row[0], row[1], row[2], row[3]))
        return out

    def drop(self, group: str) -> None:
        con = self._con()
        con.execute("DELETE FROM online_records WHERE grp = ?", (group,))

    def purge_expired(self, *, now: float, limit: int = 10_000) -> int:
        con = self._con()
        cur = con.execute(  # one statement: a record re-put since the SELECT is no longer expired, and stays
            "DELETE FROM online_records WHERE expires_at <= ?1 AND (grp, rid) IN "
            "(SELECT grp, rid FROM online_records WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)", (now, limit))
        return max(cur.rowcount, 0)

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()


_LUA_WRITE = """
local hard = ARGV[1] == 'hard'
local n = 0
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 3 + 1
  local t = tonumber(ARGV[b + 1])
  local cur = redis.call('HGET', key, 't')
  if (not cur) or tonumber(cur) <= t then
    if hard then
      if cur then redis.call('DEL', key); n = n + 1 end
    else
      if ARGV[b + 2] == '' then
        redis.call('HSET', key, 't', ARGV[b + 1]); redis.call('HDEL', key, 'd')
      else
        redis.call('HSET', key, 't', ARGV[b + 1], 'd', ARGV[b + 2])
      end
      if ARGV[b + 3] == '' then redis.call('PERSIST', key) else redis.call('PEXPIREAT', key, ARGV[b + 3]) end
      n = n + 1
    end
  end
end
return n
"""


class RedisOnlineStore(OnlineStore):
    """A hash per record (``t`` event time, ``d`` data) under ``PREFIX:group:id``; a batch is
    one Lua script (atomic); expiry is Redis's own (PEXPIREAT)."""

    capabilities = Capabilities(native_expiry=True, shared=True)

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on extras
            raise InvalidArgument("a redis:// online store needs the redis extra: pip install 'kiln[redis]'") from None
        plain, opts = _split_options(url, ("prefix",))
        self.prefix = opts.get("prefix", "kiln:fs")
        self._redis = redis.Redis.from_url(plain)
        self._errors = (redis.RedisError,)
        try:
            self._script = self._redis.register_script(_LUA_WRITE)
            self._redis.ping()
        except self._errors as exc:
            raise Unavailable(f"the Redis online store at {_mask_password(plain)} does not answer: {exc}") from None

    def _key(self, group: str, rid: str) -> str:
        return f"{self.prefix}:{group}:{rid}"

    def write(self, group: str, rows: Sequence[OnlineRow], *, hard_delete: bool = False) -> int:
        changed = 0
        try:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                args: list[Any] = ["hard" if hard_delete else "put"]
                for r in chunk:
                    args += [repr(r.event_time), b"" if r.data is None else r.data, "" if r.expires_at is None else str(int(r.expires_at * 1000))]
                changed += int(self._script(keys=[self._key(group, r.record_id) for r in chunk], args=args))
        except self._errors as exc:
            raise Unavailable(f"the Redis online store did not answer: {exc}") from None
        return changed

    def read(self, group: str, record_ids: Sequence[str], *, now: float) -> list[OnlineRow | None]:
        try:
            if len(record_ids) == 1:
                found = [self._redis.hmget(self._key(group, record_ids[0]), "t", "d")]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for rid in record_ids:
                    pipe.hmget(self._key(group, rid), "t", "d")
                found = pipe.execute()
        except self._errors as exc:
            raise Unavailable(f"the Redis online store did not answer: {exc}") from None
        # Expiry is Redis's own (to the millisecond): an expired record is already gone.
        return [None if t is None else OnlineRow(rid, float(t), None, d) for rid, (t, d) in zip(record_ids, found, strict=True)]

    def drop(self, group: str) -> None:
        try:
            batch = []
            for key in self._redis.scan_iter(match=f"{self.prefix}:{group}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._redis.delete(*batch)
                    batch = []
            if batch:
                self._redis.delete(*batch)
        except self._errors as exc:
            raise Unavailable(f"the Redis online store did not answer: {exc}") from None

    def close(self) -> None:
        self._redis.close()


class PostgresOnlineStore(OnlineStore):
    """One table (``kiln_online_records`` or ``?table=``) keyed by (group, record id)."""

    capabilities = Capabilities(native_expiry=False, shared=True, atomic_bulk=True)

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - depends on extras
            raise InvalidArgument("a postgresql:// online store needs the postgres extra: pip install 'kiln[postgres]'") from None
        plain, opts = _split_options(url.replace("postgresql+psycopg://", "postgresql://"), ("table",))
        table = opts.get("table", "kiln_online_records")
        if not table.replace("_", "").isalnum() or not table[0].isalpha() or len(table) > 63:
            raise InvalidArgument(f"invalid online store table name {table!r}")
        self.table = table
        self._url = plain
        self._psycopg = psycopg
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._upsert = (
            f"INSERT INTO {table} (grp, rid, event_time, expires_at, data) VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (grp, rid) DO UPDATE SET event_time = excluded.event_time, expires_at = excluded.expires_at, "
            f"data = excluded.data WHERE excluded.event_time >= {table}.event_time"
        )
        with self._tx() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (grp TEXT NOT NULL, rid TEXT NOT NULL, event_time DOUBLE PRECISION NOT NULL, "
                "expires_at DOUBLE PRECISION, data BYTEA, PRIMARY KEY (grp, rid))"
            )

    def _con(self) -> Any:
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            try:
                con = self._psycopg.connect(self._url, connect_timeout=10)
            except self._psycopg.Error as exc:
                raise Unavailable(f"the PostgreSQL online store does not answer: {str(exc).strip()[:200]}") from None
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    class _Tx:
        def __init__(self, store: PostgresOnlineStore) -> None:
            self.store = store

        def __enter__(self) -> Any:
            self.con = self.store._con()
            self.cur = self.con.cursor()
            return self.cur

        def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
            self.cur.close()
            if exc_type is None:
                self.con.commit()
            else:
                self.con.rollback()
                if isinstance(exc, self.store._psycopg.OperationalError):
                    raise Unavailable(f"the PostgreSQL online store did not answer: {str(exc).strip()[:200]}") from None

    def _tx(self) -> Any:
        return self._Tx(self)

    def write(self, group: str, rows: Sequence[OnlineRow], *, hard_delete: bool = False) -> int:
        changed = 0
        with self._tx() as cur:  # the whole batch in one transaction
            if hard_delete:
                for r in rows:
                    cur.execute(f"DELETE FROM {self.table} WHERE grp = %s AND rid = %s AND event_time <= %s", (group, r.record_id, r.event_time))
                    changed += max(cur.rowcount, 0)
            else:
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start:start + _CHUNK]
                    cur.executemany(self._upsert, [(group, r.record_id, r.event_time, r.expires_at, r.data) for r in chunk])
                    changed += max(cur.rowcount, 0)
        return changed

    def write_bulk(self, group: str, batches: Iterable[BulkBatch], *, before_commit: Callable[[], None] | None = None) -> int:
        """Every batch in one transaction, on a connection of its own: readers see none of the
        load or all of it; an error (``before_commit``'s too) rolls it all back."""
        try:
            con = self._psycopg.connect(self._url, connect_timeout=10)
        except self._psycopg.Error as exc:
            raise Unavailable(f"the PostgreSQL online store does not answer: {str(exc).strip()[:200]}") from None
        changed = 0
        try:
            with con.cursor() as cur:
                for ids, times, expires, data in batches:
                    for start in range(0, len(ids), _CHUNK):
                        end = start + _CHUNK
                        cur.executemany(self._upsert, list(zip([group] * len(ids[start:end]), ids[start:end], times[start:end], expires[start:end], data[start:end], strict=True)))
                        changed += max(cur.rowcount, 0)
            if before_commit is not None:
                before_commit()
            con.commit()
        except self._psycopg.OperationalError as exc:
            con.rollback()
            raise Unavailable(f"the PostgreSQL online store did not answer: {str(exc).strip()[:200]}") from None
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()
        return changed

    def read(self, group: str, record_ids: Sequence[str], *, now: float) -> list[OnlineRow | None]:
        with self._tx() as cur:
            cur.execute(f"SELECT rid, event_time, expires_at, data FROM {self.table} WHERE grp = %s AND rid = ANY(%s)", (group, list(record_ids)))
            found = {r[0]: r for r in cur.fetchall()}
        out: list[OnlineRow | None] = []
        for rid in record_ids:
            row = found.get(rid)
            if row is None or (row[2] is not None and row[2] <= now):
                out.append(None)
            else:
                out.append(OnlineRow(row[0], row[1], row[2], None if row[3] is None else bytes(row[3])))
        return out

    def drop(self, group: str) -> None:
        with self._tx() as cur:
            cur.execute(f"DELETE FROM {self.table} WHERE grp = %s", (group,))

    def purge_expired(self, *, now: float, limit: int = 10_000) -> int:
        with self._tx() as cur:
            cur.execute(f"DELETE FROM {self.table} WHERE expires_at <= %s AND (grp, rid) IN "
                        f"(SELECT grp, rid FROM {self.table} WHERE expires_at <= %s LIMIT %s)", (now, now, limit))
            return max(cur.rowcount, 0)

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()


register_online_store("sqlite", SqliteOnlineStore)
register_online_store("redis", RedisOnlineStore)
register_online_store("postgresql", PostgresOnlineStore)
register_online_store("postgres", PostgresOnlineStore)
