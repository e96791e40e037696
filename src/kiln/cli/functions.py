"""kiln functions: Python handlers called with JSON or mapped over datasets (AWS Lambda's equivalent)."""

from __future__ import annotations

import sys
from pathlib import Path
import orjson
import typer
from rich.markup import escape

from kiln.cli._common import JsonOpt, console, emit, err_console, get_client, parse_pairs, print_json

app = typer.Typer(help="Functions (Lambda): Python handlers called with JSON, or mapped over a dataset into a new version.", no_args_is_help=True)

_COLS = ["name", "version", "handler", "timeout_s", "memory_mb", "updated_at", "description"]


def _env(pairs: list[str] | None) -> dict[str, str] | None:
    return parse_pairs(pairs, option="--env", example="MODE=fast", shape="KEY=VALUE") if pairs else None


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The function's name."),
    handler: str = typer.Option(..., "--handler", help="MODULE:FUNCTION in the code folder (app:handler, pkg.mod:handler)."),
    code: Path = typer.Option(..., "--code", help="The folder of code, packed and uploaded."),
    timeout: float = typer.Option(30.0, "--timeout", help="Time limit of one call, in seconds (at most 900)."),
    memory: int = typer.Option(1024, "--memory", help="Memory limit of the worker process, in MB."),
    env: list[str] = typer.Option(None, "--env", help="KEY=VALUE in the handler's environment; repeatable."),
    description: str = typer.Option("", "--description", help="A line for people."),
    json: bool = JsonOpt,
) -> None:
    """Create a function from a folder of code and a handler, called handler(event, context)."""
    fn = get_client().functions.create(
        name, handler=handler, code=code, timeout_s=timeout, memory_mb=memory, environment=_env(env) or {}, description=description,
    )
    if json:
        emit(fn, json=True)
    else:
        console.print(f"function {fn.name} version {fn.version} created ({fn.handler})", markup=False)


@app.command("update")
def update(
    name: str = typer.Argument(..., help="The function's name."),
    handler: str = typer.Option(None, "--handler", help="A new MODULE:FUNCTION."),
    code: Path = typer.Option(None, "--code", help="A new folder of code."),
    timeout: float = typer.Option(None, "--timeout", help="A new time limit, in seconds."),
    memory: int = typer.Option(None, "--memory", help="A new memory limit, in MB."),
    env: list[str] = typer.Option(None, "--env", help="KEY=VALUE; the environment is replaced by the ones given."),
    description: str = typer.Option(None, "--description", help="A new description (alone, it makes no new version)."),
    json: bool = JsonOpt,
) -> None:
    """Update a function: new code, handler, limits or environment make a new version."""
    fn = get_client().functions.update(
        name, handler=handler, code=code, timeout_s=timeout, memory_mb=memory, environment=_env(env), description=description,
    )
    if json:
        emit(fn, json=True)
    else:
        console.print(f"function {fn.name} is at version {fn.version}", markup=False)


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List functions, each at its latest version."""
    emit(get_client().functions.list(), json=json, columns=_COLS)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="NAME (latest version) or NAME@VERSION."), json: bool = JsonOpt) -> None:
    """Show a function: its handler, code, limits, environment and versions."""
    emit(get_client().functions.get(name), json=json)


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="The function's name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    json: bool = JsonOpt,
) -> None:
    """Delete a function and every version of it."""
    if not yes and not json:
        typer.confirm(f"delete function {name!r} and every version of it?", abort=True)
    removed = get_client().functions.delete(name)
    if json:
        print_json({"name": name, "deleted_versions": removed})
    else:
        console.print(f"deleted function {name} versions {', '.join(map(str, removed))}", markup=False)


@app.command("invoke")
def invoke(
    name: str = typer.Argument(..., help="NAME (latest version) or NAME@VERSION."),
    payload: str = typer.Option(None, "--payload", help="The event, as JSON text."),
    payload_file: Path = typer.Option(None, "--payload-file", help="A file holding the event as JSON ('-' reads stdin)."),
) -> None:
    """Call a function with a JSON event and print its JSON result.

    When the handler raises, its traceback is printed and the exit code is non-zero.
    """
    from kiln.core.errors import FunctionError, InvalidArgument

    if payload is not None and payload_file is not None:
        raise InvalidArgument("give --payload or --payload-file, not both")
    text = payload
    if payload_file is not None:
        text = sys.stdin.read() if str(payload_file) == "-" else payload_file.read_text(encoding="utf-8")
    try:
        event = orjson.loads(text) if text is not None and text.strip() else None
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"the payload is not JSON: {exc}") from None
    try:
        result = get_client().functions.invoke(name, event)
    except FunctionError as exc:
        trace = str(exc.details.get("traceback") or "").rstrip()
        if trace:
            sys.stderr.write(trace + "\n")
        err_console.print(f"[red]function error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command("map")
def map_(
    name: str = typer.Argument(..., help="NAME (latest version) or NAME@VERSION."),
    dataset: str = typer.Option(..., "--dataset", help="The dataset version whose rows are the events (NAME@VERSION)."),
    output: str = typer.Option(..., "--output", help="The dataset the results become a new version of."),
    batch_size: int = typer.Option(1000, "--batch-size", help="Rows sent to the worker at a time."),
    job_name: str = typer.Option(None, "--name", help="The job's name (default: generated)."),
    max_run: float = typer.Option(None, "--max-run", help="Time limit of the whole job, in seconds."),
    detach: bool = typer.Option(False, "--detach", help="Return at once with the job's name."),
    json: bool = JsonOpt,
) -> None:
    """Map a function over a dataset's rows into a new dataset version, as a job (follows its log)."""
    from kiln.cli.jobs import finish

    job = get_client().functions.map(name, dataset=dataset, output=output, batch_size=batch_size, job_name=job_name, max_run_s=max_run, wait=False)
    finish(job, detach=detach, json=json)
