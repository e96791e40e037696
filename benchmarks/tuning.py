"""Benchmark: tuning jobs (issue #14 §3).

(a) Strategy: how many trials Bayesian (TPE, as a tuning job runs it) needs to reach the best
    objective random search finds in N trials; the median over seeds of that count over N
    (target: at most 0.5). Both strategies drive Kiln's own ``kiln.tuning._strategy.Study``
    (the class a tuning job's driver uses: the same ranges, scalings and sampler settings;
    seed s for random, s + 10000 for Bayesian, so TPE's random start-up trials are not
    random search's own) with ask/tell over the objective the trial script below computes, evaluated
    in-process so that many seeds fit in seconds; ``--real-seeds K`` also runs K seeds of
    both as real tuning jobs (every trial a training job) and prints the same figure.
(b) Parallel trials: the same tuning job (max_jobs M) with max_parallel_jobs 1 and 2 on the
    local executor, trials per minute from submit to Completed (target: 2 give ≥ 1.8× of 1),
    after one untimed tuning job (this process's own imports are paid once, not by the first run).
    Run twice: trials that compute for ``--work-s`` seconds (CPU, so bound by the machine's
    free cores), and trials that wait as long (what is left is Kiln's own serialisation:
    job launch, process start, log and metric capture, the driver's polling).

Wall time, the load average (``uptime``), this process's peak RSS and the memory it added
are printed with each figure. Usage:
``python benchmarks/tuning.py [--seeds 9] [--trials 40] [--jobs 8] [--work-s 1.5] [--real-seeds 0]``.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import kiln
from kiln.core.config import load_settings
from kiln.tuning._ranges import parse_ranges
from kiln.tuning._strategy import Study

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "1.0", "ScalingType": "Logarithmic"},
        {"Name": "subsample", "MinValue": "0.3", "MaxValue": "1.0", "ScalingType": "Linear"},
        {"Name": "l2", "MinValue": "0.0", "MaxValue": "1.0", "ScalingType": "Linear"},
    ],
    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "12"}],
    "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart", "gblinear", "exact"]}],
}

# What the trial script computes: a validation score with the shape real ones have (a sweet
# spot of the learning rate on a log scale, depth and subsample interacting, one categorical
# clearly best), peaking at 1.0.
OBJECTIVE = """\
import math
def score(learning_rate, subsample, l2, max_depth, booster):
    lr = math.log10(learning_rate)
    s = 1.0 - 0.08 * (lr + 1.7) ** 2 - 0.004 * (max_depth - 7) ** 2 - 0.3 * (subsample - 0.8) ** 2 * (1 + max_depth / 6)
    s -= 0.2 * (l2 - 0.25) ** 2
    return s + {"gbtree": 0.0, "dart": -0.02, "gblinear": -0.15, "exact": -0.05}[booster]
"""

TRIAL = OBJECTIVE + """
import argparse, os, time
p = argparse.ArgumentParser()
for name in ("learning_rate", "subsample", "l2"):
    p.add_argument("--" + name, type=float)
p.add_argument("--max_depth", type=int)
p.add_argument("--booster")
p.add_argument("--work_s", type=float, default=0.0)
p.add_argument("--mode", default="cpu")
a = p.parse_args()
value = score(a.learning_rate, a.subsample, a.l2, a.max_depth, a.booster)
end = time.perf_counter() + a.work_s
steps = 4
for step in range(steps):
    until = time.perf_counter() + a.work_s / steps
    if a.mode == "cpu":
        x = 0
        while time.perf_counter() < until:
            x += 1
    else:
        time.sleep(max(0.0, until - time.perf_counter()))
    print(f"epoch {step} validation-score={value - 0.01 * (steps - step - 1):.6f}", flush=True)
"""
BAYES_SEED = 10_000
METRICS = [{"Name": "validation:score", "Regex": r"validation-score=([-0-9.e]+)"}]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(before: float) -> str:
    return f"peak RSS {peak_mb():.0f} MB, added {rss_mb() - before:+.0f} MB"


def _score() -> Any:
    space: dict[str, Any] = {}
    exec(OBJECTIVE, space)  # noqa: S102 - our own constant, the function the trial script runs
    return space["score"]


def best_curve(strategy: str, seed: int, trials: int) -> list[float]:
    """Best objective so far after each trial, driving the tuning job's Study with ask/tell."""
    score = _score()
    study = Study(strategy=strategy, ranges=parse_ranges(RANGES), direction="Maximize", seed=seed, max_jobs=trials, early_stopping="Off")
    best, curve = -math.inf, []
    for n in range(trials):
        hps = study.hyperparameters(study.ask(n))
        value = score(**hps)
        study.tell(n, state="Completed", objective=value, early_stopped=False)
        best = max(best, value)
        curve.append(best)
    return curve


def reached(curve: list[float], target: float) -> int:
    """Trials until ``curve`` reaches ``target`` (len + 1 when it never does)."""
    return next((i + 1 for i, v in enumerate(curve) if v >= target - 1e-12), len(curve) + 1)


def strategy_measure(seeds: int, trials: int) -> None:
    before = rss_mb()
    print(f"(a) strategy: Bayesian (TPE) vs random search, {trials} trials each, seeds 0..{seeds - 1}; load: {load()}")
    start = time.perf_counter()
    fractions = []
    for seed in range(seeds):
        rand = best_curve("Random", seed, trials)
        bayes = best_curve("Bayesian", seed + BAYES_SEED, trials)  # a seed of its own: TPE's first (random) trials would repeat random's
        needed = reached(bayes, rand[-1])
        fractions.append(needed / trials)
        shown = f"{needed}" if needed <= trials else f"> {trials}"
        print(f"  seed {seed}: random's best {rand[-1]:.4f}; Bayesian reaches it after {shown} trial(s), best {bayes[-1]:.4f}")
    med = statistics.median(fractions)
    print(f"  median trials to reach random's best / {trials}: {med:.2f}  (target ≤ 0.50: {'met' if med <= 0.5 else 'MISSED'})")
    print(f"  wall {time.perf_counter() - start:.1f} s, {memory(before)}; load after: {load()}")


def client(tag: str) -> kiln.Client:
    return kiln.Client(settings=load_settings(home=tempfile.mkdtemp(prefix=f"kiln-bench-tuning-{tag}-")))


def tuning_job(c: kiln.Client, src: Path, **kw: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    job = c.tuning.create(entry_point="trial.py", source_dir=src, objective_metric_name="validation:score", metric_definitions=METRICS,
                          hyperparameter_ranges=RANGES, **kw)
    job = c.tuning.wait(job.name, timeout_s=1800)
    elapsed = time.perf_counter() - start
    if job.state != "Completed":
        raise SystemExit(f"tuning job {job.name} {job.state}: {job.failure_reason}")
    return job, elapsed


def real_strategy(src: Path, seeds: int, trials: int) -> None:
    before = rss_mb()
    print(f"(a') the same, as real tuning jobs (each trial a training job), {trials} trials, {seeds} seed(s); load: {load()}")
    c = client("strategy")
    fractions = []
    for seed in range(seeds):
        curves = {}
        for strategy in ("Random", "Bayesian"):
            job, elapsed = tuning_job(c, src, strategy=strategy, max_jobs=trials, max_parallel_jobs=1,
                                      random_seed=seed + (BAYES_SEED if strategy == "Bayesian" else 0),
                                      hyperparameters={"work_s": 0.0}, name=f"{strategy.lower()}-{seed}")
            values = [t.objective for t in sorted(job.trials, key=lambda t: t.number)]
            curves[strategy] = [max(values[: i + 1]) for i in range(len(values))]
            print(f"  seed {seed} {strategy}: best {curves[strategy][-1]:.4f} in {elapsed:.1f} s")
        fractions.append(reached(curves["Bayesian"], curves["Random"][-1]) / trials)
    print(f"  median trials to reach random's best / {trials}: {statistics.median(fractions):.2f}; {memory(before)}")
    c.close()


def parallel_measure(src: Path, jobs: int, work_s: float, mode: str) -> None:
    before = rss_mb()
    print(f"(b) parallel trials, {jobs} trials that {'compute' if mode == 'cpu' else 'wait'} {work_s:g} s each; load: {load()}")
    # Untimed: the first tuning job of this process also pays the process's own imports (the
    # SDK's, the training and tuning services'), once, as a server does; charged to the first
    # measured run (max_parallel_jobs 1) it inflated the ratio.
    warm_c = client("warm")
    tuning_job(warm_c, src, strategy="Random", max_jobs=1, max_parallel_jobs=1, random_seed=0, hyperparameters={"work_s": 0.0, "mode": mode})
    warm_c.close()
    rates = {}
    for parallel in (1, 2, 1, 2):  # interleaved, so the machine's load hits both alike
        c = client(f"p{parallel}")
        job, elapsed = tuning_job(c, src, strategy="Random", max_jobs=jobs, max_parallel_jobs=parallel, random_seed=0,
                                  hyperparameters={"work_s": work_s, "mode": mode})
        # Steady state: from the first trial's start to the last trial's end (the tuning job's
        # own start, Optuna's import and the final wait are paid once per job, not per trial).
        trials = [c.jobs.get(t.training_job) for t in job.trials]
        steady = max(t.ended_at for t in trials) - min(t.started_at for t in trials)
        c.close()
        rate, steady_rate = jobs / elapsed * 60, jobs / steady * 60
        rates.setdefault(parallel, []).append((rate, steady_rate))
        print(f"  max_parallel_jobs {parallel}: {elapsed:6.1f} s wall, {rate:5.1f} trials/min; first trial start to last end {steady:5.1f} s, {steady_rate:5.1f} trials/min")
    for label, i in (("whole tuning job", 0), ("steady state", 1)):
        one, two = statistics.median(r[i] for r in rates[1]), statistics.median(r[i] for r in rates[2])
        ratio = two / one
        print(f"  2 parallel / 1, {label}: {ratio:.2f}×  (target ≥ 1.8×: {'met' if ratio >= 1.8 else 'MISSED'})")
    print(f"  {memory(before)}; load after: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=12, help="trials per tuning job in (b)")
    parser.add_argument("--work-s", type=float, default=1.5, help="seconds of work per trial in (b)")
    parser.add_argument("--real-seeds", type=int, default=0, help="also run (a) as real tuning jobs for this many seeds")
    parser.add_argument("--skip-parallel", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    strategy_measure(args.seeds, args.trials)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-tuning-src-") as tmp:
        src = Path(tmp)
        (src / "trial.py").write_text(TRIAL)
        if args.real_seeds:
            real_strategy(src, args.real_seeds, args.trials)
        if not args.skip_parallel:
            parallel_measure(src, args.jobs, args.work_s, "cpu")
            parallel_measure(src, args.jobs, args.work_s, "sleep")
    print(f"total wall {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
