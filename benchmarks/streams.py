"""Streams: records/s through the SDK producer (in-process) vs a plain SQLite executemany.

The floor is what SQLite itself does with the same rows in a table of the same
shape, committed in batches of the same size with the same pragmas (WAL,
synchronous=NORMAL): nothing can acknowledge durable records faster on this
machine. Target: the producer reaches at least 0.5 of the floor.

    .venv/bin/python benchmarks/streams.py [--records 200000] [--batch 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import orjson


def make_records(n: int) -> list[dict]:
    return [{"user": f"u{i % 5000}", "page": f"/products/{i % 300}", "ms": i % 997, "ok": i % 7 != 0, "ts": 1_700_000_000 + i} for i in range(n)]


def floor(records: list[dict], batch: int, path: Path) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE r (stream_id INTEGER NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (stream_id, seq)) WITHOUT ROWID")
    start = time.perf_counter()
    for lo in range(0, len(records), batch):
        now = time.time()
        rows = [(1, lo + i + 1, now, orjson.dumps(rec).decode()) for i, rec in enumerate(records[lo:lo + batch])]
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows)
        con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    assert con.execute("SELECT count(*) FROM r").fetchone()[0] == len(records)
    con.close()
    return len(records) / elapsed


def kiln_producer(records: list[dict], batch: int, home: Path) -> float:
    from kiln.core.config import load_settings
    from kiln.sdk.client import Client

    with Client(settings=load_settings(home=str(home))) as client:
        client.streams.create("bench")
        start = time.perf_counter()
        with client.streams.producer("bench", max_batch=batch, linger_ms=50) as producer:
            last = None
            for rec in records:
                last = producer.put(rec)
        assert last is not None and last.result() == len(records)
        elapsed = time.perf_counter() - start
        assert not producer.errors, producer.errors[:1]
        assert client.streams.get("bench").last_sequence_number == len(records)
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = make_records(args.records)
    floors: list[float] = []
    kilns: list[float] = []
    # Interleaved pairs, so a busy moment on the machine hits both sides alike.
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="kiln-bench-streams-") as tmp:
            floors.append(floor(records, args.batch, Path(tmp) / f"floor{i}.db"))
            kilns.append(kiln_producer(records, args.batch, Path(tmp) / "kiln"))
    ratios = sorted(k / f for k, f in zip(kilns, floors, strict=True))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"records: {args.records:,}  batch: {args.batch}  runs: {args.repeat} (interleaved)  cores: {os.cpu_count()}  load: {load:.1f}")
    print(f"sqlite executemany (floor): best {max(floors):12,.0f} records/s   median {statistics.median(floors):12,.0f}")
    print(f"kiln SDK producer:          best {max(kilns):12,.0f} records/s   median {statistics.median(kilns):12,.0f}")
    print(f"ratio kiln/floor: best-of-each {max(kilns) / max(floors):.2f}   median of pairs {statistics.median(ratios):.2f}   target >= 0.50")


if __name__ == "__main__":
    main()
