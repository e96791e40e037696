"""kiln audit: the MAC-chained, anchored trail of every mutation."""

from __future__ import annotations

import datetime as dt

import typer

from kiln.cli._common import JsonOpt, console, emit, fail, get_client
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="The audit trail: list events, verify the MAC chain and its anchor.", no_args_is_help=True)


def _when(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid time {text!r}: use ISO-8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


@app.command("list")
def list_(
    actor: str = typer.Option(None, help="Only events by this actor (e.g. token:ci or local:alice)."),
    resource: str = typer.Option(None, help="Only this resource, or everything under it (datasets/sales)."),
    action: str = typer.Option(None, help="Only this action (datasets.ingest...)."),
    since: str = typer.Option(None, help="ISO time; only events at or after it."),
    until: str = typer.Option(None, help="ISO time; only events at or before it."),
    limit: int = typer.Option(100, min=1, max=10000),
    json: bool = JsonOpt,
) -> None:
    """List events, newest first."""
    events = get_client().audit.list(actor=actor, resource=resource, action=action, since=_when(since), until=_when(until), limit=limit)
    emit(events, json=json, columns=["seq", "time", "actor", "action", "resource", "outcome", "source", "request_id"])


@app.command("verify")
def verify(json: bool = JsonOpt) -> None:
    """Check the MAC chain and its anchor; exits 1 and names the first bad event on tampering."""
    result = get_client().audit.verify()
    if json:
        emit(result, json=True)
    elif result["ok"]:
        console.print(f"audit trail intact: {result['checked']} events verified")
    if not result["ok"]:
        where = f" at event {result['first_bad_seq']}" if result["first_bad_seq"] is not None else ""
        fail(f"audit trail broken{where}: {result['problem']}", code=1)
