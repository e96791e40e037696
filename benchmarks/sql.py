"""SQL benchmark: an aggregation and a join over 10M rows, Kiln vs plain DuckDB on the same Parquet.

Target (issue #2): Kiln's overhead <= 10%.
Run: .venv/bin/python benchmarks/sql.py [--rows N] [--repeat K]
"""

from __future__ import annotations

import argparse
import shutil

import duckdb
import pyarrow as pa

from _common import compare, fresh_client, show

AGG = "SELECT customer % 100 AS bucket, count(*) AS n, sum(amount) AS total, avg(qty) AS q FROM {facts} GROUP BY ALL ORDER BY bucket"
JOIN = "SELECT d.region, count(*) AS n, sum(f.amount) AS total FROM {facts} f JOIN {dims} d ON f.customer = d.customer GROUP BY d.region ORDER BY d.region"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    client = fresh_client()
    facts = duckdb.sql(f"SELECT range AS id, (range * 7919) % 100000 AS customer, random() AS amount, (random() * 10)::INT AS qty FROM range({args.rows})").to_arrow_table()
    dims = pa.table({"customer": list(range(100_000)), "region": [f"r{i % 12}" for i in range(100_000)]})
    client.datasets.ingest("facts", facts)
    client.datasets.ingest("dims", dims)
    del facts
    store = client.workspace.store
    files = {name: [store.path(f.key) for f in client.datasets.get(name).files] for name in ("facts", "dims")}
    print(f"{args.rows:,} fact rows in {len(files['facts'])} Parquet files; median of {args.repeat}")

    # The peer as a user would hold it: one open connection, reused for every query.
    con = duckdb.connect()

    def plain(query: str) -> None:
        con.sql(query.format(facts=f"read_parquet({files['facts']})", dims=f"read_parquet({files['dims']})")).to_arrow_table()

    for label, query in (("aggregation", AGG), ("join", JOIN)):
        plain(query)
        client.sql(query.format(facts="facts", dims="dims"))
        (duck_s, duck_runs), (kiln_s, kiln_runs) = compare(lambda q=query: plain(q), lambda q=query: client.sql(q.format(facts="facts", dims="dims")), repeat=args.repeat)
        show(f"{label}: plain DuckDB", duck_s, duck_runs)
        show(f"{label}: Kiln client.sql (sandboxed, history kept)", kiln_s, kiln_runs)
        overhead = kiln_s / duck_s - 1
        print(f"{label}: Kiln overhead {overhead * 100:+.1f}% (target <= 10%) -> {'MET' if overhead <= 0.10 else 'MISSED'}")
    client.close()
    shutil.rmtree(client.settings.home, ignore_errors=True)


if __name__ == "__main__":
    main()
