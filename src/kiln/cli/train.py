"""kiln train: a training job, SageMaker script mode or a built-in algorithm."""

from __future__ import annotations

from typing import Any

import typer

from kiln.cli._common import JsonOpt, get_client
from kiln.cli._training import training_args, training_options
from kiln.cli.jobs import finish

app = typer.Typer(help="Train a model as a job.", no_args_is_help=True)


@app.command("train")
@training_options()
def train(
    name: str = typer.Option(None, "--name", help="The job's name (default: generated)."),
    base_job_name: str = typer.Option(None, "--base-job-name", help="Prefix of the generated job name."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job's name."),
    json: bool = JsonOpt,
    **training: Any,
) -> None:
    """Train a model as a job: a SageMaker script-mode script or a built-in algorithm.

    Waits and streams the job's log; exits non-zero if the job fails. model/ is registered in the
    model registry when it succeeds.
    """
    job = get_client().training.run(**training_args(training), name=name, base_job_name=base_job_name, wait=False)
    finish(job, detach=detach, json=json)
