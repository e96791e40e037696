"""kiln models: register, list, approve, alias and download model versions."""

from __future__ import annotations

from pathlib import Path

import typer

from kiln.cli._common import JsonOpt, console, emit, get_client, to_jsonable

app = typer.Typer(help="The model registry: versions, approval and aliases.", no_args_is_help=True)

_VERSION_COLS = ["name", "version", "flavor", "status", "aliases", "task", "size", "created_at", "created_by", "trusted_by"]


@app.command("register")
def register(
    name: str = typer.Argument(..., help="Model name (created on first register)."),
    path: Path = typer.Argument(..., help="Package folder: kiln-model.json, an MLflow MLmodel, code/inference.py, an AutoML automl.json or a model file."),
    flavor: str = typer.Option(None, help="sklearn, xgboost, lightgbm, onnx, custom or automl (default: detected)."),
    description: str = typer.Option("", help="Describe this version."),
    run_id: str = typer.Option(None, help="The run that trained it."),
    job: str = typer.Option(None, help="The job that trained it."),
    dataset: list[str] = typer.Option(None, "--dataset", help="A dataset version it was trained on (repeatable)."),
    json: bool = JsonOpt,
) -> None:
    """Register a package folder as the next version of a model."""
    version = get_client().models.register(name, path=path, flavor=flavor, description=description, run_id=run_id, job=job, datasets=dataset or None)
    if json:
        emit(to_jsonable(version), json=True)
    else:
        console.print(f"registered [green]{version.ref}[/green] ({version.flavor}, {len(version.files)} files, {version.status})")


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List registered models."""
    emit(to_jsonable(get_client().models.list()), json=json, columns=["name", "latest_version", "version_count", "aliases", "updated_at", "description"])


@app.command("show")
def show(ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."), json: bool = JsonOpt) -> None:
    """Show a model (NAME) or one version (NAME@VERSION / NAME@ALIAS)."""
    client = get_client()
    obj = client.models.get(ref) if "@" not in ref else client.models.get_version(ref)
    emit(to_jsonable(obj), json=json)


@app.command("versions")
def versions(name: str, json: bool = JsonOpt) -> None:
    """List a model's versions, newest first."""
    emit(to_jsonable(get_client().models.versions(name)), json=json, columns=_VERSION_COLS)


@app.command("approve")
def approve(ref: str, comment: str = typer.Option(None, help="Why."), json: bool = JsonOpt) -> None:
    """Mark a version Approved."""
    version = get_client().models.approve(ref, comment=comment)
    emit(to_jsonable(version), json=json, columns=_VERSION_COLS)


@app.command("reject")
def reject(ref: str, comment: str = typer.Option(None, help="Why."), json: bool = JsonOpt) -> None:
    """Mark a version Rejected."""
    version = get_client().models.reject(ref, comment=comment)
    emit(to_jsonable(version), json=json, columns=_VERSION_COLS)


@app.command("trust")
def trust(
    ref: str,
    revoke: bool = typer.Option(False, "--revoke", help="Take the trust back."),
    comment: str = typer.Option(None, help="Why (kept in the audit trail)."),
    json: bool = JsonOpt,
) -> None:
    """Trust a version's code (a pickle, code/inference.py) to run on the server (admin only)."""
    version = get_client().models.trust(ref, trusted=not revoke, comment=comment)
    emit(to_jsonable(version), json=json, columns=_VERSION_COLS)


@app.command("alias")
def alias(
    name: str,
    alias: str,
    version: int = typer.Argument(None, help="The version the alias points at."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
    json: bool = JsonOpt,
) -> None:
    """Point an alias (e.g. champion) at a version, or remove it with --delete."""
    client = get_client()
    if delete:
        model = client.models.delete_alias(name, alias)
    else:
        if version is None:
            raise typer.BadParameter("give the VERSION the alias points at (or --delete)")
        model = client.models.set_alias(name, alias, version)
    emit(to_jsonable(model), json=json)


@app.command("describe")
def describe(ref: str, description: str, json: bool = JsonOpt) -> None:
    """Set the description of a model (NAME) or a version (NAME@VERSION)."""
    emit(to_jsonable(get_client().models.update(ref, description=description)), json=json)


@app.command("download")
def download(ref: str, dest: Path = typer.Argument(..., help="Folder to write the package into."), json: bool = JsonOpt) -> None:
    """Download a version's package (every file's sha256 is checked)."""
    version = get_client().models.download(ref, dest)
    if json:
        emit(to_jsonable(version), json=True)
    else:
        console.print(f"downloaded [green]{version.ref}[/green] into {dest} ({len(version.files)} files, verified)")
