"""kiln experiments: named groups of runs."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, emit, get_client, to_jsonable

app = typer.Typer(help="Experiments: named groups of runs.", no_args_is_help=True)


@app.command("create")
def create(name: str, description: str = typer.Option("", help="What the experiment is about."), json: bool = JsonOpt) -> None:
    """Create an experiment (a run also creates its experiment on first use)."""
    emit(to_jsonable(get_client().experiments.create(name, description=description)), json=json)


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List experiments with their run counts."""
    rows = to_jsonable(get_client().experiments.list())
    emit(rows, json=json, columns=["name", "run_count", "description", "created_at", "created_by"])


@app.command("show")
def show(name: str, json: bool = JsonOpt) -> None:
    """Show one experiment."""
    emit(to_jsonable(get_client().experiments.get(name)), json=json)
