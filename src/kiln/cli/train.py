"""kiln train: a training job, SageMaker script mode or a built-in algorithm."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, get_client, parse_pairs
from kiln.cli.jobs import finish

app = typer.Typer(help="Train a model as a job.", no_args_is_help=True)


def _json_arg(text: str | None, *, option: str, example: str) -> object:
    if text is None:
        return None
    import orjson

    from kiln.core.errors import InvalidArgument

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"{option} is not valid JSON ({exc}); e.g. {option} '{example}'") from None


@app.command("train")
def train(
    entry_point: str = typer.Option(None, "--entry-point", help="The training script (a path inside --source-dir, or a file)."),
    source_dir: str = typer.Option(None, "--source-dir", help="Folder uploaded with the script (SageMaker's source_dir)."),
    dependencies: list[str] = typer.Option(None, "--dependencies", help="A folder to make importable (repeatable; SageMaker's dependencies=)."),
    algorithm: str = typer.Option(None, "--algorithm", help="A built-in algorithm instead of a script: xgboost, lightgbm, linear-learner, random-forest, kmeans, knn."),
    target: str = typer.Option(None, "--target", help="Built-ins: the label column of a dataset channel (default: headerless CSV, label first)."),
    hyperparameters: str = typer.Option(None, "--hyperparameters", help='JSON object, e.g. \'{"max_depth": 5, "eta": 0.2}\'.'),
    channel: list[str] = typer.Option(None, "--channel", help="NAME=SOURCE: a dataset (name@v[:csv|csv-noheader|parquet]), a path or s3://; repeatable."),
    metric_definitions: str = typer.Option(None, "--metric-definitions", help='JSON list, e.g. \'[{"Name": "val:auc", "Regex": "auc=([0-9.]+)"}]\'.'),
    instance_count: int = typer.Option(1, "--instance-count", help="Hosts (algo-1 … algo-N) running the script at once."),
    instance_type: str = typer.Option("local", "--instance-type", help="Accepted for SageMaker scripts; only sizes the job."),
    framework: str = typer.Option(None, "--framework", help="sklearn, xgboost, lightgbm, pytorch… (how the model is served without model_fn)."),
    model_name: str = typer.Option(None, "--model-name", help="Register model/ as a version of this model (default: the job's base name)."),
    env: list[str] = typer.Option(None, "--env", help="KEY=VALUE for the job's environment; repeatable."),
    name: str = typer.Option(None, "--name", help="The job's name (default: generated)."),
    base_job_name: str = typer.Option(None, "--base-job-name", help="Prefix of the generated job name."),
    max_run: float = typer.Option(None, "--max-run", help="Time limit in seconds (SageMaker's max_run)."),
    max_retries: int = typer.Option(0, "--max-retries", help="Retry a failed run this many times, with backoff; checkpoints/ is restored."),
    experiment: str = typer.Option(None, "--experiment", help="Experiment of the job's run (default training-jobs)."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job's name."),
    json: bool = JsonOpt,
) -> None:
    """Train a model as a job: a SageMaker script-mode script or a built-in algorithm.

    Waits and streams the job's log; exits non-zero if the job fails. model/ is registered in the
    model registry when it succeeds.
    """
    from kiln.training._contract import parse_hyperparameters

    hps = parse_hyperparameters(hyperparameters or "")
    defs = _json_arg(metric_definitions, option="--metric-definitions", example='[{"Name": "loss", "Regex": "loss=([0-9.]+)"}]')
    job = get_client().training.run(
        entry_point=entry_point, source_dir=source_dir, dependencies=dependencies or (), algorithm=algorithm, target=target,
        hyperparameters=hps, channels=parse_pairs(channel, option="--channel", example="train=cancer@1", shape="NAME=SOURCE"),
        metric_definitions=defs, instance_count=instance_count, instance_type=instance_type, framework=framework,
        model_name=model_name, environment=parse_pairs(env, option="--env", example="MODE=fast", shape="KEY=VALUE"), name=name,
        base_job_name=base_job_name, max_run_s=max_run, max_retries=max_retries, experiment=experiment, wait=False,
    )
    finish(job, detach=detach, json=json)
