"""kiln profile: the data quality and insights report of a dataset version, stored with it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import typer

from kiln.cli._common import JsonOpt, busy, console, emit, get_client, print_json
from kiln.core.errors import InvalidArgument

app = typer.Typer()

_ACTIONS = ("show", "ls")


@app.command("profile")
def profile(
    name: str = typer.Argument(..., metavar="NAME[@V]|show|ls", help="Dataset version to profile (NAME or NAME@VERSION); or `show` / `ls` followed by one."),
    ref: str = typer.Argument(None, metavar="DATASET", show_default=False, help="After `show`: the version whose alerts to print; after `ls`: the dataset whose profiles to list."),
    target: str = typer.Option(None, "--target", "-t", help="A column to predict: adds insights (problem type, feature power, possible leakage)."),
    output: Path = typer.Option(None, "--output", "-o", help="Also write the HTML and JSON reports into this folder."),
    show: bool = typer.Option(False, "--show", help="Print the alerts too."),
    json: bool = JsonOpt,
) -> None:
    """Profile a dataset version (one streaming pass); the HTML and JSON reports are stored with it.

    `kiln profile show NAME` (or NAME@VERSION) prints the alerts of the version's latest
    profile; `kiln profile ls NAME` lists the profiles of every version.
    """
    client = get_client()
    if ref is not None:
        if name not in _ACTIONS:
            raise InvalidArgument(f"unexpected argument {ref!r}: use `kiln profile NAME[@V]`, `kiln profile show NAME[@V]` or `kiln profile ls NAME`")
        if target is not None or output is not None:
            raise InvalidArgument(f"--target and --output make a new profile: use `kiln profile {ref} --target COL`")
        if name == "ls":
            emit(client.datasets.profiles(ref), json=json, columns=["dataset", "version", "target", "rows", "columns", "alerts", "created_at", "created_by", "id"])
        else:
            _show(client, ref, json=json)
        return
    if output is not None and output.exists() and not output.is_dir():
        raise InvalidArgument(f"--output {output} is a file; give a folder")
    with busy(f"profiling {name}" + (f" for {target}" if target else "")):
        info = client.datasets.profile(name, target=target)
    html_path, json_path = _place(client, info, output)
    if json:
        print_json(info.model_dump() | {"html_path": str(html_path), "json_path": str(json_path) if json_path else None})
        return
    note = f", target {info.target}" if info.target else ""
    console.print(f"[green]{info.ref}[/green]: {info.rows:,} rows, {info.columns} columns, {info.alerts} alerts{note}", highlight=False)
    console.print(f"report: {html_path}", highlight=False, soft_wrap=True)
    if json_path is not None:
        console.print(f"json:   {json_path}", highlight=False, soft_wrap=True)
    if show:
        _alerts(client.datasets.profile_report(info.ref, format="json"))


def _place(client: Any, info: Any, output: Path | None) -> tuple[Path, Path | None]:
    """Where the HTML can be opened: the store's own file when it is a local folder, else a copy."""
    ws = client.workspace
    html_path = json_path = None
    if ws is not None and ws.store.capabilities.local_paths:
        html_path, json_path = Path(ws.store.path(info.html_key)), Path(ws.store.path(info.json_key))
    if output is not None:
        import orjson

        output.mkdir(parents=True, exist_ok=True)
        stem = f"{info.dataset}-v{info.version}-profile"
        copy_html, copy_json = output / f"{stem}.html", output / f"{stem}.json"
        copy_html.write_bytes(client.datasets.profile_report(info.ref, format="html"))
        copy_json.write_bytes(orjson.dumps(client.datasets.profile_report(info.ref, format="json"), option=orjson.OPT_INDENT_2))
        html_path, json_path = html_path or copy_html.absolute(), json_path or copy_json.absolute()
    if html_path is None:
        fd, tmp = tempfile.mkstemp(prefix=f"kiln-profile-{info.dataset}-v{info.version}-", suffix=".html")
        with open(fd, "wb") as fh:
            fh.write(client.datasets.profile_report(info.ref, format="html"))
        html_path = Path(tmp)
    return html_path, json_path


def _show(client: Any, ref: str, *, json: bool) -> None:
    doc = client.datasets.profile_report(ref, format="json")
    if json:
        print_json({"profile": doc.get("title"), "created_at": doc.get("created_at"), "overview": doc.get("overview"), "alerts": doc.get("alerts", []), "insights": doc.get("insights")})
        return
    overview = doc.get("overview", {})
    console.print(f"[green]{doc.get('title')}[/green] profiled {doc.get('created_at')}: {overview.get('rows', 0):,} rows, {overview.get('columns', 0)} columns", highlight=False)
    _alerts(doc)


def _alerts(doc: dict[str, Any]) -> None:
    alerts = doc.get("alerts", [])
    rows = [{"kind": a["kind"], "columns": ", ".join(a["columns"]), "message": a["message"]} for a in alerts]
    emit(rows, json=False, columns=["kind", "columns", "message"], title=f"{len(alerts)} alerts")
