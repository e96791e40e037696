"""kiln jobs: every job, whatever its kind: ls, describe, logs, stop; and `kiln process`."""

from __future__ import annotations

import sys
from typing import Any

import typer

from kiln.cli._common import JsonOpt, console, emit, err_console, get_client, print_json, to_jsonable

app = typer.Typer(help="Jobs (training, processing, function maps): list, describe, logs, stop.", no_args_is_help=True)

_COLS = ["name", "kind", "state", "created_at", "duration_s", "created_by", "failure_reason"]


def _row(job: Any) -> dict[str, Any]:
    data = to_jsonable(job)
    data["duration_s"] = round(job.duration_s, 1) if job.duration_s is not None else None
    return data


@app.command("ls")
def ls(
    kind: str = typer.Option(None, help="Only jobs of this kind (training, processing, function-map, transform, tuning)."),
    state: str = typer.Option(None, help="Only jobs in this state (Pending, Running, Completed, Failed, Stopped)."),
    limit: int = typer.Option(100, help="At most this many, newest first."),
    json: bool = JsonOpt,
) -> None:
    """List jobs, newest first."""
    jobs = get_client().jobs.list(kind=kind, state=state, limit=limit)
    emit([_row(j) for j in jobs], json=json, columns=_COLS)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="The job's name."), json: bool = JsonOpt) -> None:
    """Show a job: its state, spec, outputs, metrics and failure reason."""
    emit(_row(get_client().jobs.get(name)), json=json)


@app.command("logs")
def logs(
    name: str = typer.Argument(..., help="The job's name."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing lines until the job ends."),
    after: int = typer.Option(0, help="Start after this line number."),
    json: bool = JsonOpt,
) -> None:
    """Print a job's log (stdout and stderr of its code, and Kiln's own [kiln] lines)."""
    client = get_client()
    if follow:
        job = follow_job(name)
        raise typer.Exit(0 if job.state == "Completed" else 1)
    page = client.jobs.logs(name, after=after, limit=10_000)
    if json:
        print_json(to_jsonable(page))
        return
    for line in page.lines:
        sys.stdout.write(line + "\n")


@app.command("stop")
def stop(
    name: str = typer.Argument(..., help="The job's name."),
    wait: bool = typer.Option(True, help="Wait until every process of the job has ended."),
    json: bool = JsonOpt,
) -> None:
    """Stop a job and every process it started (SIGTERM, then SIGKILL after a grace period)."""
    client = get_client()
    job = client.jobs.stop(name)
    if wait and not job.done:
        job = client.jobs.wait(name, timeout_s=120)
    if json:
        print_json(to_jsonable(job))
    else:
        console.print(f"job {name}: {job.state}")


def follow_job(name: str) -> Any:
    """Stream a job's log to stdout until it ends; Ctrl-C leaves it running and says so."""
    client = get_client()
    try:
        job = client.jobs.wait(name, logs=lambda line: sys.stdout.write(line + "\n") and sys.stdout.flush() and None)
    except KeyboardInterrupt:
        err_console.print(f"\nstopped following; job {name} goes on (`kiln jobs logs -f {name}` follows it again, `kiln jobs stop {name}` ends it)")
        raise typer.Exit(130) from None
    return job


def finish(job: Any, *, detach: bool, json: bool) -> None:
    """What every job command does after submitting: print the name (--detach), or follow
    the log and exit non-zero unless the job Completed."""
    if detach:
        if json:
            print_json(to_jsonable(job))
        else:
            console.print(job.name)
        return
    job = follow_job(job.name)
    if json:
        print_json(to_jsonable(job))
    if job.state != "Completed":
        err_console.print(f"[red]job {job.name} {job.state.lower()}:[/red] {job.failure_reason or ''}", highlight=False)
        raise typer.Exit(1)
    if not json:
        err_console.print(f"[green]job {job.name} completed[/green]" + (f"; outputs {job.outputs}" if job.outputs else ""), highlight=False)
