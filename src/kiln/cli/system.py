"""Top-level commands: doctor, server, gc."""

from __future__ import annotations


import typer
from rich.table import Table

from kiln.cli._common import JsonOpt, console, emit, err_console, fail, get_client

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
    auth: bool = typer.Option(None, "--auth/--no-auth", help="Require API tokens (the default; required off loopback). --no-auth lets every program on this machine in as admin."),
) -> None:
    """Run the REST API (and Studio) server."""
    import uvicorn

    from kiln.core.auth import ensure_local_token, is_loopback
    from kiln.core.config import load_settings
    from kiln.core.errors import KilnError
    from kiln.core.workspace import Workspace
    from kiln.server.app import create_app

    settings = load_settings(host=host, port=port, auth=auth)
    if not is_loopback(settings.host) and not settings.auth:
        fail(f"refusing to bind {settings.host} without auth: start with --auth (and create tokens with `kiln tokens create`), or bind 127.0.0.1")
    ws = Workspace(settings)
    try:
        token_file = ensure_local_token(ws) if settings.auth else None
        app = create_app(ws)
    except KilnError as exc:
        ws.close()
        fail(exc.message)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown}:{settings.port}"
    console.print(f"kiln server on {url} (auth {'on' if settings.auth else 'OFF'})", highlight=False)
    if token_file is not None:
        client_url = url if is_loopback(settings.host) else f"http://127.0.0.1:{settings.port}"
        console.print(
            f"  local admin token: {token_file} (owner-only)\n"
            f"  the CLI and SDK on this machine use it with the same KILN_HOME and no KILN_TOKEN:\n"
            f"      KILN_URL={client_url} kiln datasets ls\n"
            f"      kiln.Client(\"{client_url}\")\n"
            f"  other clients: curl -H \"Authorization: Bearer $(cat {token_file})\" {client_url}/v1/health\n"
            f"  tokens for others: kiln tokens create NAME --role viewer|editor|admin",
            highlight=False, markup=False, soft_wrap=True,
        )
    else:
        err_console.print(
            "[bold red]WARNING: --no-auth: no token is asked for. Any program run by any user of this "
            "machine that sends 'X-Kiln-Client: 1' is an admin here (web pages are still refused). "
            "Drop --no-auth to require the token kiln server writes to KILN_HOME.[/bold red]",
            highlight=False,
        )
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

