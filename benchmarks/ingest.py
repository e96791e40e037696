"""Ingest benchmark: a 2M-row CSV through Kiln vs plain DuckDB read_csv -> Parquet.

Target (issue #2): Kiln at >= 0.7 of plain DuckDB's rows/s.
Run: .venv/bin/python benchmarks/ingest.py [--rows N] [--repeat K]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import duckdb

from _common import compare, fresh_client, show


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-ingest-"))
    csv = work / "data.csv"
    duckdb.sql(f"""COPY (SELECT range AS id, random() AS amount, (random() * 1000)::INT AS qty,
                         'customer_' || (range % 50000) AS customer, DATE '2020-01-01' + (range % 1500)::INT AS day,
                         range % 7 = 0 AS flagged
                  FROM range({args.rows})) TO '{csv}' (HEADER)""")
    print(f"CSV: {args.rows:,} rows, {csv.stat().st_size / 2**20:.0f} MB; median of {args.repeat}")

    out = work / "duck.parquet"

    def plain() -> None:
        con = duckdb.connect()
        con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")
        con.close()

    client = fresh_client()
    counter = iter(range(1000))

    def kiln_ingest() -> None:
        client.datasets.ingest(f"bench-{next(counter)}", str(csv))

    plain()  # warm the page cache for both
    (duck_s, duck_runs), (kiln_s, kiln_runs) = compare(plain, kiln_ingest, repeat=args.repeat)
    show("plain DuckDB read_csv -> Parquet", duck_s, duck_runs, f"{args.rows / duck_s:,.0f} rows/s")
    show("Kiln datasets.ingest (versioned, hashed)", kiln_s, kiln_runs, f"{args.rows / kiln_s:,.0f} rows/s")
    ratio = duck_s / kiln_s
    print(f"Kiln / DuckDB throughput ratio: {ratio:.2f} (target >= 0.70) -> {'MET' if ratio >= 0.7 else 'MISSED'}")
    client.close()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(client.settings.home, ignore_errors=True)


if __name__ == "__main__":
    main()
