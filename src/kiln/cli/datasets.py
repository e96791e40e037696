"""kiln datasets: ingest, inspect, export and remove dataset versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kiln.cli._common import JsonOpt, busy, console, emit, get_client, parse_pairs, print_json
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="Datasets: immutable, versioned Parquet tables.", no_args_is_help=True)


@app.command("ingest")
def ingest(
    name: str = typer.Argument(..., help="Dataset name (created on first ingest)."),
    source: str = typer.Argument(..., help="File, folder, glob, s3:// URL, or database URL with --query."),
    format: str = typer.Option(None, "--format", "-f", help="csv, json, jsonl, parquet, excel or sql (default: from the extension)."),
    append: bool = typer.Option(False, "--append", help="New version = previous rows + these rows."),
    delimiter: str = typer.Option(None, help="CSV delimiter (default: sniffed)."),
    header: bool = typer.Option(True, "--header/--no-header", help="CSV has a header row."),
    quote: str = typer.Option(None, help="CSV quote character."),
    escape: str = typer.Option(None, help="CSV escape character."),
    encoding: str = typer.Option("utf-8", help="utf-8, utf-16 or latin-1."),
    null: list[str] = typer.Option(None, "--null", help="A string that means missing (repeatable)."),
    skip: int = typer.Option(0, help="Skip this many lines first."),
    sheet: str = typer.Option(None, help="Excel sheet name."),
    query: str = typer.Option(None, help="SELECT to run against a database URL."),
    type_: list[str] = typer.Option(None, "--type", help="Override a column type: COL=TYPE (repeatable)."),
    description: str = typer.Option(None, help="Describe the dataset."),
    json: bool = JsonOpt,
) -> None:
    """Ingest a source as a new dataset version; nothing is visible until it is complete."""
    client = get_client()
    options: dict[str, Any] = dict(delimiter=delimiter, header=header, quote=quote, escape=escape, encoding=encoding, null_values=null or None, skip_rows=skip, sheet=sheet, query=query, types=parse_pairs(type_, option="--type", example="zip=varchar"), description=description)
    with busy(f"ingesting {name}"):
        version = client.datasets.ingest(name, source, append=append, format=format, **options)
    if json:
        emit(version, json=True)
    else:
        console.print(f"[green]{version.name}@{version.version}[/green]: {version.row_count:,} rows, {len(version.columns)} columns, {version.byte_size:,} bytes in {len(version.files)} files")


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List datasets with their latest version."""
    emit(get_client().datasets.list(), json=json, columns=["name", "latest_version", "versions", "row_count", "byte_size", "created_at", "description"])


@app.command("show")
def show(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), json: bool = JsonOpt) -> None:
    """Show one version: schema, size, files, source and lineage."""
    version = get_client().datasets.get(ref)
    if json:
        emit(version, json=True)
        return
    emit({k: v for k, v in version.model_dump().items() if k not in ("columns", "files")}, json=False, title=f"{version.name}@{version.version}")
    emit([c.model_dump() for c in version.columns], json=False, title="columns")
    emit([f.model_dump() for f in version.files], json=False, title="files")


@app.command("verify")
def verify(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), json: bool = JsonOpt) -> None:
    """Check that a version's files still match their recorded sha256 (exit 1 when not)."""
    version = get_client().datasets.verify(ref)
    if json:
        print_json({"ref": version.ref, "files": len(version.files), "ok": True})
    else:
        console.print(f"{version.ref}: {len(version.files)} file(s) match their sha256", markup=False)


@app.command("head")
def head(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), n: int = typer.Option(10, "-n", min=0, max=100_000), json: bool = JsonOpt) -> None:
    """Print the first rows."""
    table = get_client().datasets.head(ref, n=n)
    if json:
        print_json(table.to_pylist())
    else:
        emit(table.to_pylist(), json=False, columns=table.schema.names)


@app.command("versions")
def versions(name: str, json: bool = JsonOpt) -> None:
    """List the versions of a dataset."""
    rows = [v.model_dump() | {"columns": len(v.columns), "files": len(v.files), "parents": ", ".join(v.lineage.get("parents", []))} for v in get_client().datasets.versions(name)]
    emit(rows, json=json, columns=None if json else ["version", "created_at", "created_by", "row_count", "byte_size", "columns", "files", "parents"])


@app.command("export")
def export(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), dest: Path = typer.Argument(None, help="File to write."), format: str = typer.Option(None, "--format", "-f", help="csv, parquet or jsonl (default: from DEST's extension)."), bundle: Path = typer.Option(None, "--bundle", help="Instead: write NAME with every version (NAME@V: that version), schema, source, lineage and checksums to this bundle file (see `kiln datasets import`)."), json: bool = JsonOpt) -> None:
    """Write a version to a file, or a whole dataset to a bundle with --bundle."""
    if (dest is None) == (bundle is None):
        raise InvalidArgument("give DEST (a file for one version) or --bundle FILE (the whole dataset), not both")
    with busy(f"exporting {ref}"):
        path = get_client().datasets.export_bundle(ref, bundle) if bundle is not None else get_client().datasets.export(ref, dest, format=format)
    if json:
        print_json({"path": str(path)})
    else:
        console.print(f"wrote {path}", markup=False)


@app.command("rm")
def rm(ref: str = typer.Argument(..., help="NAME (every version) or NAME@VERSION"), yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."), json: bool = JsonOpt) -> None:
    """Delete a version, or a whole dataset; its files go at the next `kiln gc`."""
    if not yes and "@" not in ref and not json:
        typer.confirm(f"delete every version of {ref!r}?", abort=True)
    removed = get_client().datasets.delete(ref)
    if json:
        print_json({"name": ref.split("@")[0], "deleted_versions": removed})
    else:
        console.print(f"deleted {ref.split('@')[0]} versions {', '.join(map(str, removed))}")


@app.command("import")
def import_bundle(bundle: Path = typer.Argument(..., help="A bundle written by `kiln datasets export NAME --bundle FILE`."), name: str = typer.Option(None, "--name", help="Dataset name here (default: the exported name)."), json: bool = JsonOpt) -> None:
    """Import a bundle: every file's sha256 is checked before anything is written."""
    with busy(f"importing {bundle.name}"):
        versions = get_client().datasets.import_bundle(bundle, name=name)
    if json:
        emit(versions, json=True)
    else:
        console.print(f"[green]{versions[-1].name}[/green]: imported versions {', '.join(str(v.version) for v in versions)} ({versions[-1].row_count:,} rows in the latest)")
