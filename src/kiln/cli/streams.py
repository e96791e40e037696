"""kiln streams: durable record logs, consumers, and flushes into datasets."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
import typer

from kiln.cli._common import JsonOpt, console, emit, fail, get_client, parse_pairs, print_json
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="Streams (Kinesis): durable record logs, consumers, flushes into datasets.", no_args_is_help=True)

_STREAM_COLUMNS = ["name", "dataset", "last_sequence_number", "flushed_sequence_number", "pending", "records", "source", "follow", "created_at"]
_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_UNITS_B = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def _amount(text: str | None, units: dict[str, int], *, option: str, example: str) -> float | None:
    """'7d' -> 604800, '512MB' -> 536870912 (binary units), '90' -> 90."""
    if text is None:
        return None
    got = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if got is None or got.group(2).lower() not in units:
        raise InvalidArgument(f"{option} {text!r}: use a number with an optional unit, like {example}")
    return float(got.group(1)) * units[got.group(2).lower()]


def _retention(retention: str | None, retention_bytes: str | None) -> tuple[float | None, int | None]:
    seconds = _amount(retention, _UNITS_S, option="--retention", example="7d, 12h, 30m or 3600")
    size = _amount(retention_bytes, _UNITS_B, option="--retention-bytes", example="512MB, 2GB or 0 (no size bound)")
    return seconds, None if size is None else int(size)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Stream name."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset to flush into (default: the stream's name)."),
    column: list[str] = typer.Option(None, "--column", help="Declare the schema: COLUMN=TYPE, repeatable (string, int64, double, bool, timestamp, date, json). Default: the dataset's, or inferred."),
    source: str = typer.Option(None, "--source", help="Pull from a NATS JetStream subject: nats://host:port/subject."),
    follow: bool = typer.Option(False, "--follow", help="With --source: the server pulls it continuously (see `kiln streams follow`)."),
    flush_rows: int = typer.Option(10_000, "--flush-rows", help="Flush once this many records are pending."),
    flush_interval: float = typer.Option(60.0, "--flush-interval", help="Flush once the oldest pending record is this many seconds old."),
    retention: str = typer.Option("7d", "--retention", help="Trim records this old (7d, 12h, 3600) once flushed and committed by every consumer."),
    retention_bytes: str = typer.Option("0", "--retention-bytes", help="Trim the oldest records (flushed and committed) while the log is bigger than this (512MB, 2GB); 0: no size bound."),
    description: str = typer.Option("", help="Describe the stream."),
    json: bool = JsonOpt,
) -> None:
    """Create a stream."""
    keep_s, keep_bytes = _retention(retention, retention_bytes)
    stream = get_client().streams.create(
        name, dataset=dataset, columns=parse_pairs(column, option="--column", example="user=string") or None, source=source, follow=follow,
        flush_rows=flush_rows, flush_interval_s=flush_interval, retention_s=keep_s, retention_bytes=keep_bytes, description=description,
    )
    if json:
        emit(stream, json=True)
    else:
        pulls = f", {'follows' if stream.follow else 'pulls'} {stream.source}" if stream.source else ""
        console.print(f"[green]{stream.name}[/green]: flushes into {stream.dataset} (misfits into {stream.dead_letter_dataset}){pulls}")


@app.command("set")
def set_(
    name: str = typer.Argument(..., help="Stream name."),
    flush_rows: int = typer.Option(None, "--flush-rows", help="Flush once this many records are pending."),
    flush_interval: float = typer.Option(None, "--flush-interval", help="Flush once the oldest pending record is this many seconds old."),
    retention: str = typer.Option(None, "--retention", help="Trim records this old (7d, 12h, 3600) once flushed and committed by every consumer."),
    retention_bytes: str = typer.Option(None, "--retention-bytes", help="Trim the oldest records (flushed and committed) while the log is bigger than this (512MB, 2GB); 0: no size bound."),
    description: str = typer.Option(None, help="Describe the stream."),
    json: bool = JsonOpt,
) -> None:
    """Change a stream's flush and retention settings."""
    keep_s, keep_bytes = _retention(retention, retention_bytes)
    stream = get_client().streams.update(name, flush_rows=flush_rows, flush_interval_s=flush_interval, retention_s=keep_s, retention_bytes=keep_bytes, description=description)
    emit(stream, json=json)


@app.command("follow")
def follow_(name: str = typer.Argument(..., help="Stream name (created with --source nats://...)."), json: bool = JsonOpt) -> None:
    """Have the server pull the stream's source continuously (acked only after commit; backs off on errors)."""
    stream = get_client().streams.follow(name)
    if json:
        emit(stream, json=True)
    else:
        console.print(f"{name}: the server's worker pulls {stream.source} continuously (`kiln streams show {name}` gives its last pull)", highlight=False)


@app.command("unfollow")
def unfollow(name: str = typer.Argument(..., help="Stream name."), json: bool = JsonOpt) -> None:
    """Stop the server's continuous pull of the stream's source (`kiln streams pull` still pulls once)."""
    stream = get_client().streams.unfollow(name)
    if json:
        emit(stream, json=True)
    else:
        console.print(f"{name}: no longer pulled continuously", highlight=False)


@app.command("trim")
def trim(name: str = typer.Argument(..., help="Stream name."), json: bool = JsonOpt) -> None:
    """Trim now the records past retention that are flushed and committed by every consumer."""
    result = get_client().streams.trim(name)
    if json:
        emit(result, json=True)
        return
    line = f"{name}: trimmed {result.trimmed:,} records ({result.trimmed_bytes:,} bytes) up to {result.trimmed_sequence_number}; {result.records:,} kept ({result.bytes:,} bytes)"
    if result.held_by:
        line += f"; held past retention by: {', '.join(result.held_by)}"
    console.print(line, highlight=False)


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List streams."""
    emit(get_client().streams.list(), json=json, columns=_STREAM_COLUMNS)


@app.command("show")
def show(name: str, json: bool = JsonOpt) -> None:
    """Show a stream: its dataset, schema, positions, flush and retention settings, whether it follows its source and its last pull."""
    emit(get_client().streams.get(name), json=json)


@app.command("rm")
def rm(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."), json: bool = JsonOpt) -> None:
    """Delete a stream with its records and consumers (the datasets it wrote stay)."""
    if not yes and not json:
        typer.confirm(f"delete stream {name!r} and every record in it?", abort=True)
    gone = get_client().streams.delete(name)
    if json:
        emit(gone, json=True)
    else:
        console.print(f"deleted stream {gone.name} ({gone.last_sequence_number:,} records)")


def _read_lines(path: str) -> list[Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise InvalidArgument(f"line {i} of {'stdin' if path == '-' else path} is not JSON: {exc}") from None
    return out


@app.command("put")
def put(
    name: str = typer.Argument(..., help="Stream name."),
    source: str = typer.Argument("-", help="JSON Lines file (one object per line), or - for stdin."),
    record: list[str] = typer.Option(None, "--record", "-r", help="A record as JSON (repeatable); replaces SOURCE."),
    batch: int = typer.Option(500, "--batch", min=1, max=10_000, help="Records per request."),
    json: bool = JsonOpt,
) -> None:
    """Append records; each batch is acknowledged once it is committed."""
    if record:
        try:
            records = [orjson.loads(r) for r in record]
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"--record takes a JSON object: {exc}") from None
    else:
        records = _read_lines(source)
    if not records:
        raise InvalidArgument("no records: give JSON Lines on stdin or in a file, or --record '{...}'")
    client = get_client()
    results = [client.streams.put(name, records[i:i + batch]) for i in range(0, len(records), batch)]
    summary = {"stream": name, "count": sum(r.count for r in results), "first_sequence_number": results[0].first_sequence_number, "last_sequence_number": results[-1].last_sequence_number}
    if json:
        print_json(summary)
    else:
        console.print(f"{name}: {summary['count']:,} records acknowledged, sequence numbers {summary['first_sequence_number']}..{summary['last_sequence_number']}")


@app.command("read")
def read(
    name: str = typer.Argument(..., help="Stream name."),
    consumer: str = typer.Option(None, "--consumer", "-c", help="Show this named consumer's next records (claims nothing unless --commit or --claim)."),
    position: str = typer.Option("TRIM_HORIZON", "--position", "-p", help="TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER (a consumer's start when new)."),
    from_: int = typer.Option(None, "--from", help="Sequence number for AT_/AFTER_SEQUENCE_NUMBER."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=10_000),
    commit: bool = typer.Option(False, "--commit", help="With --consumer: consume the batch (claim and commit it)."),
    claim: bool = typer.Option(False, "--claim", help="With --consumer: claim the batch under a lease, to commit later with `kiln streams commit`."),
    json: bool = JsonOpt,
) -> None:
    """Print records from a position, or the next batch of a named consumer.

    With --consumer alone this only looks: nothing is claimed, so a later --commit
    consumes the same records.
    """
    client = get_client()
    if from_ is not None and position.upper() == "TRIM_HORIZON":
        position = "AT_SEQUENCE_NUMBER"
    if (commit or claim) and not consumer:
        fail("--commit and --claim go with --consumer NAME")
    if consumer and not (commit or claim):
        batch = client.streams.peek(name, consumer, position=position, sequence_number=from_, limit=limit)
    else:
        batch = client.streams.read(name, consumer=consumer, position=position, sequence_number=from_, limit=limit)
    committed = client.streams.commit(batch) if commit and batch.lease else None
    if json:
        print_json(batch.model_dump(mode="json") | ({"committed": committed.model_dump(mode="json")} if committed else {}))
        return
    emit([{"sequence_number": r.sequence_number, "time": r.time, "data": r.data} for r in batch.records], json=False, columns=["sequence_number", "time", "data"])
    tail = f"next: {batch.next_sequence_number}, behind: {batch.behind}"
    if batch.lease and not committed:
        tail += f", lease: {batch.lease} (commit with `kiln streams commit {name} --consumer {consumer} --lease {batch.lease}`)"
    if committed:
        tail += f", committed: checkpoint {committed.checkpoint}"
    console.print(tail, highlight=False)


@app.command("commit")
def commit(
    name: str = typer.Argument(..., help="Stream name."),
    consumer: str = typer.Option(..., "--consumer", "-c"),
    lease: str = typer.Option(..., "--lease", help="The lease a consumer read returned."),
    json: bool = JsonOpt,
) -> None:
    """Commit a consumer's batch: its checkpoint moves past it."""
    emit(get_client().streams.commit(name, consumer=consumer, lease=lease), json=json)


@app.command("consumers")
def consumers(name: str, json: bool = JsonOpt) -> None:
    """List a stream's named consumers with their checkpoints and lag."""
    emit(get_client().streams.consumers(name), json=json, columns=["name", "checkpoint", "claimed", "in_flight", "lag", "updated_at"])


@app.command("flush")
def flush(name: str, json: bool = JsonOpt) -> None:
    """Write pending records into the stream's dataset now (misfits into <dataset>-dlq)."""
    result = get_client().streams.flush(name)
    if json:
        emit(result, json=True)
        return
    if result.last_sequence_number is None:
        console.print(f"{name}: nothing to flush (flushed up to {result.flushed_sequence_number})")
        return
    line = f"{name}: records {result.first_sequence_number}..{result.last_sequence_number}: {result.rows:,} into {result.dataset}" + (f"@{result.version}" if result.version else "")
    if result.dead_letter_rows:
        line += f", {result.dead_letter_rows:,} into {result.dead_letter_dataset}@{result.dead_letter_version} (see the reason column)"
    console.print(line, highlight=False)


@app.command("pull")
def pull(
    name: str = typer.Argument(..., help="Stream name (created with --source nats://...)."),
    max_messages: int = typer.Option(1000, "--max", min=1, max=1000, help="Messages to fetch at most."),
    timeout: float = typer.Option(1.0, "--timeout", help="Seconds to wait for messages."),
    json: bool = JsonOpt,
) -> None:
    """Pull once from the stream's NATS source; messages are acked only after commit."""
    result = get_client().streams.pull(name, max_messages=max_messages, timeout_s=timeout)
    if json:
        emit(result, json=True)
    else:
        console.print(f"{name}: fetched {result.fetched}, added {result.added}, duplicates {result.duplicates}, not JSON objects {result.invalid}", highlight=False)
