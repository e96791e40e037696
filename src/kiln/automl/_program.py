"""The AutoML job's program, run by the job runner (never in the API process).

It writes the dataset into the job's folder, runs the engine (:mod:`kiln.automl._engine`)
as the job's process group under the job's stop and time limit, then registers the
package the engine wrote as a model version (trusted: Kiln's own job made it, and it
holds no code) and keeps the report in the object store. The whole job keeps to the time
budget: the engine is told when it must be done, with time left for the registration.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from kiln.core.errors import KilnError
from kiln.jobs._inputs import InputSource, materialize
from kiln.jobs._runner import Outcome, RunningJob

__all__ = ["run"]


def _submitted_at(job: RunningJob) -> float:
    """When the job was asked for: the budget counts from there (the runner's start is
    part of what the user waits for), within a minute of now should clocks disagree."""
    import sqlalchemy as sa

    from kiln.jobs import _tables as t

    now = time.time()
    with job.ws.db.read() as conn:
        created = conn.execute(sa.select(t.jobs.c.created_at).where(t.jobs.c.name == job.name)).scalar()
    return min(now, max(float(created or now), now - 60.0))


def run(job: RunningJob) -> Outcome:
    started = _submitted_at(job) if job.attempt <= 1 else time.time()
    spec = job.spec
    budget = float(spec["time_budget_s"])
    source = InputSource.from_dict(spec["dataset"])
    for sub in ("data", "out"):
        shutil.rmtree(job.folder / sub, ignore_errors=True)
    try:
        files = materialize(job.ws, job.ctx, source, job.folder / "data")
    except KilnError as exc:
        return Outcome(failure=f"the dataset could not be read: {exc.message}")
    except OSError as exc:
        return Outcome(failure=f"the dataset could not be read: {exc}", retriable=True)
    data = next((f for f in files if f.suffix in (".parquet", ".csv")), None)
    if data is None:
        return Outcome(failure=f"{source.value} holds no .parquet or .csv file")
    out = job.folder / "out"
    register_s = max(1.5, 0.05 * budget)
    threads = int(spec.get("n_jobs") or 1)
    config = {
        "data": str(data), "out": str(out), "target": spec["target"], "problem_type": spec.get("problem_type"), "metric": spec.get("metric"),
        "mode": spec.get("mode"), "n_jobs": threads, "seed": spec.get("seed") or 0, "max_candidates": spec.get("max_candidates"),
        "time_budget_s": budget, "finish_by": started + budget - register_s, "job": job.name,
        "dataset": source.value if source.kind == "dataset" else Path(source.value).name,
    }
    (job.folder / "automl.json").write_text(json.dumps(config))
    threads_env = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    job.log(f"AutoML on {config['dataset']}, target {spec['target']!r}, budget {budget:g} s, {threads} thread(s)")
    status = job.execute([sys.executable, "-m", "kiln.automl._engine", str(job.folder / "automl.json")], cwd=job.folder,
                         env=job.user_env(threads_env))
    if job.stop_requested or status.stopped:
        return Outcome(stopped=True)
    if not status.ok:
        failure = out / "failure"
        if failure.is_file():
            return Outcome(failure=failure.read_text()[:2000])
        if status.timed_out:
            return Outcome(failure=f"the AutoML job ran past its time limit ({job.time_limit_s:g} s) and was ended")
        return Outcome(failure=f"the AutoML engine {status.describe()}. Last lines:\n{job.log_tail(15)}", retriable=True)
    summary = json.loads((out / "result.json").read_text())
    try:
        ref = _register(job, out / "package", summary)
    except KilnError as exc:
        return Outcome(failure=f"the AutoML model could not be registered: {exc.message}")
    summary["model"] = ref
    report_dir = out / "report"
    (report_dir / "report.json").write_text(json.dumps(summary, default=str))
    from kiln.automl._report import render_html

    (report_dir / "report.html").write_text(render_html(summary))
    prefix = f"jobs/{job.name}/automl/"
    for path in sorted(report_dir.rglob("*")):
        if path.is_file():
            job.ws.store.put_file(prefix + path.relative_to(report_dir).as_posix(), path)
    board = summary["leaderboard"]
    job.log(f"model registered as {ref}; report at {prefix}report.html; took {time.time() - started:.1f} s of {budget:g} s")
    best = summary["best"]
    metrics = {f"best_{summary['metric']}": float(best["score"]), "candidates": float(len(board)), "elapsed_s": time.time() - started}
    outputs = {"model": ref, "report": prefix, "problem_type": summary["problem_type"], "metric": summary["metric"], "best": best,
               "leaderboard": board}
    return Outcome(outputs=outputs, metrics=metrics)


def _register(job: RunningJob, package: Path, summary: dict[str, Any]) -> str:
    """Register the package as a trusted job model: its signature, task and classes come from its
    own automl.json, read as any registration of that folder reads it."""
    from kiln.registry._service import ModelService

    spec = job.spec
    datasets = [spec["dataset"]["value"]] if spec["dataset"]["kind"] == "dataset" else []
    version = ModelService(job.ws, job.ctx).register_job_model(
        name=spec["model_name"], folder=package, flavor="automl",
        flavor_options={"problem_type": summary["problem_type"], "metric": summary["metric"], "best": summary["best"]["name"]},
        job=job.name, run_id=job.run_id, submitter=job.submitter, source_sha256="", datasets=datasets,
        description=f"AutoML job {job.name}: {summary['best']['name']}, {summary['metric']} {summary['best']['score']:.5g} (cross-validated)",
    )
    return f"{version.name}@{version.version}"
