"""Built-in XGBoost and LightGBM through Kiln vs the same library call in a plain script.

Target (issue #10): Kiln's built-in training >= 0.95x the plain script's speed on the same data
(>= 1,000,000 rows). Both sides run as fresh processes on the same headerless CSV (label first):

- plain: ``pandas.read_csv(engine="pyarrow")`` -> numpy float32 -> ``xgboost.train`` /
  ``lightgbm.train`` with the same parameters, evaluating on the train set each round as
  SageMaker's container does;
- kiln: ``python -m kiln.training.builtin xgboost|lightgbm`` with an ``SM_*`` environment pointing
  at the same file, the same hyperparameters spelled as SageMaker spells them;
- job: the whole Kiln training job, ``kiln train --algorithm … --channel train=<folder>`` as a
  fresh CLI process until the job is Completed: the record, the runner, the channel copied into
  the job's folder, the run, the model registered (the ratio a user sees). Its peak RSS is the
  CLI's only: the training runs in the job's own processes.

Runs alternate (plain, kiln, kiln, plain, ...) so machine noise hits both alike. Each process's
peak RSS comes from ``os.wait4``. Usage: ``python benchmarks/jobs_builtin.py [--rows N]
[--repeat R] [--only xgboost|lightgbm] [--cpus N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

FEATURES = 20
XGB_ROUNDS = 50
LGB_ROUNDS = 100

PLAIN = textwrap.dedent('''
    import json, sys
    import numpy as np, pandas as pd
    algo, path, params, rounds, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    df = pd.read_csv(path, header=None, engine="pyarrow")
    y = df.pop(0).to_numpy()
    X = df.to_numpy(np.float32)
    del df
    if algo == "xgboost":
        import xgboost as xgb
        dtrain = xgb.DMatrix(X, label=y, nthread=params["nthread"])
        bst = xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dtrain, "train")], verbose_eval=True)
        bst.save_model(out + ".ubj")
    else:
        import lightgbm as lgb
        dtrain = lgb.Dataset(X, label=y, params={"max_bin": params["max_bin"], "verbosity": params["verbosity"], "num_threads": params["num_threads"]})
        bst = lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dtrain], valid_names=["train"],
                        callbacks=[lgb.log_evaluation(1)])
        bst.save_model(out + ".txt")
''')


def make_csv(folder: Path, rows: int) -> Path:
    """rows x (1 + FEATURES) headerless CSV, a binary label first (a noisy non-linear rule)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    score = X[:, 0] * X[:, 1] + np.sin(X[:, 2]) + 0.5 * X[:, 3] ** 2 - X[:, 4] + rng.standard_normal(rows, dtype=np.float32)
    y = (score > np.median(score)).astype(np.float32)
    path = folder / "train" / "data.csv"
    path.parent.mkdir(parents=True)
    table = pa.table({f"c{i}": col for i, col in enumerate([y, *X.T])})
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(include_header=False))
    return path


def configs(cpus: int) -> dict[str, dict]:
    """Per algorithm: Kiln's hyperparameters and the identical library parameters for the plain script."""
    xgb_hps = {"num_round": XGB_ROUNDS, "objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 6,
               "eta": 0.3, "tree_method": "hist", "seed": 0}
    xgb_params = {k: v for k, v in xgb_hps.items() if k != "num_round"} | {"nthread": cpus}
    lgb_hps = {"num_boost_round": LGB_ROUNDS, "objective": "binary", "metric": "binary_logloss", "learning_rate": 0.1,
               "num_leaves": 64, "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "max_depth": 6,
               "min_data_in_leaf": 3, "max_delta_step": 0.0, "lambda_l1": 0.0, "lambda_l2": 0.0, "boosting": "gbdt",
               "min_gain_to_split": 0.0, "scale_pos_weight": 1.0, "tree_learner": "serial", "feature_fraction_bynode": 1.0,
               "is_unbalance": False, "max_bin": 255, "verbosity": 1}
    lgb_params = {k: v for k, v in lgb_hps.items() if k != "num_boost_round"} | {"num_threads": cpus}
    return {"xgboost": {"hps": xgb_hps, "params": xgb_params, "rounds": XGB_ROUNDS},
            "lightgbm": {"hps": lgb_hps, "params": lgb_params, "rounds": LGB_ROUNDS}}


def run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[:4]} failed ({proc.returncode}); log: {log}\n{log.read_text()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def kiln_env(base: Path, job: str, hps: dict, cpus: int) -> dict[str, str]:
    folder = base / job
    for sub in ("model", "output/data"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update({
        "SAGEMAKER_BASE_DIR": str(folder), "SM_HPS": json.dumps(hps), "SM_CHANNELS": '["train"]',
        "SM_CHANNEL_TRAIN": str(base / "data" / "train"), "SM_INPUT_DATA_CONFIG": '{"train": {"ContentType": "text/csv"}}',
        "SM_MODEL_DIR": str(folder / "model"), "SM_OUTPUT_DIR": str(folder / "output"),
        "SM_OUTPUT_DATA_DIR": str(folder / "output" / "data"), "SM_NUM_CPUS": str(cpus),
        "SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1",
    })
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("xgboost", "lightgbm"))
    # Threads for both sides (SM_NUM_CPUS / nthread). On a shared machine 1 keeps OpenMP's
    # spinning threads out of the comparison; the default is every CPU, as a job would use.
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cpus = args.cpus
    base = Path(tempfile.mkdtemp(prefix="kiln-bench-builtin-"))
    start = time.perf_counter()
    path = make_csv(base / "data", args.rows)
    print(f"data: {args.rows:,} rows x {FEATURES} features, {path.stat().st_size / 1e6:.0f} MB CSV "
          f"(made in {time.perf_counter() - start:.1f} s); {cpus} CPUs; load average {os.getloadavg()}")
    script = base / "plain.py"
    script.write_text(PLAIN)
    for algo, cfg in configs(cpus).items():
        if args.only and algo != args.only:
            continue
        plain_cmd = [sys.executable, str(script), algo, str(path), json.dumps(cfg["params"]), str(cfg["rounds"]), str(base / f"{algo}-plain")]
        kiln_cmd = [sys.executable, "-m", "kiln.training.builtin", algo]
        job_cmd = [sys.executable, "-m", "kiln", "train", "--algorithm", algo, "--channel", f"train={path.parent}",
                   "--hyperparameters", json.dumps(cfg["hps"]), "--model-name", f"bench-{algo}"]
        job_env = {**os.environ, "KILN_HOME": str(base / "kiln-home")}
        job_env.pop("KILN_CONFIG", None)
        times: dict[str, list[float]] = {"plain": [], "kiln": [], "job": []}
        rss: dict[str, list[float]] = {"plain": [], "kiln": [], "job": []}
        cpu: dict[str, list[float]] = {"plain": [], "kiln": [], "job": []}
        for i in range(args.repeat):
            order = ("plain", "kiln", "job") if i % 2 == 0 else ("job", "kiln", "plain")
            for side in order:
                if side == "plain":
                    seconds, busy, peak = run(plain_cmd, dict(os.environ), base / f"{algo}-plain-{i}.log")
                elif side == "job":
                    seconds, busy, peak = run(job_cmd, job_env, base / f"{algo}-job-{i}.log")
                else:
                    env = kiln_env(base, f"{algo}-{i}", cfg["hps"], cpus)
                    seconds, busy, peak = run(kiln_cmd, env, base / f"{algo}-kiln-{i}.log")
                times[side].append(seconds)
                cpu[side].append(busy)
                rss[side].append(peak)
                print(f"  {algo:<8} run {i + 1} {side:<5} {seconds:7.2f} s wall {busy:7.2f} s CPU  peak RSS {peak:6.0f} MiB  "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)
        job = statistics.median(times["job"])
        plain, kiln = statistics.median(times["plain"]), statistics.median(times["kiln"])
        plain_cpu, kiln_cpu = statistics.median(cpu["plain"]), statistics.median(cpu["kiln"])
        print(f"{algo}: plain median {plain:.2f} s, kiln median {kiln:.2f} s, ratio plain/kiln {plain / kiln:.3f} "
              f"(target >= 0.95); CPU medians {plain_cpu:.1f} s / {kiln_cpu:.1f} s (ratio {plain_cpu / kiln_cpu:.3f}); "
              f"peak RSS plain {max(rss['plain']):.0f} MiB, kiln {max(rss['kiln']):.0f} MiB; "
              f"as a whole job {job:.2f} s, ratio plain/job {plain / job:.3f}")
    print(f"load average at the end {os.getloadavg()}; files in {base}")


if __name__ == "__main__":
    main()
