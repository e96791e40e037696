"""Benchmark: Kiln's drift report against Evidently's DataDriftPreset on the same data.

    python benchmarks/drift.py                                   # 1,000,000 x 50 (40 numeric, 10 categorical)
    python benchmarks/drift.py --rows 200000 --peer-python .venv-evidently/bin/python

Reference and current tables are written once to Parquet; each tool then runs in a fresh
subprocess of its own (Evidently 0.7.23 needs pandas < 3, so it usually lives in a venv of
its own: ``--peer-python``), loads both tables, and is timed from loaded data to a written
HTML page, with its peak RSS (sampled every 5 ms) and the memory added above what the
process held once the data was loaded. Runs are interleaved (kiln, peer, peer, kiln ...).

Figures printed:

* ``kiln drift``: per-column drift (Evidently's default tests: normed Wasserstein for
  numbers, Jensen-Shannon for categories, plus Model Monitor's CDF gap) and the HTML page;
* ``kiln compare``: everything a monitor run writes (statistics.json of both sides through
  kiln.prep.stats, constraints, violations, drift, HTML);
* ``numpy floor``: numpy computing the same per-column distances from sorted arrays;
* ``evidently``: Report([DataDriftPreset()]).run(...) and save_html;
* ``kiln baseline``: statistics.json + constraints.json of the reference read from Parquet
  (one pass), with memory added against the table's Arrow size;
* agreement: per-column verdicts of Kiln and Evidently (same methods), and the largest score gap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

N_NUM, N_CAT = 40, 10


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class Peak:
    """The largest RSS seen while the block runs (a 5 ms sampler thread)."""

    def __enter__(self) -> Peak:
        self.start = _rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    """Reference and current tables; in the current, 12 numeric columns shift (some a little,
    some a lot), 3 categorical columns change their mix, one gains a category."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(42)
    cats = [np.array([f"c{j}_{v}" for v in range(5 + 2 * j)]) for j in range(N_CAT)]

    def table(current: bool) -> pa.Table:
        cols: dict[str, Any] = {}
        for i in range(N_NUM):
            shift = (0.02 * (i + 1) if i < 12 else 0.0) if current else 0.0  # 0.02 .. 0.24 std
            base = rng.normal(shift, 1.0 + (0.05 if current and i == 39 else 0.0), rows)
            cols[f"n{i}"] = np.round(base * (10 if i % 4 == 0 else 1), 3) if i % 5 == 0 else base
        for j in range(N_CAT):
            k = len(cats[j])
            p = np.ones(k) / k
            if current and j < 3:
                p = np.linspace(1, 1 + 0.6 * (j + 1), k)
                p /= p.sum()
            values = rng.choice(k + (1 if current and j == 2 else 0), rows, p=p if not (current and j == 2) else np.append(p * 0.9, 0.1))
            labels = np.append(cats[j], f"c{j}_new")
            cols[f"s{j}"] = pa.array(labels[values]).dictionary_encode().cast(pa.string())
        return pa.table(cols)

    ref, cur = folder / "reference.parquet", folder / "current.parquet"
    pq.write_table(table(False), ref)
    pq.write_table(table(True), cur)
    return ref, cur


# -- workers (each in a fresh process) -------------------------------------------------------


def _kiln(mode: str, ref_path: str, cur_path: str, out: str) -> dict[str, Any]:
    import numpy as np
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from kiln.monitoring._compare import baseline_files, compare
    from kiln.monitoring._drift import table_drift
    from kiln.monitoring._report import render

    if mode == "baseline":
        meta = pq.read_metadata(ref_path)
        with Peak() as p:
            t0 = time.perf_counter()
            stats, cons = baseline_files(pads.dataset(ref_path))
            Path(out).write_text(json.dumps(stats))
            wall = time.perf_counter() - t0
        arrow_bytes = pq.read_table(ref_path).nbytes  # measured after, outside the peak
        return {"wall": wall, "peak": p.peak, "added": p.peak - p.start, "arrow_bytes": arrow_bytes, "rows": meta.num_rows,
                "json_bytes": os.path.getsize(out)}
    ref, cur = pq.read_table(ref_path), pq.read_table(cur_path)
    with Peak() as p:
        t0 = time.perf_counter()
        if mode == "drift":
            names = ref.column_names
            res = table_drift({n: ref.column(n) for n in names}, {n: cur.column(n) for n in names})
            page = render({"dataset_drift": res["dataset_drift"], "columns": res["columns"]}, [], title="drift")
            cols = res["columns"]
        elif mode == "compare":
            done = compare(cur, reference=ref)
            page = done.html
            cols = done.result["columns"]
        else:  # numpy floor: the same per-column distances from sorted arrays
            cols = []
            for n in ref.column_names:
                if n.startswith("n"):
                    a = np.sort(ref.column(n).to_numpy())
                    b = np.sort(cur.column(n).to_numpy())
                    both = np.sort(np.concatenate((a, b)), kind="stable")
                    fa = np.searchsorted(a, both[:-1], "right") / len(a)
                    fb = np.searchsorted(b, both[:-1], "right") / len(b)
                    wd = float(np.sum(np.abs(fa - fb) * np.diff(both))) / max(float(np.std(a)), 0.001)
                    cols.append({"name": n, "score": wd, "drifted": wd >= 0.1})
                else:
                    import pyarrow.compute as pc
                    from scipy.spatial import distance

                    va, vb = pc.value_counts(ref.column(n)), pc.value_counts(cur.column(n))
                    ca = dict(zip(va.field("values").to_pylist(), va.field("counts").to_pylist(), strict=True))
                    cb = dict(zip(vb.field("values").to_pylist(), vb.field("counts").to_pylist(), strict=True))
                    keys = sorted(set(ca) | set(cb))
                    js = float(distance.jensenshannon([ca.get(k, 0) / len(ref) for k in keys], [cb.get(k, 0) / len(cur) for k in keys]))
                    cols.append({"name": n, "score": js, "drifted": js >= 0.1})
            page = ""
        if page:
            Path(out).write_text(page)
        wall = time.perf_counter() - t0
    return {"wall": wall, "peak": p.peak, "added": p.peak - p.start, "html_bytes": len(page.encode()),
            "verdicts": {c["name"]: [c.get("method", ""), c["score"], c["drifted"]] for c in cols if "score" in c}}


def _evidently(ref_path: str, cur_path: str, out: str) -> dict[str, Any]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    dd = DataDefinition(numerical_columns=[c for c in ref.columns if c.startswith("n")], categorical_columns=[c for c in ref.columns if c.startswith("s")])
    with Peak() as p:
        t0 = time.perf_counter()
        snap = Report([DataDriftPreset()]).run(current_data=Dataset.from_pandas(cur, data_definition=dd),
                                                reference_data=Dataset.from_pandas(ref, data_definition=dd))
        snap.save_html(out)
        wall = time.perf_counter() - t0
    verdicts = {}
    for m in snap.dict()["metrics"]:
        cfg = m["config"]
        if cfg.get("type", "").endswith("ValueDrift"):
            method, value, threshold = cfg["method"], float(m["value"]), float(cfg["threshold"])
            p_value = "p_value" in method.lower()
            verdicts[cfg["column"]] = [method, value, value < threshold if p_value else value >= threshold]
    return {"wall": wall, "peak": p.peak, "added": p.peak - p.start, "html_bytes": os.path.getsize(out), "verdicts": verdicts}


def _worker(argv: list[str]) -> None:
    tool, mode, ref, cur, out = argv
    res = _evidently(ref, cur, out) if tool == "evidently" else _kiln(mode, ref, cur, out)
    print("RESULT " + json.dumps(res))


def _run(python: str, tool: str, mode: str, ref: Path, cur: Path, tmp: Path, timeout: float) -> dict[str, Any] | None:
    out = tmp / f"{tool}-{mode}.{'json' if mode == 'baseline' else 'html'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")} if tool == "kiln" else dict(os.environ)
    try:
        proc = subprocess.run([python, __file__, "--worker", tool, mode, str(ref), str(cur), str(out)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"{tool} {mode}: stopped after {timeout:.0f} s")
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    print(f"{tool} {mode} failed:\n{proc.stderr[-2000:]}")
    return None


def _mb(b: float) -> str:
    return f"{b / 1e6:8.1f} MB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--peer-python", default=sys.executable, help="interpreter with evidently==0.7.23 (and pandas < 3)")
    ap.add_argument("--peer-timeout", type=float, default=1800.0)
    ap.add_argument("--repeat", type=int, default=1, help="kiln/peer pairs, interleaved")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiln-drift-bench-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        ref, cur = make_data(args.rows, tmp)
        print(f"data: {args.rows:,} rows x {N_NUM + N_CAT} columns ({N_NUM} numeric, {N_CAT} categorical), twice; "
              f"made in {time.perf_counter() - t0:.1f} s; load: {os.getloadavg()[0]:.2f} (1 min)")
        results: dict[str, list[dict[str, Any]]] = {}
        order = []
        for i in range(args.repeat):
            pair = [("kiln", "drift"), ("evidently", "-")] if i % 2 == 0 else [("evidently", "-"), ("kiln", "drift")]
            order += pair
        order += [("kiln", "floor"), ("kiln", "compare"), ("kiln", "baseline")]
        for tool, mode in order:
            python = args.peer_python if tool == "evidently" else sys.executable
            res = _run(python, tool, mode, ref, cur, tmp, args.peer_timeout if tool == "evidently" else 1800.0)
            if res is not None:
                results.setdefault(f"{tool} {mode}".replace(" -", ""), []).append(res)
        print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
        for label, runs in results.items():
            best = min(runs, key=lambda r: r["wall"])
            extra = f"  html {best['html_bytes'] / 1e6:6.2f} MB" if "html_bytes" in best else ""
            if "arrow_bytes" in best:
                extra = f"  table Arrow size {_mb(best['arrow_bytes'])}  added/Arrow {best['added'] / best['arrow_bytes']:.2f}"
            walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
            print(f"{label:<16} wall {best['wall']:8.2f} s [{walls}]  peak {_mb(best['peak'])}  added {_mb(best['added'])}{extra}")
        k, e, f = (min(results.get(x, [{}]), key=lambda r: r.get("wall", 0)) for x in ("kiln drift", "evidently", "kiln floor"))
        if k and e:
            print(f"ratio evidently/kiln drift: {e['wall'] / k['wall']:.1f}x (target >= 20x)")
            same = [c for c in k["verdicts"] if c in e["verdicts"]]
            agree = sum(k["verdicts"][c][2] == e["verdicts"][c][2] for c in same)
            gap = max(abs(k["verdicts"][c][1] - e["verdicts"][c][1]) for c in same) if same else float("nan")
            print(f"agreement: {agree}/{len(same)} columns ({agree / max(len(same), 1):.0%}, target >= 95%); largest score gap {gap:.2e}")
            print("drifted (kiln): " + ", ".join(c for c in same if k["verdicts"][c][2]))
        if k and f:
            print(f"kiln drift / numpy floor: {k['wall'] / f['wall']:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
