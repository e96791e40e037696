"""kiln transform: a batch transform job (SageMaker Batch Transform)."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, busy, console, err_console, get_client, parse_pairs, print_json, to_jsonable

app = typer.Typer(help="Run a batch transform.", no_args_is_help=True)


@app.command("transform")
def transform(
    model: str = typer.Argument(..., help="The model version: name, name@3 or name@alias."),
    input: str = typer.Option(..., "--input", help="DATASET@V, a file or folder, or s3://bucket/prefix."),
    output: str = typer.Option(..., "--output", help="A dataset name (a new version), a folder, or s3://bucket/prefix: <file>.out per input file."),
    content_type: str = typer.Option("text/csv", "--content-type", help="The records' media type."),
    accept: str = typer.Option(None, "--accept", help="The answers' media type (default application/json; the input's with --join-source Input)."),
    split_type: str = typer.Option("None", "--split-type", help="None (a file is one record) or Line."),
    strategy: str = typer.Option("MultiRecord", "--strategy", help="SingleRecord or MultiRecord (mini-batches up to --max-payload-mb)."),
    max_payload_mb: float = typer.Option(6.0, "--max-payload-mb", help="Largest request to the model in MB (at most 100)."),
    assemble_with: str = typer.Option("None", "--assemble-with", help="None or Line (each answer on its own line)."),
    input_filter: str = typer.Option(None, "--input-filter", help="JSONPath of what each record sends, e.g. '$[1:]'."),
    output_filter: str = typer.Option(None, "--output-filter", help="JSONPath of what each answer keeps."),
    join_source: str = typer.Option("None", "--join-source", help="Input: each output row is its input row joined with the prediction."),
    workers: int = typer.Option(1, "--workers", help="Worker processes, each with the model loaded."),
    env: list[str] = typer.Option(None, "--env", help="KEY=VALUE for the model's environment; repeatable."),
    name: str = typer.Option(None, help="The job's name (default: generated from the model's)."),
    max_run: float = typer.Option(None, "--max-run", help="Time limit in seconds."),
    max_retries: int = typer.Option(0, "--max-retries", help="Retry a failed run this many times; finished chunks are kept."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job's name."),
    json: bool = JsonOpt,
) -> None:
    """Batch transform: a model's predictions for every record of a dataset, file or folder (SageMaker Batch Transform).

    The answers go to <file>.out under --output (or into a new version of the dataset --output
    names). A failed transform run again resumes."""
    client = get_client()
    args = dict(
        input=input, output=output, content_type=content_type, accept=accept, split_type=split_type, strategy=strategy,
        max_payload_mb=max_payload_mb, assemble_with=assemble_with, input_filter=input_filter, output_filter=output_filter,
        join_source=join_source, workers=workers, environment=parse_pairs(env, option="--env", example="MODE=fast", shape="KEY=VALUE"),
        name=name, max_run_s=max_run, max_retries=max_retries,
    )
    if detach:
        job = client.transform(model, wait=False, **args)
        if json:
            print_json(to_jsonable(job))
        else:
            console.print(job.name)
        return
    with busy(f"transform with {model}"):
        job = client.transform(model, wait=True, **args)
    if json:
        print_json(to_jsonable(job))
    if job.state != "Completed":
        err_console.print(f"[red]transform {job.name} {job.state.lower()}:[/red] {job.failure_reason or ''}", highlight=False)
        raise typer.Exit(1)
    if not json:
        err_console.print(f"[green]transform {job.name} completed[/green]; outputs {job.outputs}", highlight=False)
