"""The ``kiln`` command: thin over the SDK, which is thin over the services.

Start-up time matters for a CLI: ``kiln --help`` imports no command module, and a
command imports only its own (a lazy group); each module imports the heavy libraries
it needs inside its commands or through the SDK.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

__all__ = ["COMMANDS", "app", "run"]

# name -> (module under kiln.cli, whether the name is a group of commands, one-line help).
# The help is what `kiln --help` lists without importing the module; a test checks it
# against each command's own help, so the two cannot drift.
COMMANDS: dict[str, tuple[str, bool, str]] = {
    "doctor": ("system", False, "Show the settings in use and whether each part answers."),
    "server": ("system", False, "Run the REST API (and Studio) server."),
    "gc": ("system", False, "Remove stored files that no committed resource references."),
    "sql": ("sql", False, "Run SQL over the lake: a table shows the first rows; --format csv|json|jsonl|parquet|arrow writes them all."),
    "evaluate": ("evaluate", False, "Evaluate a model on a dataset (a Kiln dataset reference or a .csv/.parquet file) into a run."),
    "profile": ("profile", False, "Profile a dataset version (one streaming pass); the HTML and JSON reports are stored with it."),
    "tokens": ("tokens", True, "API tokens with roles viewer / editor / approver / admin."),
    "audit": ("audit", True, "The audit trail: list events, verify the MAC chain and its anchor."),
    "datasets": ("datasets", True, "Datasets: immutable, versioned Parquet tables."),
    "experiments": ("experiments", True, "Experiments: named groups of runs."),
    "runs": ("runs", True, "Runs: params, metrics and artifacts of experiments."),
    "models": ("models", True, "The model registry: versions, approval and aliases."),
    "streams": ("streams", True, "Streams (Kinesis): durable record logs, consumers, flushes into datasets."),
    "catalog": ("catalog", True, "The offline catalog of public datasets (nothing is downloaded)."),
    "train": ("train", False, "Train a model as a job: a SageMaker script-mode script or a built-in algorithm."),
    "jobs": ("jobs", True, "Jobs (training, processing, function maps): list, describe, logs, stop."),
    "transform": ("transform", False, "Batch transform: a model's predictions for every record of a dataset, file or folder (SageMaker Batch Transform)."),
    "process": ("process", False, "Run a script or command as a processing job: inputs as files, outputs as new dataset versions."),
    "functions": ("functions", True, "Functions (Lambda): Python handlers called with JSON, or mapped over a dataset into a new version."),
    "recipes": ("recipes", True, "Recipes: ordered, typed data-prep steps with fitted state, previews and export."),
    "serve": ("serve", False, "Serve a model over HTTP in the foreground (SageMaker, MLflow and V2 protocols); Ctrl-C stops."),
    "endpoints": ("endpoints", True, "Real-time endpoints: models served over HTTP, with variants, blue/green updates and data capture."),
    "tune": ("tune", True, "Tune hyperparameters: many training jobs over ranges toward one objective (Bayesian, Random, Grid, Hyperband)."),
    "features": ("features", True, "Feature store: feature groups, online and offline stores, point-in-time training sets."),
    "metrics": ("metrics", True, "Metrics: the platform's and your own data points, queried by name, dimensions, range and period."),
    "alarms": ("alarms", True, "Alarms over metrics (CloudWatch): thresholds, states OK / ALARM / INSUFFICIENT_DATA, webhook and log actions."),
    "logs": ("logs", False, "Print the logs of a job or an endpoint."),
    "monitor": ("monitor", True, "Model Monitor: baselines, drift and data quality of endpoints' captured data, model quality, schedules."),
    "automl": ("automl", False, "Search models for a dataset's target column within a time budget; register the best (an ensemble) as a model that serves raw rows."),
    "automl-jobs": ("automl_jobs", True, "AutoML jobs: list, describe (leaderboard), report (JSON/HTML), candidate scripts."),
}


def load_command(name: str) -> _click.Command:
    """The real click command (or group) for ``name``, importing its module."""
    module_name, is_group, _ = COMMANDS[name]
    module = importlib.import_module(f"kiln.cli.{module_name}")
    group = typer.main.get_group(module.app)
    if is_group:
        group.name = name
        return group
    command = group.get_command(_click.Context(group), name) if hasattr(group, "get_command") else None
    if command is None:  # a module with one command: typer builds the command itself
        command = typer.main.get_command(module.app)
    return command


class _LazyGroup(TyperGroup):
    """Lists commands from :data:`COMMANDS`; imports a command's module only to run it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loaded: dict[str, _click.Command] = {}
        self._listing = False
        # Stand-ins that carry the name and help: typer's "did you mean" reads the keys.
        self.commands = {name: TyperCommand(name=name, help=help_) for name, (_, _, help_) in COMMANDS.items()}

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return self.commands[cmd_name]
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = load_command(cmd_name)
        return self._loaded[cmd_name]

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="kiln",
    cls=_LazyGroup,
    help="Kiln: a local-first machine-learning platform. Run `kiln doctor` to see what is in use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from kiln import __version__

        print(f"kiln {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print Kiln's version and exit.", callback=_print_version, is_eager=True),
) -> None:
    """Kiln: a local-first machine-learning platform. Run `kiln doctor` to see what is in use."""


def run() -> None:
    """Console-script entry: user errors print one line and a non-zero exit, no traceback."""
    from kiln.core.errors import KilnError

    try:
        # Standalone: typer itself prints usage errors and honours Exit codes and Abort
        # (it vendors click, so click's own exception classes would not match here).
        app(standalone_mode=True)
    except KilnError as exc:
        _error("error", exc.message)
        sys.exit(exc.exit_code)
    except Exception as exc:  # anything unexpected
        if os.environ.get("KILN_DEBUG"):
            raise
        _error("internal error", f"{type(exc).__name__}: {exc} (set KILN_DEBUG=1 for a traceback)")
        sys.exit(1)


def _error(kind: str, message: str) -> None:
    from rich.markup import escape

    from kiln.cli._common import err_console

    err_console.print(f"[red]{kind}:[/red] {escape(message)}", highlight=False)
