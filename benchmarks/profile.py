"""Benchmark: Kiln's profile report against ydata-profiling on the same mixed-type data.

    python benchmarks/profile.py                      # 200,000 x 25, Kiln vs ydata (minimal=True)
    python benchmarks/profile.py --peer-python /path/to/venv/bin/python
    python benchmarks/profile.py --big                # 1,000,000 x 50, Kiln alone

The table is generated once with a fixed seed and written to Parquet in
122,880-row groups (how Kiln's lake stores a version: DuckDB's default).
Each tool runs in a fresh subprocess, so neither shares the other's heap,
in two modes:

* ``frame``: both are handed the same pandas DataFrame, loaded before the
  clock starts (``ProfileReport(df, minimal=True)`` against ``profile(df)``).
* ``file``: each profiles the Parquet file its own way: ydata has to load
  it into pandas first (``pd.read_parquet``, timed), Kiln streams it
  (``profile(path)``, a column chunk at a time), as ``kiln profile`` does.

Reported per tool and mode: wall time of ``profile + to_html`` (median of
``--repeat`` runs in each of ``--procs`` fresh processes, after a warm-up call on a 2,000-row file that pays one-time
costs such as imports and template compilation), the process's peak RSS
during the call (VmHWM, reset just before it, so imports, and in ``frame``
mode the DataFrame, are in it), the RSS the call added on top of what the
process held before it, and the HTML size. ydata-profiling is a
benchmark-only peer, never a Kiln dependency; it pins older numpy/pandas, so
it usually lives in its own venv (pass ``--peer-python``); when it cannot be
imported it is reported as skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"speed": 20.0, "memory": 5.0, "html": 5.0}
ROW_GROUP = 122_880  # rows per Parquet row group, as DuckDB (Kiln's lake) writes them


def make_table(rows: int, cols: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """A mixed-type pandas DataFrame: floats, ints, categories, strings, bools, dates, nulls."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def nulls(x, share):  # type: ignore[no-untyped-def]
        s = pd.Series(x)
        return s.mask(rng.random(rows) < share)

    words = np.array(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"])
    gens = [
        lambda: rng.normal(50, 10, rows),
        lambda: nulls(rng.lognormal(0, 1, rows), 0.05),
        lambda: rng.integers(0, 100, rows),
        lambda: pd.Categorical(rng.choice(words, rows, p=[.4, .2, .1, .1, .05, .05, .05, .05])),
        lambda: rng.random(rows) < 0.3,
        lambda: pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**8, rows), "s"),
        lambda: nulls(rng.uniform(-1, 1, rows), 0.2),
        lambda: np.char.add("user", rng.integers(0, 50_000, rows).astype(str)),
        lambda: rng.integers(0, 10**9, rows),
        lambda: nulls(pd.Series(rng.choice(["yes", "no", "maybe"], rows)), 0.1),
        lambda: np.where(rng.random(rows) < 0.7, 0.0, rng.exponential(3, rows)),
        lambda: pd.Series(rng.random(rows) < 0.5).mask(rng.random(rows) < 0.02),
        lambda: np.arange(rows),
        lambda: pd.Categorical(rng.choice([f"c{k}" for k in range(40)], rows)),
        lambda: rng.normal(0, 1, rows).round(2),
        lambda: nulls(pd.Series(rng.choice(words, rows)).str.cat(
            rng.integers(0, 1000, rows).astype(str), sep="-"), 0.05),
        lambda: rng.standard_t(3, rows),
        lambda: pd.Timestamp("2023-06-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
        lambda: rng.poisson(4, rows),
        lambda: rng.random(rows) < 0.02,
        lambda: rng.gamma(2.0, 2.0, rows),
        lambda: nulls(rng.integers(1, 6, rows).astype(float), 0.3),
        lambda: pd.Categorical(rng.choice(["north", "south", "east", "west"], rows)),
        lambda: rng.normal(100, 1, rows) * 1.5,
        lambda: rng.choice(["x", "y"], rows),
    ]
    data = {f"c{k:02d}_{k % len(gens)}": gens[k % len(gens)]() for k in range(cols)}
    frame = pd.DataFrame(data)
    dup = rows // 100  # 1% of rows repeat earlier ones
    return pd.concat([frame.iloc[: rows - dup], frame.iloc[:dup]], ignore_index=True)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM), so the peak is the profiling's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # not Linux: the peak then covers the whole process
        pass


def worker(tool: str, mode: str, parquet: str, warm: str, html_out: str, repeat: int = 1) -> None:
    """Run one tool in this (fresh) process and print its figures as JSON."""
    import pandas as pd

    if tool == "kiln":
        from kiln.prep.report import profile

        def run(source: str | pd.DataFrame) -> str:
            return profile(source, title="benchmark").to_html()
    else:
        import warnings

        warnings.filterwarnings("ignore")
        from ydata_profiling import ProfileReport

        def run(source: str | pd.DataFrame) -> str:
            df = pd.read_parquet(source) if isinstance(source, str) else source
            return ProfileReport(df, minimal=True, title="benchmark",
                                 progress_bar=False).to_html()
    frame = pd.read_parquet(parquet) if mode == "frame" else None
    # A warm-up call on a small file pays one-time costs (lazy imports, template
    # compilation) for both tools, so the figure is the profiling itself.
    start = time.perf_counter()
    run(pd.read_parquet(warm) if mode == "frame" else warm)
    warmup = time.perf_counter() - start
    times, peak, added = [], 0, 0
    for _ in range(repeat):  # the median damps noise from other work on the machine
        gc.collect()
        _reset_peak()
        base = _status_kib("VmRSS")
        start = time.perf_counter()
        html = run(frame if mode == "frame" else parquet)
        times.append(time.perf_counter() - start)
        hwm = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak, added = max(peak, hwm), max(added, hwm - base)
    seconds = statistics.median(times)
    Path(html_out).write_text(html, encoding="utf-8")
    print(json.dumps({"seconds": seconds, "runs": [round(t, 2) for t in times],
                      "warmup_s": warmup, "peak_mib": peak / 1024, "added_mib": added / 1024,
                      "html_bytes": len(html.encode("utf-8"))}))


def _run(python: str, tool: str, mode: str, files: tuple[str, str], tmp: str,
         repeat: int, procs: int = 1) -> dict | None:
    """The tool's figures over ``procs`` fresh processes: median time, largest memory."""
    results = []
    for _ in range(procs):
        r = _run_once(python, tool, mode, files, tmp, repeat)
        if r is None:
            return None
        results.append(r)
    runs = [t for r in results for t in r["runs"]]
    return {"seconds": statistics.median(runs), "runs": runs,
            "warmup_s": statistics.median(r["warmup_s"] for r in results),
            "peak_mib": max(r["peak_mib"] for r in results),
            "added_mib": max(r["added_mib"] for r in results),
            "html_bytes": results[-1]["html_bytes"]}


def _run_once(python: str, tool: str, mode: str, files: tuple[str, str], tmp: str,
              repeat: int) -> dict | None:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    if tool == "ydata":
        probe = subprocess.run([python, "-c", "import ydata_profiling"], capture_output=True,
                               env=env)
        if probe.returncode != 0:
            return None
    out = subprocess.run([python, __file__, "--worker", tool, mode, *files,
                          str(Path(tmp) / f"{tool}-{mode}.html"), "--repeat", str(repeat)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"{tool} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(name: str, r: dict) -> str:
    return (f"{name:<11} {r['seconds']:>6.2f} s median of {r['runs']} (warm-up {r['warmup_s']:.1f} s)"
            f" {r['peak_mib']:>6.0f} MiB peak {r['added_mib']:>5.0f} MiB added"
            f" {r['html_bytes'] / 1024:>6.0f} KiB html")


def _verdict(key: str, value: float) -> str:
    target = TARGETS.get(key)
    if target is None:
        return ""
    return f"  (target >= {target:g}x: {'met' if value >= target else 'MISSED'})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=25)
    ap.add_argument("--big", action="store_true", help="1,000,000 x 50, Kiln alone")
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter that has ydata-profiling (default: this one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per process (median)")
    ap.add_argument("--procs", type=int, default=1,
                    help="fresh processes per tool: timings vary more between processes "
                         "than within one on a shared machine")
    ap.add_argument("--mode", choices=["frame", "file", "both"], default="both")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, repeat=args.repeat)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, cols = (1_000_000, 50) if args.big else (args.rows, args.cols)
    modes = ["frame", "file"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory() as tmp:
        parquet, warm = str(Path(tmp) / "data.parquet"), str(Path(tmp) / "warm.parquet")
        table = pa.Table.from_pandas(make_table(rows, cols, args.seed), preserve_index=False)
        pq.write_table(table, parquet, row_group_size=ROW_GROUP)
        pq.write_table(table.slice(0, 2_000), warm)
        del table
        print(f"data: {rows:,} rows x {cols} columns (seed {args.seed}), "
              f"{Path(parquet).stat().st_size / 2**20:.1f} MiB of Parquet")
        if args.big:
            for mode in modes:
                kiln = _run(sys.executable, "kiln", mode, (parquet, warm), tmp, args.repeat,
                            args.procs)
                print(_line(f"kiln {mode}", kiln))
            ok = kiln["html_bytes"] <= 2_000_000
            print(f"html size {'within' if ok else 'OVER'} the 2 MB limit")
            return
        for mode in modes:
            kiln = _run(sys.executable, "kiln", mode, (parquet, warm), tmp, args.repeat,
                            args.procs)
            print(_line(f"kiln {mode}", kiln))
            peer = _run(args.peer_python, "ydata", mode, (parquet, warm), tmp, args.repeat,
                        args.procs)
            if peer is None:
                print("ydata    skipped: ydata_profiling is not importable "
                      f"with {args.peer_python} (pass --peer-python)")
                return
            print(_line(f"ydata {mode}", peer))
            ratios = {"speed": peer["seconds"] / kiln["seconds"],
                      "memory": peer["peak_mib"] / kiln["peak_mib"],
                      "memory_added": peer["added_mib"] / max(kiln["added_mib"], 1.0),
                      "html": peer["html_bytes"] / kiln["html_bytes"]}
            for key, value in ratios.items():
                print(f"  {mode:<5} ratio {key:<13} ydata/kiln = {value:6.1f}x{_verdict(key, value)}")


if __name__ == "__main__":
    main()
