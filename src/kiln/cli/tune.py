"""kiln tune: a tuning job (SageMaker Automatic Model Tuning) over the training job that
`kiln train`'s options define; `kiln tune describe|ls|stop` follow it."""

from __future__ import annotations

from typing import Any

import typer

from kiln.cli._common import JsonOpt, console, emit, err_console, get_client, parse_pairs, print_json, to_jsonable

HELP = "Tune hyperparameters: many training jobs over ranges toward one objective (Bayesian, Random, Grid, Hyperband)."
app = typer.Typer(help=HELP, no_args_is_help=True, invoke_without_command=True)

_RANGES_EXAMPLE = '{"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"}]}'


@app.callback(help=HELP)
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
    entry_point: str = typer.Option(None, "--entry-point", help="The training script (a path inside --source-dir, or a file)."),
    source_dir: str = typer.Option(None, "--source-dir", help="Folder uploaded with the script (SageMaker's source_dir)."),
    dependencies: list[str] = typer.Option(None, "--dependencies", help="A folder to make importable (repeatable)."),
    algorithm: str = typer.Option(None, "--algorithm", help="A built-in algorithm instead of a script: xgboost, lightgbm, linear-learner, random-forest, kmeans, knn."),
    target: str = typer.Option(None, "--target", help="Built-ins: the label column of a dataset channel."),
    hyperparameters: str = typer.Option(None, "--hyperparameters", help='Static hyperparameters every trial gets, JSON, e.g. \'{"num_round": 20}\'.'),
    channel: list[str] = typer.Option(None, "--channel", help="NAME=SOURCE: a dataset (name@v[:csv|parquet]), a path or s3://; repeatable."),
    metric_definitions: str = typer.Option(None, "--metric-definitions", help='JSON list, e.g. \'[{"Name": "val:auc", "Regex": "auc=([0-9.]+)"}]\' (built-ins have theirs).'),
    instance_count: int = typer.Option(1, "--instance-count", help="Hosts per trial."),
    instance_type: str = typer.Option("local", "--instance-type", help="Accepted for SageMaker scripts; only sizes the job."),
    framework: str = typer.Option(None, "--framework", help="sklearn, xgboost, lightgbm… (how the trials' models are served)."),
    model_name: str = typer.Option(None, "--model-name", help="Register each trial's model/ as a version of this model (default: the tuning job's name)."),
    env: list[str] = typer.Option(None, "--env", help="KEY=VALUE for the trials' environment; repeatable."),
    name: str = typer.Option(None, "--name", help="The tuning job's name (default: generated; at most 50 characters)."),
    base_name: str = typer.Option(None, "--base-name", help="Prefix of the generated name (SageMaker's base_tuning_job_name)."),
    max_run: float = typer.Option(None, "--max-run", help="Each trial's time limit in seconds."),
    max_retries: int = typer.Option(0, "--max-retries", help="Retry a failed trial this many times."),
    experiment: str = typer.Option(None, "--experiment", help="Experiment of the tuning job's run (default tuning-jobs); trials' runs are its children."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the tuning job's name."),
    json: bool = JsonOpt,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from kiln.cli.train import _json_arg
    from kiln.core.errors import InvalidArgument
    from kiln.training._contract import parse_hyperparameters

    if not objective or ranges is None:
        raise InvalidArgument(f"kiln tune needs --objective (a metric's Name) and --ranges (e.g. '{_RANGES_EXAMPLE}'); `kiln tune --help` shows every option")
    parsed = _json_arg(ranges, option="--ranges", example=_RANGES_EXAMPLE)
    defs = _json_arg(metric_definitions, option="--metric-definitions", example='[{"Name": "loss", "Regex": "loss=([0-9.]+)"}]')
    job = get_client().tuning.create(
        objective_metric_name=objective, hyperparameter_ranges=parsed, objective_type=objective_type, strategy=strategy,  # type: ignore[arg-type]
        max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs, early_stopping_type=early_stopping,
        warm_start_parents=warm_start_from or None, warm_start_type=warm_start_type, random_seed=seed,
        entry_point=entry_point, source_dir=source_dir, dependencies=dependencies or (), algorithm=algorithm, target=target,
        hyperparameters=parse_hyperparameters(hyperparameters or ""),
        channels=parse_pairs(channel, option="--channel", example="train=cancer@1", shape="NAME=SOURCE"),
        metric_definitions=defs, instance_count=instance_count, instance_type=instance_type, framework=framework,  # type: ignore[arg-type]
        model_name=model_name, environment=parse_pairs(env, option="--env", example="MODE=fast", shape="KEY=VALUE"),
        name=name, base_tuning_job_name=base_name, max_run_s=max_run, max_retries=max_retries, experiment=experiment,
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
