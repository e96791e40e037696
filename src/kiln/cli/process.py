"""kiln process: run a script or command as a processing job."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, get_client, parse_pairs
from kiln.cli.jobs import finish

app = typer.Typer(help="Run a processing job.", no_args_is_help=True)


@app.command("process")
def process(
    code: str = typer.Option(None, "--code", help="The script to run (a path; with --source-dir, its path inside it)."),
    source_dir: str = typer.Option(None, "--source-dir", help="Folder uploaded with the script."),
    command: list[str] = typer.Option(None, "--command", help="Program to run (repeat for each argv item); default python."),
    input: list[str] = typer.Option(None, "--input", help="NAME=SOURCE: a dataset (name@v[:csv|csv-noheader|parquet]), a path or s3://; repeatable."),
    output: list[str] = typer.Option(None, "--output", help="NAME=DATASET: a folder the job fills, registered as a new version of DATASET; repeatable."),
    env: list[str] = typer.Option(None, "--env", help="KEY=VALUE for the job's environment; repeatable."),
    name: str = typer.Option(None, help="The job's name (default: generated from the script's)."),
    max_run: float = typer.Option(None, "--max-run", help="Time limit in seconds."),
    max_retries: int = typer.Option(0, "--max-retries", help="Retry a failed run this many times, with backoff."),
    experiment: str = typer.Option(None, help="Experiment of the job's run (default processing-jobs)."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job's name."),
    arguments: list[str] = typer.Argument(None, help="Arguments passed to the script (after --)."),
    json: bool = JsonOpt,
) -> None:
    """Run a script or command as a processing job: inputs as files, outputs as new dataset versions.

    The script finds its folders in KILN_INPUT_<NAME> / KILN_OUTPUT_<NAME> (under processing/input
    and processing/output of the job's folder).
    """
    job = get_client().processing.run(
        code=code, source_dir=source_dir, command=command or None, arguments=arguments or [],
        inputs=parse_pairs(input, option="--input", example="raw=flights@1", shape="NAME=SOURCE"),
        outputs=parse_pairs(output, option="--output", example="clean=flights-clean", shape="NAME=DATASET"),
        environment=parse_pairs(env, option="--env", example="MODE=fast", shape="KEY=VALUE"),
        name=name, max_run_s=max_run, max_retries=max_retries, experiment=experiment, wait=False,
    )
    finish(job, detach=detach, json=json)
