"""kiln features: feature groups, records, the online store and point-in-time training sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer

from kiln.cli._common import JsonOpt, busy, console, emit, get_client, parse_pairs
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="Feature store: feature groups, online and offline stores, point-in-time training sets.", no_args_is_help=True)


def _json_arg(value: str, what: str) -> Any:
    """JSON given inline, or ``@file.json`` (a file of JSON, or of JSON lines)."""
    text = value
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not path.is_file():
            raise InvalidArgument(f"{what}: {path} is not a file")
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".jsonl", ".ndjson"):
            try:
                return [orjson.loads(line) for line in text.splitlines() if line.strip()]
            except orjson.JSONDecodeError as exc:
                raise InvalidArgument(f"{what}: {path} is not JSON lines: {exc}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"{what} is not JSON: {exc}") from None


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Feature group name."),
    dataset: str = typer.Option(None, "--dataset", help="DATASET@VERSION whose columns become the features (and which is ingested)."),
    record_id: str = typer.Option(..., "--record-id", help="The column identifying a record."),
    event_time: str = typer.Option(..., "--event-time", help="The column holding each record's time."),
    feature: list[str] = typer.Option(None, "--feature", help="NAME=TYPE, without --dataset (integral, fractional, string, boolean, timestamp, vector; repeatable)."),
    ttl: str = typer.Option(None, "--ttl", help="How long a record stays valid after its event time: 7d, 12h, 30m, seconds."),
    description: str = typer.Option("", help="What the group holds."),
    tag: list[str] = typer.Option(None, "--tag", help="KEY=VALUE (repeatable)."),
    offline_only: bool = typer.Option(False, "--offline-only", help="Keep no online store."),
    no_ingest: bool = typer.Option(False, "--no-ingest", help="With --dataset, take only its schema."),
    json: bool = JsonOpt,
) -> None:
    """Create a feature group (from a dataset's schema, ingesting its rows, or from --feature definitions)."""
    features = [{"name": k, "type": v} for k, v in parse_pairs(feature, option="--feature", example="rate=fractional", shape="NAME=TYPE").items()] or None
    tags = parse_pairs(tag, option="--tag", example="team=risk", shape="KEY=VALUE")
    with busy(f"creating {name}"):
        group = get_client().features.create(name, record_id=record_id, event_time=event_time, features=features, dataset=dataset, description=description,
                                             tags=tags, ttl=ttl, online=not offline_only, ingest=not no_ingest)
    if json:
        emit(group, json=True)
    else:
        console.print(f"[green]{group.name}@{group.version}[/green]: {len(group.features)} features, {group.offline_rows:,} offline rows in {group.offline_files} files")


@app.command("ls")
def ls(json: bool = JsonOpt) -> None:
    """List feature groups."""
    groups = get_client().features.list()
    if json:
        emit(groups, json=True)
        return
    rows = [{"name": g.name, "version": g.version, "record_id": g.record_id, "event_time": g.event_time, "features": len(g.features),
             "ttl_s": g.ttl_s, "online": g.online, "offline_rows": g.offline_rows, "description": g.description} for g in groups]
    emit(rows, json=False)


@app.command("describe")
def describe(ref: str = typer.Argument(..., help="NAME or NAME@VERSION"), json: bool = JsonOpt) -> None:
    """Show a feature group: its features, TTL, stores and size."""
    group = get_client().features.describe(ref)
    if json:
        emit(group, json=True)
        return
    emit({k: v for k, v in group.model_dump().items() if k != "features"}, json=False, title=f"{group.name}@{group.version}")
    emit([f.model_dump() for f in group.features], json=False, title="features")


@app.command("delete")
def delete(name: str, json: bool = JsonOpt) -> None:
    """Delete a feature group (its online records now, its offline files at the next gc)."""
    group = get_client().features.delete(name)
    emit(group, json=True) if json else console.print(f"deleted feature group {group.name}")


@app.command("ingest")
def ingest(name: str, dataset: str = typer.Argument(..., help="DATASET or DATASET@VERSION"), json: bool = JsonOpt) -> None:
    """Ingest a dataset version in bulk: every row offline, the latest per id online."""
    with busy(f"ingesting {dataset} into {name}"):
        result = get_client().features.ingest(name, dataset)
    emit(result, json=True) if json else console.print(f"[green]{name}[/green]: {result.rows:,} rows in {result.files} files, {result.online:,} records online")


@app.command("ingest-stream")
def ingest_stream(name: str, stream: str, consumer: str = typer.Option(None, "--consumer", help="Stream consumer to read as (default features-NAME)."),
                  max_records: int = typer.Option(100_000, "--max-records", help="Stop after this many records."), json: bool = JsonOpt) -> None:
    """Ingest a stream's new records, exactly once (a named consumer; bad records are skipped and counted)."""
    with busy(f"ingesting stream {stream} into {name}"):
        result = get_client().features.ingest_stream(name, stream, consumer=consumer, max_records=max_records)
    if json:
        emit(result, json=True)
        return
    console.print(f"{name}: {result.records:,} records read, {result.written:,} written, {result.rejected:,} rejected, {result.duplicates:,} already written")
    for error in result.errors:
        console.print(f"  [yellow]{error}[/yellow]")


@app.command("put")
def put(name: str, records: str = typer.Argument(..., help='A JSON record or list of records, or @file.json / @file.jsonl.'),
        ttl: str = typer.Option(None, "--ttl", help="TTL of these records online, overriding the group's."), json: bool = JsonOpt) -> None:
    """PutRecord: one record or a batch (checked whole, written whole)."""
    data = _json_arg(records, "records")
    batch = data if isinstance(data, list) and data and not (isinstance(data[0], dict) and "FeatureName" in data[0]) else [data]
    result = get_client().features.put_records(name, batch, ttl=ttl)
    emit(result, json=True) if json else console.print(f"{result.records} records: {result.offline} offline, {result.online} changed online")


@app.command("delete-record")
def delete_record(name: str, record_id: str, event_time: str = typer.Option(..., "--event-time", help="The deletion's time: Unix seconds or ISO-8601 with a zone."),
                  hard: bool = typer.Option(False, "--hard", help="HardDelete: remove the record online (default SoftDelete: features nulled)."), json: bool = JsonOpt) -> None:
    """DeleteRecord: an is_deleted row offline; online, soft or hard (unless the stored record is newer)."""
    result = get_client().features.delete_record(name, record_id, event_time, mode="hard" if hard else "soft")
    emit(result, json=True) if json else console.print(f"deleted {record_id} ({'hard' if hard else 'soft'}): {result.online} changed online")


@app.command("get")
def get(name: str, record_id: str, feature: list[str] = typer.Option(None, "--feature", "-f", help="Only these features (repeatable)."), json: bool = JsonOpt) -> None:
    """GetRecord: the latest live record of an id from the online store."""
    record = get_client().features.get_record(name, record_id, features=feature or None)
    if json:
        emit(record, json=True)
    else:
        emit(record.features, json=False, title=f"{name} {record.record_id}")


@app.command("compact")
def compact(name: str, json: bool = JsonOpt) -> None:
    """Merge each event date's small offline files into one."""
    with busy(f"compacting {name}"):
        result = get_client().features.compact(name)
    emit(result, json=True) if json else console.print(f"{name}: {result.files_before} files -> {result.files_after} ({result.partitions} event dates merged)")


@app.command("rebuild-online")
def rebuild_online(name: str, json: bool = JsonOpt) -> None:
    """Rebuild a group's online store from its offline store (after a 503 that kept the offline rows, or a lost store)."""
    with busy(f"rebuilding the online store of {name}"):
        result = get_client().features.rebuild_online(name)
    emit(result, json=True) if json else console.print(
        f"{name}: {result.ids:,} ids read, {result.online:,} online rows changed ({result.deleted:,} deleted), {result.purged:,} expired rows purged")


@app.command("to-dataset")
def to_dataset(name: str, output: str = typer.Option(..., "--output", "-o", help="Dataset the records become a new version of."),
               n_recent: int = typer.Option(None, "--n-recent", help="Only the N most recent records of each id."),
               as_of: str = typer.Option(None, "--as-of", help="Only records written by then (time travel)."),
               include_deleted: bool = typer.Option(False, "--include-deleted", help="Keep delete markers and what they deleted."),
               start: str = typer.Option(None, "--start"), end: str = typer.Option(None, "--end"), json: bool = JsonOpt) -> None:
    """A feature group's offline records as a new dataset version."""
    with busy(f"reading {name}"):
        version = get_client().features.to_dataset(name, output=output, n_recent=n_recent, as_of=as_of, include_deleted=include_deleted, start=start, end=end)
    emit(version, json=True) if json else console.print(f"[green]{version.name}@{version.version}[/green]: {version.row_count:,} rows")


@app.command("training-set")
def training_set(
    entities: str = typer.Argument(..., help="A dataset (NAME or NAME@VERSION) of entity rows: record ids and a time."),
    feature: list[str] = typer.Option(..., "--feature", "-f", help='GROUP:FEATURE, GROUP@V:FEATURE or GROUP:* (repeatable).'),
    output: str = typer.Option("training-set", "--output", "-o", help="Dataset the result becomes a new version of."),
    event_time_column: str = typer.Option("event_time", "--event-time-column", help="The entity rows' time column."),
    as_of: str = typer.Option(None, "--as-of", help="Only records written by then (time travel)."),
    include_deleted: bool = typer.Option(False, "--include-deleted", help="Skip delete markers: deleted records still count."),
    start: str = typer.Option(None, "--start", help="Only records with an event time at or after this."),
    end: str = typer.Option(None, "--end", help="Only records with an event time before this."),
    json: bool = JsonOpt,
) -> None:
    """Build a point-in-time correct training set as a new dataset version."""
    with busy(f"building {output}"):
        version = get_client().features.training_set(entities, features=feature, output=output, event_time_column=event_time_column,
                                                     as_of=as_of, include_deleted=include_deleted, start=start, end=end)
    emit(version, json=True) if json else console.print(f"[green]{version.name}@{version.version}[/green]: {version.row_count:,} rows, {len(version.columns)} columns")
