"""kiln tokens: API tokens with roles."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, console, emit, get_client

app = typer.Typer(help="API tokens with roles viewer / editor / approver / admin.", no_args_is_help=True)


@app.command("create")
def create(name: str = typer.Argument(..., help="A name for the token, e.g. ci-bot."), role: str = typer.Option("viewer", help="viewer, editor, approver (an editor who may approve models) or admin."), json: bool = JsonOpt) -> None:
    """Create a token; its secret is printed once."""
    token = get_client().tokens.create(name, role=role)
    if json:
        emit(token, json=True)
        return
    console.print(f"token [bold]{token.name}[/bold] ({token.role}) created; keep this secret, it is not shown again:")
    console.print(token.token, highlight=False, soft_wrap=True)


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List tokens (never their secrets)."""
    emit(get_client().tokens.list(), json=json, columns=["name", "role", "created_at", "created_by", "revoked"])


@app.command("revoke")
def revoke(name: str, json: bool = JsonOpt) -> None:
    """Revoke a token; requests with it are refused from now on."""
    emit(get_client().tokens.revoke(name), json=json)
