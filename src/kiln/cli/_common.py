"""What every CLI command shares: the client, output in tables or JSON, errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["JsonOpt", "busy", "console", "err_console", "get_client", "emit", "fail"]

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")

_client: Any = None


@contextlib.contextmanager
def busy(what: str) -> Iterator[None]:
    """Progress on stderr while a long call runs, on a terminal only (never in --json
    output or a pipe): a bar with the fraction done once the service reports one (see
    :mod:`kiln.core.progress`), a spinner with the time elapsed until then, and all
    along where the total is unknown (or the call runs on a server)."""
    if not err_console.is_terminal:
        yield
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from kiln.core.progress import reporting

    with Progress(SpinnerColumn(), TextColumn(what), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(what, total=None)
        with reporting(lambda fraction: bar.update(task, total=1.0, completed=fraction)):
            yield


def get_client() -> Any:
    """The SDK client the CLI runs on: in-process, or a server when KILN_URL is set."""
    global _client
    if _client is None:
        from kiln.sdk.client import Client

        _client = Client()
    return _client


def _plain(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def print_json(obj: Any) -> None:
    """JSON for scripts: times (``*_at``, ``*time``, ``timestamp`` in epoch seconds) as ISO-8601 UTC."""
    sys.stdout.write(orjson.dumps(_iso(_plain(obj)), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str).decode() + "\n")


def _is_time(key: Any) -> bool:
    return isinstance(key, str) and (key.endswith(("_at", "time")) or key in ("timestamp", "timestamps"))


def _iso(obj: Any, key: Any = None) -> Any:
    if isinstance(obj, dict):
        return {k: _iso(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_iso(v, key) for v in obj]
    if _is_time(key) and isinstance(obj, int | float) and not isinstance(obj, bool) and obj > 1e9:
        return dt.datetime.fromtimestamp(obj, tz=dt.UTC).isoformat().replace("+00:00", "Z")
    return obj


def _cell(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and key.endswith(("_at", "time")) and value > 1e9:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        text = orjson.dumps(value, default=str).decode()
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


# Columns whose values are typed back (ids, names, references): never cut, never wrapped.
_WHOLE = ("id", "name", "run_id", "experiment", "experiment_name", "ref", "model", "dataset")


def whole_column(table: Table, header: str, values: Iterable[str]) -> None:
    """Add a column that keeps each value whole on one line, however narrow the terminal
    (the other columns give way): an id or a name cut at 80 columns cannot be typed back."""
    width = max([len(header), *(len(v) for v in values)])
    table.add_column(Text(header), no_wrap=True, min_width=width, overflow="fold")


def emit(obj: Any, *, json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print a model, a list of models or rows: a rich table, or JSON with --json."""
    if json:
        print_json(obj)
        return
    data = _plain(obj)
    if isinstance(data, dict):
        table = Table(title=title, show_header=False, box=None)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in data.items():
            if columns is None or key in columns:
                table.add_row(Text(key), Text(_cell(value, key)))
        console.print(table)
        return
    rows: Iterable[dict[str, Any]] = data or []
    rows = list(rows)
    if not rows:
        console.print("[dim](none)[/dim]")
        return
    cols = list(columns or rows[0].keys())
    table = Table(title=title)
    cells = [[_cell(row.get(c), c) for c in cols] for row in rows]
    for i, col in enumerate(cols):
        if col in _WHOLE:
            whole_column(table, col, (r[i] for r in cells))
        else:
            table.add_column(Text(col), overflow="fold")
    for row_cells in cells:
        # Text, not str: data is shown as it is, never read as rich markup ('[/x]' raised).
        table.add_row(*(Text(c) for c in row_cells))
    console.print(table, crop=False)  # ids and names too wide for the terminal run past it, whole


def parse_pairs(pairs: list[str] | None, *, option: str, example: str, shape: str = "COLUMN=TYPE") -> dict[str, str]:
    """``["a=int", "b=varchar"]`` -> ``{"a": "int", "b": "varchar"}`` for options like --type."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        col, sep, typ = pair.partition("=")
        if not sep or not col or not typ:
            from kiln.core.errors import InvalidArgument

            raise InvalidArgument(f"{option} takes {shape} (e.g. {example}), got {pair!r}")
        out[col] = typ
    return out


def to_jsonable(value: Any) -> Any:
    """Tracking's JSON view of a value (NaN and infinities as strings); imported lazily
    so that `kiln --help` does not load the tracking stage."""
    from kiln.tracking._models import to_jsonable as convert

    return convert(value)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)
