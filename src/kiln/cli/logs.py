"""kiln logs: the logs of a job or an endpoint."""

from __future__ import annotations

import sys

import typer

from kiln.cli._common import JsonOpt, get_client, print_json

app = typer.Typer(help="Logs of jobs and endpoints: kiln logs job/NAME|endpoint/NAME [--follow] [--since 10m] [--grep REGEX].")


@app.command()
def logs(
    target: str = typer.Argument(..., help="job/NAME or endpoint/NAME."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (until a job ends; Ctrl-C stops)."),
    since: str = typer.Option(None, help="Only lines from then on: a duration ago (10m, 2h), ISO-8601 or Unix seconds."),
    grep: str = typer.Option(None, help="Only lines matching this regular expression."),
    offset: int = typer.Option(0, help="Start after this line number."),
    limit: int = typer.Option(10_000, help="At most this many lines (without --follow)."),
    timestamps: bool = typer.Option(False, "--timestamps", "-t", help="Prefix each line with when it was written (UTC)."),
    json: bool = JsonOpt,
) -> None:
    """Print the logs of a job or an endpoint."""
    import datetime as dt

    client = get_client()

    def show(line: object) -> None:
        text = line.text  # type: ignore[attr-defined]
        if timestamps:
            text = dt.datetime.fromtimestamp(line.time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ ") + text  # type: ignore[attr-defined]
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if follow:
        try:
            for line in client.logs.follow(target, since=since, grep=grep):
                show(line)
        except KeyboardInterrupt:
            pass
        return
    page = client.logs.read(target, offset=offset, since=since, grep=grep, limit=limit)
    if json:
        print_json(page)
        return
    for line in page.lines:
        show(line)
