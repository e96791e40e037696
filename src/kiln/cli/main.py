"""The ``kiln`` command: thin over the SDK, which is thin over the services."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from kiln.cli._common import err_console

__all__ = ["app", "run"]

app = typer.Typer(
    name="kiln",
    help="Kiln: a local-first machine-learning platform. Run `kiln doctor` to see what is in use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module under kiln.cli, sub-command name or None to add its commands at the top level)
COMMAND_MODULES: list[tuple[str, str | None]] = [
    ("system", None),
    ("tokens", "tokens"),
    ("audit", "audit"),
    ("datasets", "datasets"),
    ("sql", None),
    ("experiments", "experiments"), ("runs", "runs"), ("models", "models"), ("evaluate", None),
    ("streams", "streams"), ("catalog", "catalog"),
    ("profile", None), ("recipes", "recipes"),
]


def _register() -> None:
    for module_name, group in COMMAND_MODULES:
        module = importlib.import_module(f"kiln.cli.{module_name}")
        if group is None:
            app.registered_commands.extend(module.app.registered_commands)
            app.registered_groups.extend(module.app.registered_groups)
        else:
            app.add_typer(module.app, name=group)


_register()


def run() -> None:
    """Console-script entry: user errors print one line and a non-zero exit, no traceback."""
    from rich.markup import escape

    from kiln.core.errors import KilnError

    try:
        # Standalone: typer itself prints usage errors and honours Exit codes and Abort
        # (it vendors click, so click's own exception classes would not match here).
        app(standalone_mode=True)
    except KilnError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        sys.exit(exc.exit_code)
    except Exception as exc:  # anything unexpected
        if os.environ.get("KILN_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))} (set KILN_DEBUG=1 for a traceback)", highlight=False)
        sys.exit(1)
