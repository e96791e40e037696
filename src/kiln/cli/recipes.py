"""kiln recipes: versioned data-prep recipes that preview, apply into new dataset versions and export."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kiln.cli._common import JsonOpt, busy, console, emit, get_client, print_json
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="Recipes: ordered, typed data-prep steps with fitted state, previews and export.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Recipe name (a new version when the content changed)."),
    file: str = typer.Argument(..., help="The recipe as a JSON or YAML file ('-' reads stdin)."),
    description: str = typer.Option(None, help="Describe this version."),
    json: bool = JsonOpt,
) -> None:
    """Store a recipe (checked first: unknown ops, params and types fail naming the step)."""
    if file == "-":
        text = sys.stdin.read()
    else:
        path = Path(file)
        if not path.is_file():
            raise InvalidArgument(f"recipe file {file!r} does not exist (give a .json or .yaml file)")
        if path.stat().st_size > (1 << 20):
            raise InvalidArgument(f"recipe file {file!r} is larger than 1 MB")
        text = path.read_text(encoding="utf-8", errors="replace")
    version = get_client().recipes.create(name, text, description=description)
    if json:
        emit(version, json=True)
    elif version.created:
        console.print(f"[green]{version.ref}[/green]: {len(version.steps)} steps" + (" (some learn from data)" if version.fitted else ""), highlight=False)
    else:
        console.print(f"{version.ref} unchanged: the content equals the latest version", highlight=False)


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List recipes with their latest version."""
    emit(get_client().recipes.list(), json=json, columns=["name", "latest_version", "updated_at", "created_by", "description"])


@app.command("show")
def show(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), json: bool = JsonOpt) -> None:
    """Show one version and its steps."""
    version = get_client().recipes.get(ref)
    if json:
        emit(version, json=True)
        return
    emit({k: v for k, v in version.model_dump().items() if k not in ("steps", "created")}, json=False, title=version.ref)
    emit([{"step": i + 1, "op": s["op"], "params": s.get("params", {}), "when": s.get("when")} for i, s in enumerate(version.steps)], json=False, title="steps")


@app.command("versions")
def versions(name: str = typer.Argument(..., help="Recipe name."), json: bool = JsonOpt) -> None:
    """List the versions of a recipe."""
    rows = get_client().recipes.versions(name)
    if json:
        emit(rows, json=True)
        return
    emit([v.model_dump() | {"steps": len(v.steps), "ops": ", ".join(s["op"] for s in v.steps)} for v in rows], json=False, columns=["version", "created_at", "created_by", "steps", "ops", "description"])


@app.command("preview")
def preview(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    dataset: str = typer.Argument(..., help="Dataset to try it on: NAME or NAME@VERSION."),
    n: int = typer.Option(20, "-n", min=0, max=1000, help="Output rows to show."),
    sample_rows: int = typer.Option(10_000, "--sample-rows", min=1, max=100_000, help="Input rows to fit and apply on (read from the start)."),
    json: bool = JsonOpt,
) -> None:
    """Run the recipe on the first rows of a dataset and show each step's effect and the result."""
    result = get_client().recipes.preview(ref, dataset, n=n, sample_rows=sample_rows)
    if json:
        emit(result, json=True)
        return
    console.print(f"{result.recipe} on the first {result.sample_rows:,} rows of {result.dataset}", highlight=False)
    emit([{"step": s.index + 1, "op": s.op, "rows": s.rows, "columns": len(s.columns)} for s in result.steps], json=False)
    fit = max(4, console.width // 12)  # a rich table of 30 one-hot columns is unreadable
    shown = result.columns[:fit]
    emit(result.rows, json=False, columns=shown)
    if len(result.columns) > len(shown):
        console.print(f"[dim]{len(result.columns) - len(shown)} more columns: {', '.join(result.columns[len(shown):])} (--json shows them all)[/dim]", highlight=False)


@app.command("apply")
def apply(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    dataset: str = typer.Argument(..., help="Input dataset: NAME or NAME@VERSION."),
    output: str = typer.Option(..., "--output", "-o", help="Dataset that receives the result as a new version."),
    description: str = typer.Option(None, help="Describe the output dataset."),
    json: bool = JsonOpt,
) -> None:
    """Fit on a dataset, apply, and write a new dataset version whose lineage names both."""
    with busy(f"applying {ref} to {dataset}"):
        result = get_client().recipes.apply(ref, dataset, output=output, description=description)
    if json:
        emit(result, json=True)
    else:
        console.print(f"[green]{result.output.ref}[/green]: {result.output.row_count:,} rows, {len(result.output.columns)} columns from {result.input} with {result.recipe} (fit {result.fit.id})", highlight=False)


@app.command("export")
def export(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    to: str = typer.Option("python", "--to", help="What to export to: python."),
    engine: str = typer.Option("polars", "--engine", help="polars or pandas."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Fit on this dataset (needed when steps learn from data)."),
    out: Path = typer.Option(None, "--output", "-o", help="Write the script here (default: print it)."),
    json: bool = JsonOpt,
) -> None:
    """Write a standalone Python script that reproduces `kiln recipes apply`."""
    script = get_client().recipes.export(ref, to=to, engine=engine, dataset=dataset)
    if out is None:
        if json:
            print_json({"script": script})
        else:
            sys.stdout.write(script)
        return
    if out.is_dir():
        raise InvalidArgument(f"{out} is a folder; give a file path")
    out.write_text(script)
    if json:
        print_json({"path": str(out)})
    else:
        console.print(f"wrote {out}", highlight=False)


@app.command("fits")
def fits(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), json: bool = JsonOpt) -> None:
    """List the stored fitted states (one per apply)."""
    emit(get_client().recipes.fits(ref), json=json, columns=["id", "recipe_version", "dataset", "dataset_version", "output", "rows_in", "rows_out", "created_at"])


@app.command("ops")
def ops(json: bool = JsonOpt) -> None:
    """List the ops a step may use."""
    rows = [{"op": o.name, "family": o.family, "learns": o.fitted, "params": ", ".join(p["name"] for p in o.params), "doc": o.doc.splitlines()[0] if o.doc else ""} for o in get_client().recipes.ops()]
    emit(rows, json=json)
