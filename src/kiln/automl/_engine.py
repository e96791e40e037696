"""The AutoML engine: the process an AutoML job runs (``python -m kiln.automl._engine
CONFIG``), in the job's own process group, so that a stop or the job's time limit ends it
and the users' data is fitted outside the API process.

It reads the data file, searches until its deadline, and writes into ``out``: the model
package (``package/``), the report (``report/``: JSON, HTML, one script per candidate)
and ``result.json`` for the job's program to register. Each evaluated candidate prints
one ``AUTOML {json}`` line: the job's log is the leaderboard as it grows. Input it
cannot learn from ends it with exit code 2 and the reason in ``out/failure``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["LINE_PREFIX", "leaderboard", "main", "run_engine"]

LINE_PREFIX = "AUTOML "
INPUT_ERROR = 2


def _read(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def leaderboard(result: Any) -> list[dict[str, Any]]:
    """The candidates, best first (failed and skipped ones last), with their ensemble weight."""
    from kiln.automl._base import METRICS

    metric = METRICS[result.metric]
    ok = sorted((c for c in result.candidates if c.status == "ok"), key=lambda c: metric.gain(c.score), reverse=True)
    rest = [c for c in result.candidates if c.status != "ok"]
    rows = []
    for rank, c in enumerate(ok + rest, start=1):
        row = c.row()
        row["rank"] = rank if c.status == "ok" else None
        row["weight"] = result.ensemble.get(c.id, 0.0)
        rows.append(row)
    return rows


def run_engine(config: dict[str, Any]) -> dict[str, Any]:
    """Search, then write the package, the report and ``result.json`` under ``config["out"]``."""
    from kiln.automl._search import SearchConfig, search

    started = time.time()
    budget = float(config["time_budget_s"])
    finish_by = float(config.get("finish_by") or started + budget)
    frame = _read(config["data"])
    # What follows the search (importance, files, report) gets about a tenth of the budget.
    after = max(1.0, 0.1 * budget)
    cfg = SearchConfig(
        target=config["target"], problem_type=config.get("problem_type"), metric=config.get("metric"),
        deadline=finish_by - after, mode=config.get("mode") or "Ensembling", n_jobs=int(config.get("n_jobs") or 1),
        seed=int(config.get("seed") or 0), max_candidates=config.get("max_candidates"),
    )

    def progress(cand: Any, done: list[Any]) -> None:
        line = {**cand.row(), "elapsed_s": round(time.time() - started, 2)}
        print(LINE_PREFIX + json.dumps(line, default=str), flush=True)

    result = search(frame, cfg, progress=progress, log=lambda m: print(m, flush=True))
    return finish(config, frame, result, started=started, finish_by=finish_by)


def finish(config: dict[str, Any], frame: Any, result: Any, *, started: float, finish_by: float) -> dict[str, Any]:
    """After the search: importance, the package, the report, ``result.json``."""
    from kiln.automl._frame import prepare
    from kiln.automl._model import save_package
    from kiln.automl._report import candidate_script, data_summary, permutation_importance, shap_importance, write_report

    out = Path(config["out"])
    target = config["target"]
    result.schema["target"] = target
    board = leaderboard(result)
    members = [(cid, w, result.member(cid).models) for cid, w in result.ensemble.items()]
    inputs = [str(c) for c in frame.columns if c != target]
    spec = {"task": "classification" if result.classes is not None else "regression", "problem_type": result.problem_type,
            "metric": result.metric, "classes": result.classes, "schema": result.schema, "inputs": inputs, "target": target}
    t0 = time.time()
    save_package(out / "package", spec, members)
    saved_s = time.time() - t0
    X = prepare(frame[frame[target].notna().to_numpy()].reset_index(drop=True), result.schema)
    importance: dict[str, float] = {}
    room = finish_by - time.time() - max(0.5, saved_s)
    if room > 0.3:
        importance = permutation_importance(result, X, deadline=time.time() + room * 0.6)
    shap = shap_importance(result, X) if finish_by - time.time() > 1.0 else {"status": "skipped: no time left in the budget"}
    single = len(result.ensemble) == 1
    best_id = next(iter(result.ensemble)) if single else "ensemble"
    best = {"name": best_id, "score": result.ensemble_score, "members": result.ensemble}
    summary = {
        "job": config.get("job", ""), "dataset": config.get("dataset"), "target": target, "problem_type": result.problem_type,
        "metric": result.metric, "mode": config.get("mode") or "Ensembling", "time_budget_s": float(config["time_budget_s"]),
        "elapsed_s": time.time() - started, "best": best, "baseline_score": result.baseline_score,
        "ensemble": {"weights": result.ensemble, "score": result.ensemble_score}, "leaderboard": board,
        "data": data_summary(frame, result, target),
        "feature_importance": {"method": "permutation of each raw column on out-of-fold rows (score drop; higher matters more)", "values": importance},
        "shap": shap, "validation": "holdout (20%)" if len(result.folds) == 1 else f"{len(result.folds)}-fold cross-validation",
        "n_jobs": result.n_jobs, "seed": result.seed, "scripts": {},
    }
    scripts = {}
    for row in board:
        if row["status"] == "ok":
            scripts[row["id"]] = candidate_script(result, row["id"], job=summary["job"])
            summary["scripts"][row["id"]] = f"scripts/{row['id']}.py"
    write_report(out / "report", summary, scripts)
    (out / "result.json").write_text(json.dumps(summary, default=str))
    return summary


def main(argv: list[str]) -> int:
    from kiln.automl._search import AutoMLInputError

    config = json.loads(Path(argv[0]).read_text())
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    try:
        summary = run_engine(config)
    except AutoMLInputError as exc:
        (out / "failure").write_text(str(exc))
        print(f"AutoML cannot run: {exc}", flush=True)
        return INPUT_ERROR
    print(f"best: {summary['best']['name']} {summary['metric']} {summary['best']['score']:.5g} "
          f"({len(summary['leaderboard'])} candidates in {summary['elapsed_s']:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
