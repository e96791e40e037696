"""kiln runs: list, search, show and compare runs; read metric histories and artifacts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kiln.cli._common import JsonOpt, console, emit, err_console, get_client, to_jsonable, whole_column

app = typer.Typer(help="Runs: params, metrics and artifacts of experiments.", no_args_is_help=True)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@app.command("ls")
def ls(
    experiment: list[str] = typer.Argument(None, help="Experiment names (all when omitted)."),
    filter: str = typer.Option(None, "--filter", "-f", help="e.g. \"metrics.auc > 0.9 and params.max_depth = '5'\"."),
    order_by: list[str] = typer.Option(None, "--order-by", "-o", help="e.g. 'metrics.auc DESC' (repeatable)."),
    limit: int = typer.Option(50, min=1, max=10000, help="Runs per page."),
    page_token: str = typer.Option(None, help="next_page_token of the previous page."),
    json: bool = JsonOpt,
) -> None:
    """List or search runs, newest first unless --order-by says otherwise."""
    page = get_client().runs.search(experiment or None, filter=filter, order_by=order_by or None, limit=limit, page_token=page_token)
    if json:
        # Every listing prints a JSON list; the next page's token goes to stderr.
        emit(to_jsonable(page.runs), json=True)
        if page.next_page_token:
            err_console.print(f"more: --page-token {page.next_page_token}", highlight=False)
        return
    table = Table()
    whole = {"id": [r.id for r in page.runs], "experiment": [r.experiment_name for r in page.runs], "name": [r.name for r in page.runs]}
    for header, values in whole.items():
        whole_column(table, header, values)
    table.add_column("status")
    # Ids and names stay whole; metric columns take what width is left (--json has them all).
    used = sum(max(len(h), *(len(v) for v in vs)) + 3 for h, vs in whole.items()) + 13
    room = max(0, (console.width - used) // 12)
    metric_keys = sorted({k for r in page.runs for k in r.metrics})[:min(6, room)]
    for k in metric_keys:
        table.add_column(f"m.{k}", overflow="fold")
    for r in page.runs:
        table.add_row(r.id, r.experiment_name, r.name, r.status, *[_fmt(r.metrics.get(k)) for k in metric_keys])
    # Never cropped: when ids and names alone pass the terminal's width, lines run past it whole.
    console.print(table if page.runs else "[dim](none)[/dim]", crop=False)
    if page.next_page_token:
        console.print(f"more: --page-token {page.next_page_token}", highlight=False)


@app.command("show")
def show(run_id: str, json: bool = JsonOpt) -> None:
    """Show a run (by id, id prefix, experiment/run-name or name): params, tags, inputs, latest metrics and artifacts."""
    run = get_client().runs.get(run_id)
    emit({**to_jsonable(run), "inputs": run.inputs}, json=json)


@app.command("compare")
def compare(run_ids: list[str] = typer.Argument(..., help="Two or more runs: ids, id prefixes (6+ hex digits), experiment/run-name or names."), json: bool = JsonOpt) -> None:
    """Runs side by side: params, latest metrics and tags."""
    result = get_client().runs.compare(run_ids)
    if json:
        emit(to_jsonable(result), json=True)
        return
    table = Table(title="runs compared")
    table.add_column("", overflow="fold")
    for r in result.runs:
        # The name and the id, whole: either can be typed back (`kiln runs show ...`).
        table.add_column(f"{r.name}\n{r.id}", overflow="fold")
    table.add_row("status", *[r.status for r in result.runs])
    for section, rows in (("params", result.params), ("metrics", result.metrics), ("tags", result.tags)):
        for key, values in rows.items():
            table.add_row(f"{section}.{key}", *[_fmt(v) for v in values])
    console.print(table)


@app.command("metric")
def metric(run_id: str, key: str, json: bool = JsonOpt) -> None:
    """Every point of one metric of a run."""
    history = get_client().runs.metric_history(run_id, key)
    rows = [{"step": s, "value": v, "timestamp": t} for s, v, t in zip(history.steps, history.values, history.timestamps, strict=True)]
    emit(to_jsonable(history) if json else rows, json=json, columns=["step", "value", "timestamp"])


@app.command("artifacts")
def artifacts(run_id: str, json: bool = JsonOpt) -> None:
    """List a run's artifacts."""
    emit(to_jsonable(get_client().runs.list_artifacts(run_id)), json=json, columns=["name", "media_type", "size", "sha256", "created_at"])


@app.command("artifact")
def artifact(run_id: str, name: str, output: Path = typer.Option(None, "--output", "-o", help="Write to this file (default: stdout).")) -> None:
    """Print or save one artifact."""
    data = get_client().runs.read_artifact(run_id, name)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        console.print(f"wrote {len(data):,} bytes to {output}")
