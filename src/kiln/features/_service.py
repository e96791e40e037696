"""Feature groups: definitions and versions, ingestion (bulk, PutRecord, DeleteRecord),
online reads (GetRecord, BatchGetRecord), rebuilds of the online store and compaction.
The group record and derived features: ``_group``; the online store handle: ``_stores``;
bulk and stream ingestion: ``_ingest``; training sets: ``_training``."""

from __future__ import annotations

import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core._lazy import lazy
from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, Conflict, InvalidArgument, KilnError, NotFound, PermissionDenied, invalid_input
from kiln.core.names import check_name, parse_ref
from kiln.core.progress import Progress
from kiln.core.workspace import Workspace
from kiln.features import _offline as off
from kiln.features import _tables as t
from kiln.features._base import (
    MAX_BATCH,
    RESERVED,
    OnlineRow,
    arrow_type,
    coerce_value,
    feature_type_of,
    parse_duration,
    parse_time,
)
from kiln.features._group import Group, _check_tags, _definitions, _derive, _dumps
from kiln.features._stores import online_store, purge_now_and_then, reads_inline
from kiln.features._models import (
    BatchGetResult,
    CompactResult,
    FeatureDefinition,
    FeatureGroup,
    FeatureRecord,
    IngestResult,
    RebuildResult,
    RecordIdentifier,
    StreamIngestResult,
    WriteResult,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
else:
    duckdb = lazy("duckdb")
    pa = lazy("pyarrow")

__all__ = ["FeatureService", "Group", "online_store", "reads_inline"]

STREAM_LEASE_S = 60.0  # a batch not committed by then (a crash) is read again, and its written rows skipped
_MAX_IDS = 10_000
# Group definitions the online read path uses, for a second at most (GetRecord stays one
# online-store lookup; another process's change is seen within that second).
_DEFINITIONS: weakref.WeakKeyDictionary[Workspace, dict[str, tuple[float, Group]]] = weakref.WeakKeyDictionary()
_DEFINITION_S = 1.0


def cached_definition(ws: Workspace, name: str) -> Group | None:
    """A group's definition if the online read path holds it fresh, else None (no database read)."""
    hit = _DEFINITIONS.get(ws, {}).get(name)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def _check_functions(ws: Workspace, ctx: Context, defs: dict[str, Any]) -> None:
    if any(d.function is not None for d in defs.values()):
        from kiln.features._functions import check_functions_exist

        check_functions_exist(ws, ctx, defs)


class FeatureService:
    """Everything the faces can do with feature groups and their records."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def _require_editor(self, action: str, name: str) -> None:
        """Authorization before any work; a refusal is audited like a failed mutation."""
        try:
            self.ctx.require("editor")
        except PermissionDenied as exc:
            self.ws.audit_failure(self.ctx, action=action, resource=f"feature-groups/{str(name)[:64]}", error=exc)
            raise

    # -- definitions --------------------------------------------------------------------

    def create(self, name: str, *, record_id: str, event_time: str, features: list[FeatureDefinition] | None = None, dataset: str | None = None,
               description: str = "", tags: dict[str, str] | None = None, ttl: str | float | None = None, online: bool = True, ingest: bool = True) -> FeatureGroup:
        """Create a feature group, from feature definitions or from a dataset's schema (and ingest it).

        Args:
            name: the group's name.
            record_id: the feature that identifies a record (integral or string).
            event_time: the feature that holds each record's time (a timestamp, Unix seconds, or ISO-8601 text with a zone).
            features: the definitions; omitted when ``dataset`` gives them.
            dataset: a dataset reference (``sales@3``) whose columns become the features.
            description: what the group holds.
            tags: key/value labels.
            ttl: how long a record stays valid after its event time (``7d``, ``12h``, seconds).
            online: whether the group keeps an online store.
            ingest: with ``dataset``, ingest its rows at once.

        Raises:
            AlreadyExists: a group of that name exists.
            InvalidArgument: a bad name, type, column or TTL.
        """
        self._require_editor("features.create", name)
        check_name(name, kind="feature group")
        ttl_s = parse_duration(ttl)
        tags = _check_tags(tags)
        source: dict[str, Any] = {}
        if dataset is not None:
            if features:
                raise InvalidArgument("give either features or a dataset, not both")
            version = self._datasets().get(dataset)
            schema = self._datasets().arrow_dataset(version.ref).schema
            features = []
            for f in schema:
                kind = feature_type_of(f.type)
                if kind is None:
                    raise InvalidArgument(f"column {f.name!r} of {version.ref} has type {f.type}, which no feature type holds; drop it with a recipe first", details={"field": f.name})
                features.append(FeatureDefinition(name=f.name, type=kind))
            source = {"dataset": version.ref}
        if not features:
            raise InvalidArgument("a feature group needs features: give them, or a dataset to take them from")
        defs = _definitions(features, record_id, event_time)
        _check_functions(self.ws, self.ctx, defs)
        now = time.time()
        gid = uuid.uuid4().hex
        with self.ws.mutation(self.ctx, action="features.create", resource=f"feature-groups/{name}", details={"version": 1, **source}) as (conn, _):
            if conn.execute(sa.select(t.groups.c.id).where(t.groups.c.name == name)).first() is not None:
                raise AlreadyExists(f"feature group {name!r} exists; `kiln features describe {name}` shows it")
            conn.execute(t.groups.insert().values(
                id=gid, name=name, record_id=record_id, event_time=event_time, description=description[:4000], tags=_dumps(tags), ttl_s=ttl_s,
                online=online, latest_version=1, created_at=now, created_by=self.ctx.actor, updated_at=now))
            conn.execute(t.versions.insert().values(group_id=gid, version=1, features=_dumps([d.model_dump() for d in defs.values()]), source=_dumps(source), created_at=now, created_by=self.ctx.actor))
        _DEFINITIONS.get(self.ws, {}).pop(name, None)
        online_store(self.ws).drop(name)  # nothing left of an earlier group of this name
        if dataset is not None and ingest:
            try:
                self.ingest(name, dataset=source["dataset"])
            except BaseException:
                self.delete(name)  # all or nothing: a create that could not ingest leaves no group
                raise
        return self.describe(name)

    def update(self, name: str, *, features: list[FeatureDefinition] | None = None, description: str | None = None, tags: dict[str, str] | None = None,
               ttl: str | float | None = None, online: bool | None = None) -> FeatureGroup:
        """Change a group: new features make a new version (old data stays readable); the rest changes in place.

        Raises:
            InvalidArgument: a feature's type changed, or the record identifier or event time went missing.
        """
        self._require_editor("features.update", name)
        check_name(name, kind="feature group")
        ttl_s = parse_duration(ttl)
        new_tags = _check_tags(tags) if tags is not None else None
        with self.ws.mutation(self.ctx, action="features.update", resource=f"feature-groups/{name}") as (conn, details):
            g = self._load(conn, name, lock=True)
            values: dict[str, Any] = {"updated_at": time.time()}
            if features is not None:
                defs = _definitions(features, g.record_id, g.event_time)
                _check_functions(self.ws, self.ctx, defs)
                for n, d in defs.items():
                    old = g.features.get(n)
                    if old is not None and old.type != d.type:
                        raise InvalidArgument(f"feature {n!r} is {old.type}; a feature keeps its type across versions: add a feature under a new name", details={"field": n})
                if list(defs.values()) != list(g.features.values()):
                    number = g.latest_version + 1
                    conn.execute(t.versions.insert().values(group_id=g.id, version=number, features=_dumps([d.model_dump() for d in defs.values()]), source=_dumps({"previous": g.version}), created_at=values["updated_at"], created_by=self.ctx.actor))
                    values["latest_version"] = number
                    details["version"] = number
            if description is not None:
                values["description"] = description[:4000]
            if new_tags is not None:
                values["tags"] = _dumps(new_tags)
            if ttl_s is not None:
                values["ttl_s"] = ttl_s
            if online is not None:
                values["online"] = online
            conn.execute(t.groups.update().where(t.groups.c.id == g.id).values(**values))
        _DEFINITIONS.get(self.ws, {}).pop(name, None)
        if online is False:
            online_store(self.ws).drop(name)
        return self.describe(name)

    def list(self) -> list[FeatureGroup]:
        """List feature groups at their latest versions."""
        self.ctx.require("viewer")
        with self.ws.db.read() as conn:
            names = conn.execute(sa.select(t.groups.c.name).order_by(t.groups.c.name)).scalars().all()
            return [self._describe(conn, self._load(conn, n)) for n in names]

    def describe(self, ref: str) -> FeatureGroup:
        """A feature group (``name``, or ``name@2`` for an older version), with its offline store's size."""
        self.ctx.require("viewer")
        r = parse_ref(ref, kind="feature group")
        if r.alias is not None:
            raise InvalidArgument("feature groups have no aliases; use NAME or NAME@VERSION")
        with self.ws.db.read() as conn:
            return self._describe(conn, self._load(conn, r.name, version=r.version))

    def delete(self, name: str) -> FeatureGroup:
        """Delete a feature group: its definitions, its online records and its offline files (at the next gc)."""
        self._require_editor("features.delete", name)
        check_name(name, kind="feature group")
        with self.ws.mutation(self.ctx, action="features.delete", resource=f"feature-groups/{name}") as (conn, _):
            g = self._load(conn, name, lock=True)
            described = self._describe(conn, g)
            for table in (t.files, t.versions, t.stream_positions):
                conn.execute(table.delete().where(table.c.group_id == g.id))
            conn.execute(t.groups.delete().where(t.groups.c.id == g.id))
        _DEFINITIONS.get(self.ws, {}).pop(name, None)
        online_store(self.ws).drop(name)
        return described

    # -- records --------------------------------------------------------------------------

    def put_records(self, name: str, *, records: list[Any], ttl: str | float | None = None) -> WriteResult:
        """PutRecord, one or many: each record goes offline; online where its event time is not older than the stored one.

        A record is ``{feature: value}`` or SageMaker's ``[{"FeatureName", "ValueAsString"}]``.
        The whole batch is checked first: a missing id, a wrong type or a bad event time refuses it all.

        Args:
            name: the feature group.
            records: up to 10,000 records.
            ttl: a TTL for these records online, overriding the group's (``ExpiresAt = EventTime + TTL``).
        """
        self._require_editor("features.put_records", name)
        check_name(name, kind="feature group")
        ttl_s = parse_duration(ttl)
        if not isinstance(records, list) or not records:
            raise InvalidArgument("records must be a non-empty list")
        if len(records) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH:,} records a call; split the batch")
        g = self.get_group(name)
        rows = [self._check_record(g, i, rec) for i, rec in enumerate(records)]
        return self._write(g, rows, deleted=False, ttl_s=ttl_s if ttl_s is not None else g.ttl_s, action="features.put_records")

    def delete_records(self, name: str, *, records: list[Any], mode: str = "soft") -> WriteResult:
        """DeleteRecord, one or many: ``{record_id, event_time}`` each; SoftDelete (features nulled) or HardDelete online, an ``is_deleted`` row offline."""
        self._require_editor("features.delete_records", name)
        check_name(name, kind="feature group")
        if mode not in ("soft", "hard"):
            raise InvalidArgument(f"invalid delete mode {str(mode)[:20]!r}: use soft or hard")
        if not isinstance(records, list) or not records:
            raise InvalidArgument("records must be a non-empty list of {record_id, event_time}")
        if len(records) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH:,} records a call; split the batch")
        g = self.get_group(name)
        rows = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InvalidArgument(f"record {i}: give {{record_id, event_time}}", details={"record": i})
            rid = self._check_id(g, i, rec.get("record_id", rec.get(g.record_id)))
            et = self._check_time(i, rec.get("event_time", rec.get(g.event_time)), g.event_time)
            rows.append((rid, et, {}))
        return self._write(g, rows, deleted=True, ttl_s=None, action="features.delete_records", hard=mode == "hard")

    def _check_record(self, g: Group, i: int, rec: Any) -> tuple[Any, float, dict[str, Any]]:
        if isinstance(rec, list):  # SageMaker's Record: [{"FeatureName": ..., "ValueAsString": ...}]
            try:
                rec = {item["FeatureName"]: item.get("ValueAsString") for item in rec}
            except (TypeError, KeyError):
                raise InvalidArgument(f"record {i}: a list record holds {{FeatureName, ValueAsString}} items", details={"record": i}) from None
        if not isinstance(rec, dict):
            raise InvalidArgument(f"record {i} must be an object of feature values", details={"record": i})
        unknown = [k for k in rec if k not in g.stored]
        if unknown:
            what = "is derived (computed when read), not put" if unknown[0] in g.features else f"is not in feature group {g.name!r} (version {g.version}); its features are {', '.join(list(g.stored)[:20])}"
            raise InvalidArgument(f"record {i}: feature {str(unknown[0])[:64]!r} {what}", details={"record": i, "field": str(unknown[0])[:64]})
        rid = self._check_id(g, i, rec.get(g.record_id))
        et = self._check_time(i, rec.get(g.event_time), g.event_time)
        values: dict[str, Any] = {}
        for fname, d in g.stored.items():
            if fname in (g.record_id, g.event_time):
                continue
            raw = rec.get(fname)
            try:
                values[fname] = coerce_value(raw, d.type, field=fname)
            except InvalidArgument as exc:
                raise InvalidArgument(f"record {i}: {exc.message}", details={"record": i, "field": fname}) from None
        return rid, et, values

    def _check_id(self, g: Group, i: int, value: Any) -> Any:
        if value is None or value == "":
            raise InvalidArgument(f"record {i}: the record identifier {g.record_id!r} is missing", details={"record": i, "field": g.record_id})
        try:
            rid = coerce_value(value, g.features[g.record_id].type, field=g.record_id)
        except InvalidArgument as exc:
            raise InvalidArgument(f"record {i}: {exc.message}", details={"record": i, "field": g.record_id}) from None
        if isinstance(rid, str) and len(rid) > 1024:
            raise InvalidArgument(f"record {i}: the record identifier is longer than 1024 characters", details={"record": i, "field": g.record_id})
        return rid

    def _check_time(self, i: int, value: Any, fname: str) -> float:
        if value is None:
            raise InvalidArgument(f"record {i}: the event time {fname!r} is missing", details={"record": i, "field": fname})
        try:
            return parse_time(value, field=fname)
        except InvalidArgument as exc:
            raise InvalidArgument(f"record {i}: {exc.message}", details={"record": i, "field": fname}) from None

    def _write(self, g: Group, rows: list[tuple[Any, float, dict[str, Any]]], *, deleted: bool, ttl_s: float | None, action: str, hard: bool = False,
               position: tuple[str, str, int] | None = None) -> WriteResult:
        """Offline first (files, then one audited commit), then the online store."""
        now = time.time()
        now_us = int(now * 1e6)
        n = len(rows)
        cols: dict[str, Any] = {}
        for fname, d in g.stored.items():
            if fname == g.record_id:
                values = [r[0] for r in rows]
            elif fname == g.event_time:
                values = [int(round(r[1] * 1e6)) for r in rows]
            else:
                values = [r[2].get(fname) for r in rows]
                if d.type == "timestamp":
                    values = [None if v is None else int(round(v * 1e6)) for v in values]
            typ = arrow_type(d.type)
            cols[fname] = pa.array(values, type=pa.int64()).cast(typ) if d.type == "timestamp" else pa.array(values, type=typ)
        # Later records of a call win ties of event time: their write times are a microsecond apart.
        cols["write_time"] = pa.array(range(now_us, now_us + n), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        cols["api_invocation_time"] = pa.array([now_us] * n, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        cols["is_deleted"] = pa.array([deleted] * n, type=pa.bool_())
        table = pa.table(cols, schema=g.arrow_schema())
        written = off.write_partitions(self.ws.store, g.id, table, g.event_time, g.version)
        try:
            self._commit_files(g, written, action=action, details={"records": n, **({"mode": "hard" if hard else "soft"} if deleted else {})}, position=position)
        except BaseException:
            for f in written:
                self.ws.store.delete(f["key"])
            raise
        changed = 0
        if g.online:
            online_rows = []
            for rid, et, values in rows:
                data = None if deleted else orjson.dumps({g.record_id: rid, g.event_time: et, **values}, option=orjson.OPT_SERIALIZE_NUMPY)
                online_rows.append(OnlineRow(str(rid), et, None if deleted or ttl_s is None else et + ttl_s, data))
            store = online_store(self.ws)
            changed = store.write(g.name, online_rows, hard_delete=hard)
            purge_now_and_then(store, now)
        return WriteResult(records=n, offline=n, online=changed)

    def _commit_files(self, g: Group, written: list[off.OfflineFile], *, action: str, details: dict[str, Any], position: tuple[str, str, int] | None = None) -> None:
        now = time.time()
        with self.ws.mutation(self.ctx, action=action, resource=f"feature-groups/{g.name}", details=details) as (conn, _):
            current = conn.execute(sa.select(t.groups.c.id).where(t.groups.c.name == g.name)).scalar()
            if current != g.id:
                raise Conflict(f"feature group {g.name!r} was deleted while its records were written; nothing was committed")
            if written:
                conn.execute(t.files.insert(), [{"group_id": g.id, "created_at": now, **f} for f in written])
            if position is not None:  # the stream position commits with the rows it covers: exactly once
                stream, consumer, last = position
                key = (t.stream_positions.c.group_id == g.id, t.stream_positions.c.stream == stream, t.stream_positions.c.consumer == consumer)
                if conn.execute(t.stream_positions.update().where(*key).values(last_seq=last, updated_at=now)).rowcount == 0:
                    conn.execute(t.stream_positions.insert().values(group_id=g.id, stream=stream, consumer=consumer, last_seq=last, updated_at=now))

    # -- bulk ingestion -----------------------------------------------------------------

    def ingest(self, name: str, *, dataset: str) -> IngestResult:
        """Ingest a dataset version in bulk: every row offline (partitioned by event date), the latest per id online.

        Memory stays bounded (DuckDB spills); progress is reported as rows are written.

        Raises:
            InvalidArgument: the dataset lacks the record identifier or event time, has nulls in them, or a value of the wrong type.
        """
        self._require_editor("features.ingest", name)
        check_name(name, kind="feature group")
        g = self.get_group(name)
        try:
            return self._ingest(g, dataset)
        except KilnError as exc:
            if not isinstance(exc, NotFound | InvalidArgument | Conflict):
                raise
            self.ws.audit_failure(self.ctx, action="features.ingest", resource=f"feature-groups/{name}", error=exc)
            raise

    def _ingest(self, g: Group, dataset: str) -> IngestResult:
        from kiln.features._ingest import bulk_ingest

        return bulk_ingest(self, g, dataset)

    def ingest_stream(self, name: str, *, stream: str, consumer: str | None = None, max_records: int = 100_000) -> StreamIngestResult:
        """Ingest what a Kiln stream holds for a named consumer, exactly once (PutRecord's rules).

        Each batch's offline rows commit with the stream position they reach, so a batch read
        again after a crash is not written twice; records that fail the group's checks are
        skipped and counted (the first errors are returned), never blocking the stream.

        Args:
            name: the feature group.
            stream: the stream whose records (objects of feature values) to ingest.
            consumer: the stream consumer to read as (default ``features-<name>``).
            max_records: stop after this many records (call again for more).
        """
        self._require_editor("features.ingest_stream", name)
        check_name(name, kind="feature group")
        check_name(stream, kind="stream")
        consumer = consumer or f"features-{name}"[:63]
        check_name(consumer, kind="consumer")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or not 1 <= max_records <= 10_000_000:
            raise InvalidArgument("max_records must be between 1 and 10000000")
        from kiln.features._ingest import stream_ingest

        return stream_ingest(self, self.get_group(name), stream=stream, consumer=consumer, max_records=max_records, lease_s=STREAM_LEASE_S)

    def rebuild_online(self, name: str) -> RebuildResult:
        """Rebuild a group's online store from its offline store: the latest record of every id.

        Restores consistency after an online write failed once the offline rows were committed
        (a 503 that kept them), or after the online store was lost. Newer online rows are kept,
        ids whose latest record is a delete are deleted online, and expired rows are purged.

        Raises:
            InvalidArgument: the group has no online store.
        """
        self._require_editor("features.rebuild_online", name)
        check_name(name, kind="feature group")
        from kiln.features._ingest import rebuild_online

        return rebuild_online(self, self.get_group(name))

    # -- online reads ---------------------------------------------------------------------

    def get_record(self, name: str, record_id: str, *, features: list[str] | None = None) -> FeatureRecord:
        """GetRecord: the latest record of ``record_id`` in the online store (expired and deleted ones are not returned)."""
        self.ctx.require("viewer")
        check_name(name, kind="feature group")
        g = self._cached_group(name)
        row = online_store(self.ws).read(name, [self._online_id(g, record_id)], now=time.time())[0]
        if row is None or row.data is None:
            if not g.online:
                raise InvalidArgument(f"feature group {name!r} has no online store; read its offline store with a training set")
            raise NotFound(f"feature group {name!r} has no record {str(record_id)[:80]!r} online (never put, deleted or expired)")
        return self._record(g, row, features)

    def batch_get(self, *, identifiers: list[RecordIdentifier]) -> BatchGetResult:
        """BatchGetRecord: records of several groups in one call, each with a selection of features."""
        self.ctx.require("viewer")
        if not isinstance(identifiers, list) or not identifiers:
            raise InvalidArgument("identifiers must name at least one feature group")
        try:
            identifiers = [RecordIdentifier.model_validate(i) for i in identifiers]
        except ValueError as exc:
            raise invalid_input("invalid identifiers", exc) from None
        if sum(len(i.record_ids) for i in identifiers) > _MAX_IDS:
            raise InvalidArgument(f"at most {_MAX_IDS:,} record ids a call")
        store = online_store(self.ws)
        now = time.time()
        records: list[FeatureRecord] = []
        missing: list[RecordIdentifier] = []
        for ident in identifiers:
            check_name(ident.feature_group, kind="feature group")
            g = self._cached_group(ident.feature_group)
            if not g.online:
                raise InvalidArgument(f"feature group {g.name!r} has no online store")
            ids = [self._online_id(g, r) for r in ident.record_ids]
            rows = store.read(ident.feature_group, ids, now=now)
            absent = [rid for rid, row in zip(ids, rows, strict=True) if row is None or row.data is None]
            for row in rows:
                if row is not None and row.data is not None:
                    records.append(self._record(g, row, ident.features))
            if absent:
                missing.append(RecordIdentifier(feature_group=ident.feature_group, record_ids=absent, features=ident.features))
        return BatchGetResult(records=records, missing=missing)

    def _record(self, g: Group, row: OnlineRow, features: list[str] | None) -> FeatureRecord:
        assert row.data is not None
        data = orjson.loads(row.data)
        if features is not None:
            bad = [f for f in features if f not in g.features]
            if bad:
                raise InvalidArgument(f"feature group {g.name!r} has no feature {str(bad[0])[:64]!r}", details={"field": str(bad[0])[:64]})
        wanted = g.derived if features is None else {f: g.derived[f] for f in features if f in g.derived}
        by_sql = {n: d for n, d in wanted.items() if d.expression is not None}
        if by_sql:
            data.update(_derive(g, data, by_sql))
        for n, d in wanted.items():
            if d.function is not None:  # in the function's workers, never here
                from kiln.features._functions import call_function

                data[n] = call_function(self.ws, self.ctx, g, d, [{k: data.get(k) for k in g.stored}])[0]
        if features is not None:
            data = {f: data.get(f) for f in features}
        return FeatureRecord(feature_group=g.name, record_id=row.record_id, event_time=row.event_time, expires_at=row.expires_at, features=data)

    def _online_id(self, g: Group, record_id: Any) -> str:
        """The online key of a record id as given (``"007"`` is record 7 of an integral id)."""
        if g.features[g.record_id].type == "integral" and not (isinstance(record_id, int) and not isinstance(record_id, bool)):
            return str(coerce_value(record_id, "integral", field=g.record_id))
        return str(record_id)

    def _cached_group(self, name: str) -> Group:
        cache = _DEFINITIONS.setdefault(self.ws, {})
        hit = cache.get(name)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        g = self.get_group(name)
        cache[name] = (now + _DEFINITION_S, g)
        return g

    # -- compaction -----------------------------------------------------------------------

    def compact(self, name: str) -> CompactResult:
        """Merge each event date's small files into one (rows and their write times unchanged); old files go at the next gc."""
        self._require_editor("features.compact", name)
        check_name(name, kind="feature group")
        g = self.get_group(name)
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(t.files).where(t.files.c.group_id == g.id).order_by(t.files.c.event_date, t.files.c.key)).all()
        by_date: dict[str, list[Any]] = {}
        for r in rows:
            by_date.setdefault(r.event_date, []).append(r)
        todo = {d: fs for d, fs in by_date.items() if len(fs) > 1}
        progress = Progress(len(todo))
        merged_rows = 0
        before = len(rows)
        after = len(rows)
        con = self.duck()
        try:
            for date, group_files in todo.items():
                paths = off.duck_paths(con, self.ws.store, [f.key for f in group_files])
                select = f"SELECT * FROM read_parquet({paths}, union_by_name = true) ORDER BY {off._q(g.record_id)}, {off._q(g.event_time)}, write_time"
                written = off.copy_partitioned(con, self.ws.store, g.id, select, g.event_time, max(f.version for f in group_files), off.new_tmp(self.ws.settings.home))
                old = {f.key for f in group_files}
                try:
                    with self.ws.mutation(self.ctx, action="features.compact", resource=f"feature-groups/{name}", details={"event_date": date, "files": len(old)}) as (conn, _):
                        gone = conn.execute(t.files.delete().where(t.files.c.group_id == g.id, t.files.c.key.in_(old))).rowcount
                        if gone != len(old):
                            raise Conflict(f"the offline files of {name!r} changed during compaction; run it again")
                        conn.execute(t.files.insert(), [{"group_id": g.id, "created_at": time.time(), **f} for f in written])
                except BaseException:
                    for f in written:
                        self.ws.store.delete(f["key"])
                    raise
                merged_rows += sum(f["rows"] for f in written)
                after += len(written) - len(old)
                progress.advance()
        finally:
            con.close()
        progress.finish()
        return CompactResult(group=name, partitions=len(todo), files_before=before, files_after=after, rows=merged_rows)

    # -- helpers --------------------------------------------------------------------------

    def duck(self) -> duckdb.DuckDBPyConnection:
        tmp = self.ws.settings.home / "tmp" / "duckdb"
        tmp.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(config={
            "memory_limit": f"{self.ws.settings.ingest_memory_mb}MB", "temp_directory": str(tmp),
            "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        })
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
        return con

    def _datasets(self) -> Any:
        from kiln.lake.datasets import DatasetService

        return DatasetService(self.ws, self.ctx)

    def get_group(self, name: str, *, version: int | None = None) -> Group:
        with self.ws.db.read() as conn:
            return self._load(conn, name, version=version)

    def _load(self, conn: Connection, name: str, *, version: int | None = None, lock: bool = False) -> Group:
        check_name(name, kind="feature group")
        q = sa.select(t.groups).where(t.groups.c.name == name)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(f"feature group {name!r} does not exist; `kiln features ls` lists them")
        number = version or row.latest_version
        v = conn.execute(sa.select(t.versions).where(t.versions.c.group_id == row.id, t.versions.c.version == number)).first()
        if v is None:
            raise NotFound(f"feature group {name!r} has no version {number} (latest is {row.latest_version})")
        defs = {d["name"]: FeatureDefinition(**d) for d in orjson.loads(v.features)}
        return Group(id=row.id, name=name, version=number, latest_version=row.latest_version, record_id=row.record_id, event_time=row.event_time,
                     features=defs, description=row.description, tags=orjson.loads(row.tags), ttl_s=row.ttl_s, online=bool(row.online),
                     created_at=row.created_at, created_by=row.created_by, updated_at=row.updated_at, source=orjson.loads(v.source))

    def offline_files(self, g: Group) -> list[Any]:
        with self.ws.db.read() as conn:
            return list(conn.execute(sa.select(t.files).where(t.files.c.group_id == g.id).order_by(t.files.c.event_date, t.files.c.key)).all())

    def _describe(self, conn: Connection, g: Group) -> FeatureGroup:
        n_files, n_rows = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.files.c.rows), 0)).where(t.files.c.group_id == g.id)).one()
        return FeatureGroup(name=g.name, version=g.version, latest_version=g.latest_version, record_id=g.record_id, event_time=g.event_time,
                            features=list(g.features.values()), description=g.description, tags=g.tags, ttl_s=g.ttl_s, online=g.online,
                            created_at=g.created_at, created_by=g.created_by, updated_at=g.updated_at, offline_files=int(n_files), offline_rows=int(n_rows), source=g.source)


def referenced_keys(conn: Connection) -> set[str]:
    return set(conn.execute(sa.select(t.files.c.key)).scalars())


_ = RESERVED
