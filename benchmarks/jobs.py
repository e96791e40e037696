"""Benchmark: training jobs' start overhead and Ray's multi-host speed-up (issue #10 §5).

(a) Start overhead: a trivial script (it prints a line) run
      * directly, ``python script.py`` (the floor),
      * as a Kiln training job on the local executor (target: under 0.5 s more),
      * as a Kiln training job on an already started local Ray (target: under 2 s more),
      * and, for reference, as a bare Ray task that runs ``python script.py`` (Ray's own floor).
    Each job is timed from the submit call until the job is Completed (polled every 20 ms),
    so the figure holds everything Kiln does: the record, the runner, the job folder
    and its channel, the SM_* environment, the log, the run, the outcome. The variants
    run interleaved (a b c d, b c d a, ...) so machine noise hits them alike; medians
    are printed with every run.
(b) Ray, ``instance_count`` 2 against 1 on the same data: a script whose CPU work
    (chained sha256 over each input line) is split by host (line i goes to host
    i mod N); wall time from submit to Completed, and the speed-up.

The machine's load average is printed before and after: on a shared 2-core machine
the figures move with it. Usage: ``python benchmarks/jobs.py [--repeat 5] [--rounds 40000] [--lines 400]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kiln
from kiln.core.config import load_settings

TRIVIAL = "print('hello from the script')\n"

SPLIT_WORK = """\
import hashlib, os, sys, time, json
hosts = json.loads(os.environ["SM_HOSTS"])
me = hosts.index(os.environ["SM_CURRENT_HOST"])
rounds = int(sys.argv[sys.argv.index("--rounds") + 1])
lines = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "seeds.txt")).read().split()
start = time.perf_counter()
digest = b""
mine = lines[me::len(hosts)]
for seed in mine:
    h = seed.encode()
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    digest = hashlib.sha256(digest + h).digest()
print(f"{os.environ['SM_CURRENT_HOST']}: {len(mine)} lines in {time.perf_counter() - start:.2f} s, {digest.hex()[:12]}")
if me == 0:
    open(os.path.join(os.environ["SM_MODEL_DIR"], "digest.txt"), "w").write(digest.hex())
"""


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def show(label: str, runs: list[float], extra: str = "") -> float:
    med = statistics.median(runs)
    print(f"  {label:<46} {med:7.3f} s  [{', '.join(f'{r:.3f}' for r in runs)}] {extra}".rstrip())
    return med


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Each function ``repeat`` times, the order rotated every round."""
    names = list(fns)
    runs: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeat):
        for name in names[i % len(names):] + names[: i % len(names)]:
            start = time.perf_counter()
            fns[name]()
            runs[name].append(time.perf_counter() - start)
    return runs


def run_job(client: kiln.Client, **kwargs: Any) -> Any:
    job = client.training.run(wait=False, logs=False, **kwargs)
    done = client.jobs.wait(job.name, poll_s=0.02, timeout_s=600)
    if done.state != "Completed":
        raise SystemExit(f"job {done.name} {done.state}: {done.failure_reason}")
    return done


def client_for(executor: str) -> kiln.Client:
    home = Path(tempfile.mkdtemp(prefix=f"kiln-bench-jobs-{executor}-"))
    return kiln.Client(settings=load_settings(home=str(home), executor=executor))


def start_overhead(work: Path, ray: Any, repeat: int) -> None:
    src = work / "trivial"
    src.mkdir()
    (src / "script.py").write_text(TRIVIAL)
    data = work / "trivial-data"
    data.mkdir()
    (data / "one.csv").write_text("1,2\n")
    local, on_ray = client_for("local"), client_for("ray")
    job = {"entry_point": "script.py", "source_dir": str(src), "channels": {"train": str(data)}}

    @ray.remote(num_cpus=1)
    def bare(script: str) -> int:
        return subprocess.run([sys.executable, script], capture_output=True).returncode

    script = str(src / "script.py")
    fns: dict[str, Callable[[], Any]] = {
        "python script.py": lambda: subprocess.run([sys.executable, script], check=True, capture_output=True),
        "kiln job, local executor": lambda: run_job(local, **job),
        "kiln job, local Ray (started)": lambda: run_job(on_ray, **job),
        "bare Ray task running python script.py": lambda: ray.get(bare.remote(script)),
    }
    for fn in fns.values():  # warm up: first imports, the Ray worker pool, the databases
        fn()
    runs = interleaved(fns, repeat)
    print(f"(a) start overhead: a trivial script, median of {repeat} interleaved runs")
    base = show("python script.py", runs["python script.py"])
    for name, target in (("kiln job, local executor", 0.5), ("kiln job, local Ray (started)", 2.0)):
        med = show(name, runs[name])
        over = med - base
        print(f"  {'  overhead':<46} {over:7.3f} s  (target < {target} s: {'met' if over < target else 'MISSED'})")
    med = show("bare Ray task running python script.py", runs["bare Ray task running python script.py"])
    print(f"  {'  overhead (Ray alone, for reference)':<46} {med - base:7.3f} s")
    local.close()
    on_ray.close()


def multi_host(work: Path, repeat: int, rounds: int, lines: int) -> None:
    src = work / "split"
    src.mkdir()
    (src / "train.py").write_text(SPLIT_WORK)
    data = work / "seeds"
    data.mkdir()
    (data / "seeds.txt").write_text("\n".join(str(i) for i in range(lines)) + "\n")
    client = client_for("ray")
    job = {"entry_point": "train.py", "source_dir": str(src), "channels": {"train": str(data)}, "hyperparameters": {"rounds": rounds}}
    hosts_log: dict[int, list[str]] = {1: [], 2: []}

    def one(count: int) -> None:
        done = run_job(client, instance_count=count, **job)
        hosts_log[count] = [ln for ln in client.jobs.logs(done.name, limit=10_000).lines if " lines in " in ln]

    run_job(client, instance_count=1, **{**job, "hyperparameters": {"rounds": 10}})  # warm up
    runs = interleaved({"1": lambda: one(1), "2": lambda: one(2)}, repeat)
    print(f"(b) Ray, instance_count 2 vs 1: {lines} lines x {rounds} chained sha256, split by host; median of {repeat} interleaved runs")
    one_host = show("instance_count 1", runs["1"], "; ".join(hosts_log[1]))
    two_hosts = show("instance_count 2", runs["2"], "; ".join(hosts_log[2]))
    print(f"  {'speed-up':<46} {one_host / two_hosts:7.2f} x  (2 hosts on a machine of {os.cpu_count()} cores)")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each variant (median shown)")
    parser.add_argument("--rounds", type=int, default=40_000, help="chained sha256 per input line in (b)")
    parser.add_argument("--lines", type=int, default=400, help="input lines in (b)")
    args = parser.parse_args()
    from kiln.jobs._ray import shutdown_local_ray, start_local_ray

    print("load before:", load())
    start = time.perf_counter()
    ray = start_local_ray()
    print(f"local Ray started on 127.0.0.1 in {time.perf_counter() - start:.1f} s (not counted below)")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-jobs-") as tmp:
        try:
            start_overhead(Path(tmp), ray, args.repeat)
            multi_host(Path(tmp), args.repeat, args.rounds, args.lines)
        finally:
            shutdown_local_ray()
    print("load after: ", load())


if __name__ == "__main__":
    main()
