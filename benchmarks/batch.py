"""Benchmark: batch transform of 1,000,000 rows against in-process predict (issue #11 §6).

Data: ``--rows`` (1,000,000) generated rows of 10 float features (seeded, 4 decimals), one
headerless CSV file. Models (``--models``): scikit-learn LogisticRegression and a 100-tree
LightGBM classifier, each fitted on 10,000 of them and registered in Kiln (skops, LightGBM
text). ``--cold`` turns warm workers off (``KILN_WORKER_WARM=0``: each worker a fresh
interpreter, as before the worker zygote), for the before/after.

The floor, "in-process predict on the same data", is what a user would write in one
process for the same job, input file to output file:
    pyarrow.csv.read_csv (multi-threaded C++ parser) → numpy → ``model.predict`` →
    one prediction per line written to a file.
Beside it, for scale only: ``model.predict`` alone on the array already in memory.

Kiln: ``client.transform("lr", input=FILE, output=FOLDER, split_type="Line",
strategy="MultiRecord", max_payload_mb=6, accept="text/csv", assemble_with="Line",
workers=N)``, timed from the submit call until the job is Completed: the job record and
its runner, N worker processes started and each loading the verified model, the file cut
into chunks of whole records, every chunk parsed, predicted and encoded, ``<file>.out``
assembled and written into the output folder.

The job also reports when its first worker was ready and the rows/s of its chunks from then
on (the steady state, without the fixed start). Floor and Kiln run interleaved (``--repeat`` 3 rounds, a b / b a / a b); medians with every
run. Memory: peak RSS of this process (the floor runs here) and of the transform's
process tree (this process, the runner and its workers, sampled every 20 ms with
psutil), each also as the rise above what it held at its start. The load average is
printed before and after: on a shared 2-core machine the figures move with it.

Usage: ``python benchmarks/batch.py [--rows 1000000] [--workers 2] [--repeat 3] [--models lr,lgbm] [--cold]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.csv as pcsv
from sklearn.linear_model import LogisticRegression

from benchmarks._common import fresh_client

FEATURES = 10


def make_data(path: Path, rows: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(rows, FEATURES)).round(4)
    table = pa.table({f"f{i}": X[:, i] for i in range(FEATURES)})
    pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(include_header=False))
    return X


class Sampler(threading.Thread):
    """Peak RSS (bytes) of this process and its descendants, every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peak_tree = self.peak_self = 0
        self.stop = threading.Event()

    def tree(self) -> tuple[int, int]:
        own = self.me.memory_info().rss
        total = own
        for child in self.me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return own, total

    def run(self) -> None:
        while not self.stop.wait(0.02):
            own, total = self.tree()
            self.peak_self = max(self.peak_self, own)
            self.peak_tree = max(self.peak_tree, total)


def measured(fn: Callable[[], Any]) -> tuple[float, int, int, int]:
    """(seconds, peak RSS of the tree, its rise above the start, peak RSS of this process)."""
    sampler = Sampler()
    start_self, start_tree = sampler.tree()
    sampler.peak_self, sampler.peak_tree = start_self, start_tree
    sampler.start()
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    return elapsed, sampler.peak_tree, sampler.peak_tree - start_tree, sampler.peak_self


def mb(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="lr,lgbm", help="lr (LogisticRegression), lgbm (100-tree LightGBM), comma-separated")
    parser.add_argument("--cold", action="store_true", help="KILN_WORKER_WARM=0: every worker a fresh interpreter (the former way)")
    args = parser.parse_args()
    if args.cold:
        os.environ["KILN_WORKER_WARM"] = "0"
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ({os.cpu_count()} cores); "
          f"workers {'cold (fresh interpreters)' if args.cold else 'warm (forked by the worker zygote)'}")
    tmp = Path(tempfile.mkdtemp(prefix="kiln-bench-batch-"))
    data = tmp / "rows.csv"
    X = make_data(data, args.rows)
    print(f"{args.rows:,} rows x {FEATURES} features, {mb(data.stat().st_size)} of CSV")
    client = fresh_client()
    y = (X[:10_000, 0] + X[:10_000, 1] > 0).astype(int)
    for name in args.models.split(","):
        if name == "lr":
            model: Any = LogisticRegression().fit(X[:10_000], y)
            title = "LogisticRegression"
        elif name == "lgbm":
            import lightgbm

            model = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1).fit(X[:10_000], y)
            title = "LightGBM, 100 trees"
        else:
            raise SystemExit(f"unknown model {name!r}")
        print(f"\n== {title} ==")
        client.models.register(name, model=model, sample_input=X[:5])
        bench_model(client, name, model, X, data, tmp, args)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    client.close()
    shutil.rmtree(tmp, ignore_errors=True)


def bench_model(client: Any, name: str, model: Any, X: np.ndarray, data: Path, tmp: Path, args: argparse.Namespace) -> None:
    expected = model.predict(X)

    def floor() -> None:
        rows = pcsv.read_csv(data, read_options=pcsv.ReadOptions(autogenerate_column_names=True))
        arr = np.column_stack([c.to_numpy() for c in rows.columns])
        preds = model.predict(arr)
        with open(tmp / "floor.out", "wb") as fh:
            fh.write("".join(f"{v}\n" for v in preds.tolist()).encode())

    out = tmp / "out"
    jobs: list[Any] = []

    def kiln() -> None:
        shutil.rmtree(out, ignore_errors=True)
        job = client.transform(name, input=str(data), output=str(out), split_type="Line", strategy="MultiRecord",
                               max_payload_mb=6, accept="text/csv", assemble_with="Line", workers=args.workers)
        if job.state != "Completed":
            raise SystemExit(f"transform {job.name} {job.state}: {job.failure_reason}")
        jobs.append(job)

    results: dict[str, list[tuple[float, int, int, int]]] = {"floor": [], "kiln": []}
    for i in range(args.repeat):
        order = [("floor", floor), ("kiln", kiln)] if i % 2 == 0 else [("kiln", kiln), ("floor", floor)]
        for label, fn in order:
            results[label].append(measured(fn))
    got = np.loadtxt(out / "rows.csv.out", dtype=np.int64)
    assert np.array_equal(got, expected), "the transform's predictions differ from the model's"

    t0 = time.perf_counter()
    model.predict(X)
    predict_only = time.perf_counter() - t0
    med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    for label, title in (("floor", "in-process: read CSV + predict + write"), ("kiln", f"kiln transform, {args.workers} workers")):
        runs = results[label]
        spread = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"{title:<42} {med[label]:7.2f} s  {args.rows / med[label]:>11,.0f} rows/s  [{spread}]  "
              f"peak RSS tree {mb(max(r[1] for r in runs))} (+{mb(max(r[2] for r in runs))} above start), this process {mb(max(r[3] for r in runs))}")
    print(f"{'(scale) predict alone on the array':<42} {predict_only:7.2f} s  {args.rows / predict_only:>11,.0f} rows/s")
    startup = statistics.median(j.metrics.get("startup_s", 0.0) for j in jobs)
    load = [j.metrics.get("worker_load_s", 0.0) for j in jobs]
    steady = statistics.median(j.metrics.get("chunk_records_per_s", 0.0) for j in jobs)
    print(f"kiln, inside the job: first worker ready (started, runtime and model libraries imported, model loaded) "
          f"after {startup:.2f} s from the pool's start; that worker's start to model loaded {statistics.median(load):.2f} s "
          f"[{', '.join(f'{v:.2f}' for v in load)}]; from then on {steady:,.0f} rows/s over the chunks "
          f"({steady / (args.rows / med['floor']):.2f}x the floor's rows/s)")
    ratio = med["floor"] / med["kiln"]
    print(f"ratio kiln / in-process rows/s: {ratio:.2f}x  (target >= 0.8x)  load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
