"""kiln tune: a tuning job (SageMaker Automatic Model Tuning) over the training job that
`kiln train`'s options define (the same flags, declared once in :mod:`kiln.cli._training`);
`kiln tune describe|ls|stop` follow it."""

from __future__ import annotations

from typing import Any

import typer

from kiln.cli._common import JsonOpt, console, emit, err_console, get_client, print_json, to_jsonable
from kiln.cli._training import json_arg, training_args, training_options

HELP = "Tune hyperparameters: many training jobs over ranges toward one objective (Bayesian, Random, Grid, Hyperband)."
app = typer.Typer(help=HELP, no_args_is_help=True, invoke_without_command=True)

_RANGES_EXAMPLE = '{"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"}]}'


@app.callback(help=HELP)
@training_options(
    hyperparameters='Static hyperparameters every trial gets, JSON, e.g. \'{"num_round": 20}\'.',
    instance_count="Hosts per trial.",
    model_name="Register each trial's model/ as a version of this model (default: the tuning job's name).",
    env="KEY=VALUE for the trials' environment; repeatable.",
    max_run="Each trial's time limit in seconds.",
    max_retries="Retry a failed trial this many times.",
    experiment="Experiment of the tuning job's run (default tuning-jobs); trials' runs are its children.",
)
def tune(
    ctx: typer.Context,
    objective: str = typer.Option(None, "--objective", help="The objective metric: a metric definition's Name, e.g. validation:auc."),
    objective_type: str = typer.Option("Maximize", "--objective-type", help="Maximize or Minimize."),
    ranges: str = typer.Option(None, "--ranges", help=f"SageMaker's ParameterRanges as JSON, e.g. '{_RANGES_EXAMPLE}'."),
    strategy: str = typer.Option("Bayesian", "--strategy", help="Bayesian, Random, Grid or Hyperband."),
    max_jobs: int = typer.Option(None, "--max-jobs", help="Trials (training jobs) in all (default 1; Grid: every point)."),
    max_parallel_jobs: int = typer.Option(1, "--max-parallel-jobs", help="Trials running at once."),
    early_stopping: str = typer.Option("Off", "--early-stopping", help="Off, or Auto: stop a trial worse than the median of earlier ones at the same step."),
    warm_start_from: list[str] = typer.Option(None, "--warm-start-from", help="A parent tuning job whose trials seed this one; repeatable."),
    warm_start_type: str = typer.Option(None, "--warm-start-type", help="IdenticalDataAndAlgorithm or TransferLearning (with --warm-start-from)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the strategy's sampler (default 0)."),
    name: str = typer.Option(None, "--name", help="The tuning job's name (default: generated; at most 50 characters)."),
    base_name: str = typer.Option(None, "--base-name", help="Prefix of the generated name (SageMaker's base_tuning_job_name)."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the tuning job's name."),
    json: bool = JsonOpt,
    **training: Any,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from kiln.core.errors import InvalidArgument

    if not objective or ranges is None:
        raise InvalidArgument(f"kiln tune needs --objective (a metric's Name) and --ranges (e.g. '{_RANGES_EXAMPLE}'); `kiln tune --help` shows every option")
    parsed = json_arg(ranges, option="--ranges", example=_RANGES_EXAMPLE)
    job = get_client().tuning.create(
        objective_metric_name=objective, hyperparameter_ranges=parsed, objective_type=objective_type, strategy=strategy,
        max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs, early_stopping_type=early_stopping,
        warm_start_parents=warm_start_from or None, warm_start_type=warm_start_type, random_seed=seed,
        name=name, base_tuning_job_name=base_name, **training_args(training),
    )
    if detach:
        print_json(to_jsonable(job)) if json else console.print(job.name)
        return
    from kiln.cli.jobs import follow_job

    follow_job(job.name)
    job = get_client().tuning.get(job.name)
    if json:
        print_json(to_jsonable(job))
    else:
        _show(job)
    if job.state != "Completed":
        err_console.print(f"[red]tuning job {job.name} {job.state.lower()}:[/red] {job.failure_reason or ''}", highlight=False)
        raise typer.Exit(1)


_TRIAL_COLS = ["number", "training_job", "state", "objective", "steps", "hyperparameters"]


def _show(job: Any) -> None:
    summary = {k: v for k, v in to_jsonable(job).items() if k not in ("trials", "objective_over_time", "best_training_job", "hyperparameter_ranges")}
    best = job.best_training_job
    summary["best_training_job"] = best.training_job if best else None
    summary["best_objective"] = best.objective if best else None
    summary["best_hyperparameters"] = best.hyperparameters if best else None
    emit(summary, json=False, title=f"tuning job {job.name}")
    if job.trials:
        cols = _TRIAL_COLS + (["failure_reason"] if any(t.failure_reason for t in job.trials) else [])
        rows = [{**to_jsonable(t), "state": t.state + (" (early stop)" if t.early_stopped else "")} for t in job.trials]
        emit(rows, json=False, columns=cols, title="trials")
    if job.objective_over_time:
        emit([to_jsonable(p) for p in job.objective_over_time], json=False, columns=["ended_at", "trial", "objective", "best"],
             title=f"{job.objective_metric_name} over time ({job.objective_type})")


@app.command("describe")
def describe(name: str = typer.Argument(..., help="The tuning job's name."), json: bool = JsonOpt) -> None:
    """Show a tuning job: its best training job, every trial and the objective over time."""
    job = get_client().tuning.get(name)
    if json:
        print_json(to_jsonable(job))
    else:
        _show(job)


@app.command("ls")
def ls(
    state: str = typer.Option(None, help="Only tuning jobs in this state (Pending, Running, Completed, Failed, Stopped)."),
    limit: int = typer.Option(100, help="At most this many, newest first."),
    json: bool = JsonOpt,
) -> None:
    """List tuning jobs, newest first, with their best training job."""
    rows = []
    for job in get_client().tuning.list(state=state, limit=limit):
        data = to_jsonable(job)
        best = job.best_training_job
        data["best_training_job"] = best.training_job if best else None
        data["best_objective"] = best.objective if best else None
        rows.append(data)
    emit(rows, json=json, columns=["name", "state", "strategy", "objective_metric_name", "max_jobs", "counts", "best_training_job", "best_objective", "created_at"])


@app.command("stop")
def stop(
    name: str = typer.Argument(..., help="The tuning job's name."),
    wait: bool = typer.Option(True, help="Wait until it and its running trials have ended."),
    json: bool = JsonOpt,
) -> None:
    """Stop a tuning job and the trials it has running."""
    client = get_client()
    job = client.tuning.stop(name)
    if wait and not job.done:
        job = client.tuning.wait(name, timeout_s=180)
    if json:
        print_json(to_jsonable(job))
    else:
        console.print(f"tuning job {name}: {job.state}")
