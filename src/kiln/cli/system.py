"""Top-level commands: doctor, server, gc."""

from __future__ import annotations


import typer
from rich.table import Table

from kiln.cli._common import JsonOpt, console, emit, fail, get_client

app = typer.Typer()


@app.command("doctor")
def doctor(json: bool = JsonOpt) -> None:
    """Show the settings in use and whether each part answers."""
    from kiln.core.doctor import run_checks

    report = run_checks()
    if json:
        emit(report, json=True)
    else:
        table = Table(title="kiln doctor")
        for col in ("part", "backend", "status", "detail"):
            table.add_column(col)
        for check in report["checks"]:
            style = "green" if check["ok"] else "red"
            table.add_row(check["part"], check["backend"], f"[{style}]{'ok' if check['ok'] else 'FAIL'}[/{style}]", check["detail"])
        console.print(table)
        settings = Table(title="settings", show_header=False, box=None)
        for key, value in report["settings"].items():
            settings.add_row(key, str(value))
        console.print(settings)
    if not all(c["ok"] for c in report["checks"]):
        raise typer.Exit(1)


@app.command("server")
def server(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1, or KILN_HOST)."),
    port: int = typer.Option(None, help="Port (default 8300, or KILN_PORT)."),
    auth: bool = typer.Option(None, "--auth/--no-auth", help="Require API tokens (required off loopback)."),
) -> None:
    """Run the REST API (and Studio) server."""
    import uvicorn

    from kiln.core.config import load_settings
    from kiln.server.app import create_app, is_loopback

    settings = load_settings(host=host, port=port, auth=auth)
    if not is_loopback(settings.host) and not settings.auth:
        fail(f"refusing to bind {settings.host} without auth: start with --auth (and create tokens with `kiln tokens create`), or bind 127.0.0.1")
    app = create_app(settings=settings)
    console.print(f"kiln server on http://{settings.host}:{settings.port} (auth {'on' if settings.auth else 'off'})")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


@app.command("gc")
def gc(
    grace: float = typer.Option(3600.0, help="Keep unreferenced files younger than this many seconds (in-flight writes)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed."),
    json: bool = JsonOpt,
) -> None:
    """Remove stored files that no committed resource references."""
    report = get_client().audit.gc(grace_s=grace, dry_run=dry_run)
    if json:
        emit(report, json=True)
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {len(report.removed)} files ({report.bytes_freed} bytes); kept {report.kept_recent} recent unreferenced files")

