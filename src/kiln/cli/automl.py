"""kiln automl: an AutoML job (SageMaker Autopilot) with its leaderboard as it grows; and
``kiln automl-jobs``: list, describe, report, script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kiln.cli._common import JsonOpt, console, emit, err_console, fail, get_client, print_json, to_jsonable

app = typer.Typer(help="AutoML: search models for a dataset's target column within a time budget.", no_args_is_help=True)
jobs_app = typer.Typer(help="AutoML jobs: list, describe (leaderboard), report (JSON/HTML), candidate scripts.", no_args_is_help=True)

_BOARD = ["rank", "id", "family", "score", "fit_s", "predict_s_per_1k", "weight", "status", "note"]


def _num(value: Any) -> str:
    return "" if value is None else (f"{value:.5g}" if isinstance(value, float) else str(value))


def _table(rows: list[dict[str, Any]], metric: str, *, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col in ["#", "candidate", "family", f"{metric} (CV)", "fit s", "status"]:
        table.add_column(col)
    for i, r in enumerate(rows, 1):
        table.add_row(str(r.get("rank") or i), r["id"], r["family"], _num(r.get("score")), _num(r.get("fit_s")),
                      r["status"] + (f" ({r['note']})" if r.get("note") else ""))
    return table


@app.command("automl")
def automl(
    dataset: str = typer.Argument(..., help="The dataset: name or name@version (locally also a .csv or .parquet file)."),
    target: str = typer.Option(..., "--target", help="The column to predict."),
    problem_type: str = typer.Option(None, "--problem-type", help="BinaryClassification, MulticlassClassification or Regression (default: inferred)."),
    metric: str = typer.Option(None, "--metric", help="Objective: F1, Accuracy, MSE (the defaults), AUC, BalancedAccuracy, Precision, Recall, F1macro, PrecisionMacro, RecallMacro, MAE, R2, RMSE, LogLoss."),
    time_budget: float = typer.Option(600.0, "--time-budget", help="Seconds for the whole job, registration included."),
    mode: str = typer.Option("ensembling", "--mode", help="ensembling (an ensemble of the best candidates), hpo (the best tuned candidate) or auto."),
    model_name: str = typer.Option(None, "--model-name", help="Register the result as a version of this model (default: DATASET-automl)."),
    n_jobs: int = typer.Option(None, "--n-jobs", help="Threads (default: every core)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (folds, models, search)."),
    name: str = typer.Option(None, help="The job's name (default: generated)."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job's name."),
    json: bool = JsonOpt,
) -> None:
    """Search models for a dataset's target column within a time budget; register the best (an ensemble) as a model that serves raw rows."""
    client = get_client()
    args = dict(target=target, problem_type=problem_type, metric=metric, time_budget_s=time_budget, mode=mode,
                model_name=model_name, n_jobs=n_jobs, seed=seed, name=name)
    if detach:
        job = client.automl(dataset, wait=False, **args)
        print_json(to_jsonable(job)) if json else console.print(job.name)
        return
    rows: list[dict[str, Any]] = []
    shown = metric or "score"
    live = None
    if err_console.is_terminal and not json:
        from rich.live import Live

        live = Live(_table(rows, shown, title="AutoML leaderboard (growing)"), console=err_console, transient=True)
        live.start()

    def on_candidate(row: dict[str, Any]) -> None:
        rows.append(row)
        ranked = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["score"] if r["score"] is not None else 0, reverse=True)
        if live is not None:
            live.update(_table(ranked[:15], shown, title=f"AutoML leaderboard: {len(rows)} candidates"))
        elif not json:
            err_console.print(f"candidate {row['id']}: {row['status']} {_num(row.get('score'))} (fit {_num(row.get('fit_s'))} s, at {_num(row.get('elapsed_s'))} s)", highlight=False)

    try:
        job = client.automl(dataset, wait=True, on_candidate=on_candidate, **args)
    finally:
        if live is not None:
            live.stop()
    if job.state != "Completed":
        if json:
            print_json(to_jsonable(job))
        fail(f"AutoML job {job.name} {job.state.lower()}: {job.failure_reason or ''}", code=1)
    out = job.outputs
    if json:
        print_json(to_jsonable(job))
        return
    board = out.get("leaderboard", [])
    console.print(_table([r for r in board if r["status"] == "ok"][:15], out.get("metric", shown), title=f"AutoML leaderboard ({out.get('problem_type')})"))
    best = out.get("best", {})
    members = ", ".join(f"{k} {v:.2f}" for k, v in (best.get("members") or {}).items())
    err_console.print(f"[green]best: {best.get('name')}[/green] {out.get('metric')} {_num(best.get('score'))} (cross-validated; {members}); "
                      f"registered as [bold]{out.get('model')}[/bold]. Report: kiln automl-jobs report {job.name} --html report.html", highlight=False)


@jobs_app.command("ls")
def ls(limit: int = typer.Option(100, help="At most this many, newest first."), json: bool = JsonOpt) -> None:
    """List AutoML jobs, newest first."""
    jobs = get_client().automl.list(limit=limit)
    emit([{"name": j.name, "state": j.state, "model": j.outputs.get("model"), "metric": j.outputs.get("metric"),
           "best": (j.outputs.get("best") or {}).get("score"), "created_at": j.created_at} for j in jobs], json=json,
         columns=["name", "state", "model", "metric", "best", "created_at"])


@jobs_app.command("describe")
def describe(name: str = typer.Argument(..., help="The AutoML job's name."), json: bool = JsonOpt) -> None:
    """Show an AutoML job and its leaderboard (growing while it runs)."""
    info = get_client().automl.describe(name)
    if json:
        print_json(to_jsonable(info))
        return
    console.print(f"{info.job.name}: {info.job.state}" + (f" ({info.job.failure_reason})" if info.job.failure_reason else ""), highlight=False)
    if info.model:
        console.print(f"model {info.model}; best {info.best.get('name') if info.best else ''} {info.metric} {_num((info.best or {}).get('score'))}", highlight=False)
    console.print(_table(info.leaderboard, info.metric or "score", title="leaderboard"))


@jobs_app.command("report")
def report(
    name: str = typer.Argument(..., help="The AutoML job's name."),
    html: Path = typer.Option(None, "--html", help="Write the HTML report to this file."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the JSON report to this file (default: print it)."),
) -> None:
    """The report of a finished AutoML job: data summary, leaderboard, feature importance (JSON; HTML with --html)."""
    rep = get_client().automl.report(name, html=html is not None)
    if html is not None:
        html.write_text(rep.html or "")
        err_console.print(f"wrote {html}", highlight=False)
    if output is not None:
        import json as _json

        output.write_text(_json.dumps(rep.report, indent=1))
        err_console.print(f"wrote {output}", highlight=False)
    elif html is None:
        print_json(rep.report)


@jobs_app.command("script")
def script(
    name: str = typer.Argument(..., help="The AutoML job's name."),
    candidate: str = typer.Argument(..., help="The candidate (its id on the leaderboard, e.g. c01-lightgbm)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the script to this file (default: print it)."),
) -> None:
    """A candidate as a runnable Python script that refits it on the training data and writes its predictions."""
    text = get_client().automl.script(name, candidate).script
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)
        err_console.print(f"wrote {output}; run: python {output} TRAIN.csv", highlight=False)
