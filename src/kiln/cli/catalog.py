"""kiln catalog: real public datasets that ship offline, imported as Kiln datasets."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, console, emit, get_client

app = typer.Typer(help="The offline catalog of public datasets (nothing is downloaded).", no_args_is_help=True)


@app.command("ls")
def ls(available: bool = typer.Option(False, "--available", help="Only entries whose package is installed."), json: bool = JsonOpt) -> None:
    """List catalog entries; those whose package is missing say what to install."""
    entries = get_client().catalog.list(available=True if available else None)
    if json:
        emit(entries, json=True)
        return
    rows = [e.model_dump() | {"status": "available" if e.available else f"needs: {e.install}"} for e in entries]
    emit(rows, json=False, columns=["id", "rows", "columns", "task", "package", "status", "title"])


@app.command("show")
def show(entry_id: str = typer.Argument(..., help="Catalog entry id, e.g. sklearn-iris."), json: bool = JsonOpt) -> None:
    """Describe one entry: description, size, task, license and source."""
    emit(get_client().catalog.get(entry_id), json=json)


@app.command("import")
def import_(
    entry_id: str = typer.Argument(..., help="Catalog entry id, e.g. sklearn-iris."),
    name: str = typer.Option(None, "--name", help="Dataset name (default: the entry's name)."),
    json: bool = JsonOpt,
) -> None:
    """Make a catalog entry a Kiln dataset; its source and lineage name the entry."""
    version = get_client().catalog.import_(entry_id, name=name)
    if json:
        emit(version, json=True)
    else:
        console.print(f"[green]{version.name}@{version.version}[/green]: {version.row_count:,} rows, {len(version.columns)} columns from catalog entry {entry_id}")
