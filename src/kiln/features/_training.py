"""Point-in-time training sets: for each entity row, each feature from the latest record
with event time <= the row's time (ties by write time), within the group's TTL; a row with
no such record keeps its place with nulls.

Two steps in DuckDB. The match (:func:`plan_sql`): one ``ASOF LEFT JOIN`` per group, keyed on
one integer that orders by event time then write time (:class:`OrderKey`), carrying only each
record's place in its files, so the sort the join makes is narrow (in passes over hash ranges
of the ids when even that would not fit: :func:`passes`). The gather (:func:`gather_sql`): the
features fetched by place, one hash join per group, and the rows written in the entities'
order straight into the new dataset version's Parquet."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, KilnError, PermissionDenied
from kiln.core.names import check_name, parse_ref
from kiln.core.workspace import Workspace
from kiln.features import _offline as off
from kiln.features._base import parse_time
from kiln.core.progress import Progress
from kiln.features._ingest import event_expr, parquet_columns, watch_query

from kiln.lake._models import DatasetVersion

if TYPE_CHECKING:
    from kiln.features._service import Group

__all__ = ["TrainingSetService", "plan_sql"]

_q = off._q
_MAX_FEATURES = 5000


@dataclass
class _Part:
    group: Group
    features: list[tuple[str, str]]  # (feature, output column)


def _parse_features(svc: Any, features: list[str]) -> list[_Part]:
    """``group:feature``, ``group@2:feature`` or ``group:*`` -> groups with their features."""
    if not isinstance(features, list) or not features:
        raise InvalidArgument('features must be a non-empty list of "group:feature"')
    if len(features) > _MAX_FEATURES:
        raise InvalidArgument(f"at most {_MAX_FEATURES} features")
    parts: dict[str, _Part] = {}
    for item in features:
        if not isinstance(item, str) or item.count(":") != 1:
            raise InvalidArgument(f'invalid feature {str(item)[:80]!r}: use "group:feature" (or "group:*")', details={"field": str(item)[:80]})
        ref, feature = item.split(":")
        r = parse_ref(ref, kind="feature group")
        if r.alias is not None:
            raise InvalidArgument("feature groups have no aliases; use GROUP or GROUP@VERSION")
        part = parts.get(r.name)
        if part is None:
            part = parts[r.name] = _Part(svc.get_group(r.name, version=r.version), [])
        elif r.version is not None and r.version != part.group.version:
            raise InvalidArgument(f"feature group {r.name!r} is named at two versions; use one")
        g = part.group
        names = [n for n in g.features if n not in (g.record_id, g.event_time)] if feature == "*" else [feature]
        for n in names:
            if n not in g.features:
                raise InvalidArgument(f"feature group {g.name!r} (version {g.version}) has no feature {n[:64]!r}; it has {', '.join(list(g.features)[:20])}", details={"field": item[:80]})
            if n not in [f for f, _ in part.features]:
                part.features.append((n, n))
    return list(parts.values())


@dataclass(frozen=True)
class OrderKey:
    """One sortable integer per record combining event time and write time, so the ASOF join
    orders on a single column and ties of event time go to the later write:
    ``(event_us - event_lo) * span + (write_us - write_lo)`` with ``span = write_hi - write_lo + 1``.
    A BIGINT when the group's ranges let it fit (a bulk-ingested group: event times over
    months, writes over seconds), else a HUGEINT, exact either way."""

    event_lo: int
    event_hi: int
    write_lo: int
    span: int
    sql_type: str

    @classmethod
    def of(cls, event_lo: int | None, event_hi: int | None, write_lo: int | None, write_hi: int | None) -> OrderKey:
        if event_lo is None or event_hi is None or write_lo is None or write_hi is None:  # no rows
            return cls(0, 0, 0, 1, "BIGINT")
        span = write_hi - write_lo + 1
        fits = (event_hi - event_lo + 1) * span - 1 <= _BIGINT_MAX
        return cls(event_lo, event_hi, write_lo, span, "BIGINT" if fits else "HUGEINT")

    def record(self, event_us: str, write_us: str) -> str:
        return f"CAST({event_us} - {self.event_lo} AS {self.sql_type}) * {self.span} + ({write_us} - {self.write_lo})"

    def entity(self, us: str) -> str:
        """An entity row's key: above every record with event time <= its time, whatever its write
        time; -1 (below all) before the first record; a NULL time matches nothing."""
        top = (self.event_hi - self.event_lo + 1) * self.span - 1
        return (f"CASE WHEN {us} < {self.event_lo} THEN -1 WHEN {us} > {self.event_hi} THEN CAST({top} AS {self.sql_type}) "
                f"ELSE CAST({us} - {self.event_lo} AS {self.sql_type}) * {self.span} + {self.span - 1} END")


_BIGINT_MAX = 2**63 - 1


_TO_US = {"milliseconds": (1000, 1), "microseconds": (1, 1), "nanoseconds": (1, 1000)}  # (multiply, floor-divide)


def _footer_ranges(store: Any, keys: list[str], event_col: str) -> tuple[int, int, int, int] | None:
    """(event min, event max, write min, write max) in microseconds from the Parquet footers'
    statistics, or None when a file lacks them (the caller scans instead).

    From the raw INT64 statistics and the column's time unit: pyarrow's ``Statistics.min``
    of a timestamp imports pandas to build it (a third of a second, once a process)."""
    import orjson
    import pyarrow.parquet as pq

    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    try:
        for key in keys:
            with store.open(key) as fh:
                pf = pq.ParquetFile(fh)
                md, schema = pf.metadata, pf.schema
            for j in range(md.num_columns):
                name = schema.column(j).path
                if name not in (event_col, "write_time"):
                    continue
                logical = schema.column(j).logical_type
                unit = orjson.loads(logical.to_json()).get("timeUnit") if logical is not None and logical.type == "TIMESTAMP" else None
                if schema.column(j).physical_type != "INT64" or unit not in _TO_US:
                    return None
                mul, div = _TO_US[unit]
                for i in range(md.num_row_groups):
                    col = md.row_group(i).column(j)
                    if col.num_values == 0:
                        continue
                    st = col.statistics
                    if st is None or not st.has_min_max or not isinstance(st.min_raw, int) or not isinstance(st.max_raw, int):
                        return None
                    mn, mx = st.min_raw * mul // div, st.max_raw * mul // div
                    lo[name] = min(lo.get(name, mn), mn)
                    hi[name] = max(hi.get(name, mx), mx)
    except (OSError, ValueError, TypeError, OverflowError):
        return None
    if set(lo) != {event_col, "write_time"}:
        return None
    return lo[event_col], hi[event_col], lo["write_time"], hi["write_time"]


def name_outputs(parts: list[_Part], entity_cols: dict[str, Any]) -> None:
    """Each feature's output column: its name, or ``group__feature`` when an entity column or
    another group's feature has it."""
    taken = set(entity_cols)
    for part in parts:
        renamed = []
        for feature, _ in part.features:
            out = feature if feature not in taken else f"{part.group.name.replace('-', '_')}__{feature}"
            if out in taken:
                raise InvalidArgument(f"output column {out!r} would appear twice; rename the entity column")
            taken.add(out)
            renamed.append((feature, out))
        part.features = renamed


# A record's place: the index of its file in the group's list and its row in that file.
_LOC = "(CAST(file_index AS BIGINT) << 40) | file_row_number"


def plan_sql(parts: list[_Part], entity_cols: dict[str, Any], event_time_column: str, sources: dict[str, str | None], *, as_of: float | None,
             include_deleted: bool, start: float | None, end: float | None, keys: dict[str, OrderKey] | None = None,
             partition: tuple[int, int] | None = None) -> str:
    """The point-in-time match, narrow: over view ``__kiln_entities`` (with ``__kiln_row``), one
    ASOF join per group on its :class:`OrderKey`, carrying only each record's place (``_LOC``),
    so the sort the join makes holds four integers a record, whatever the features. Its rows:
    ``__kiln_row``, the entity columns and ``__kiln_loc<i>`` per group (NULL where no record
    applies: none in time, past the TTL, or a delete marker). :func:`gather_sql` then fetches the
    features by place. ``sources`` holds each group's ``read_parquet(...)`` with
    ``file_row_number``, or None when no file can match.

    With ``partition=(k, n)`` (every group keyed on the same column, see :func:`passes`), only
    the entity rows and records whose id hashes to ``k`` of ``n``."""
    keys = keys or {}
    none = OrderKey.of(None, None, None, None)

    def part_of(col: str) -> str:
        return f"hash({col}) % {partition[1]} = {partition[0]}" if partition else ""

    t_expr = event_expr(event_time_column, entity_cols[event_time_column])
    ekeys = ", ".join(f"{keys.get(p.group.name, none).entity('__kiln_us')} AS __kiln_k{i}" for i, p in enumerate(parts))
    e_where = f" WHERE {part_of(_q(parts[0].group.record_id))}" if partition else ""
    ctes = [f"__e0 AS (SELECT *, epoch_us({t_expr}) AS __kiln_us FROM __kiln_entities{e_where})", f"__e AS (SELECT *, {ekeys} FROM __e0)"]
    joins = []
    locs = []
    for i, part in enumerate(parts):
        g = part.group
        source = sources[g.name]
        key = keys.get(g.name, none)
        where = []
        if as_of is not None:
            where.append(f"write_time <= make_timestamptz({int(as_of * 1e6)})")
        if start is not None:
            where.append(f"{_q(g.event_time)} >= make_timestamptz({int(start * 1e6)})")
        if end is not None:
            where.append(f"{_q(g.event_time)} < make_timestamptz({int(end * 1e6)})")
        if include_deleted:
            where.append("NOT is_deleted")  # records a delete removed still count: delete markers are skipped
        if partition:
            where.append(part_of(_q(g.record_id)))
        et_us = f"epoch_us({_q(g.event_time)})"
        until = f"{et_us} + {int(g.ttl_s * 1e6)}" if g.ttl_s is not None else str(2**63 - 1)
        ctes.append(
            f"__g{i} AS (SELECT {_q(g.record_id)} AS __id, {key.record(et_us, 'epoch_us(write_time)')} AS __k, "
            f"CASE WHEN NOT is_deleted THEN {until} END AS __until, {_LOC if source else 'CAST(NULL AS BIGINT)'} AS __loc "
            f"FROM {source or _empty(g)}{(' WHERE ' + ' AND '.join(where)) if where else ''})"
        )
        joins.append(f"ASOF LEFT JOIN __g{i} ON __e.{_q(g.record_id)} = __g{i}.__id AND __e.__kiln_k{i} >= __g{i}.__k")
        locs.append(f"CASE WHEN __e.__kiln_us < __g{i}.__until THEN __g{i}.__loc END AS __kiln_loc{i}")
    select = ", ".join(["__e.__kiln_row", *(f"__e.{_q(c)}" for c in entity_cols), *locs])
    return f"WITH {', '.join(ctes)} SELECT {select} FROM __e {' '.join(joins)}"


def gather_sql(parts: list[_Part], entity_cols: dict[str, Any], sources: dict[str, str | None], matched: str) -> str:
    """The training set in the entities' order: each match of :func:`plan_sql` (the rows of table
    ``matched``) with its features, fetched by place with one hash join per group (the matches
    are the smaller side: one per entity row; the records stream past them)."""
    cols = [f"__m.{_q(c)}" for c in entity_cols]
    joins = []
    for i, part in enumerate(parts):
        g = part.group
        source = sources[g.name]
        feats = ", ".join(f"{derived_sql(g, f)} AS __f{j}" for j, (f, _) in enumerate(part.features))
        cols += [f"__v{i}.__f{j} AS {_q(out)}" for j, (_, out) in enumerate(part.features)]
        loc = _LOC if source else "CAST(NULL AS BIGINT)"
        joins.append(f"LEFT JOIN (SELECT {loc} AS __loc{', ' + feats if feats else ''} FROM {source or _empty(g)}) __v{i} ON __v{i}.__loc = __m.__kiln_loc{i}")
    return f"SELECT {', '.join(cols)} FROM {matched} __m {' '.join(joins)} ORDER BY __m.__kiln_row"


# Each pass scans every entity row and record again: past a few passes the scans cost more than
# the spilling they save (5M entity rows over 20M records, one run each: 1 pass 12.1 s, 4 passes
# 10.5 s, 6 passes 10.6 s, 8 passes 11.7 s, 12 passes 12.8 s; the peak 0.69-0.70 GiB in all).
_MAX_PASSES = 6


def passes(parts: list[_Part], entity_cols: dict[str, Any], rows: dict[str, int], memory_mb: int) -> int:
    """How many passes the match takes, each over the entity rows and records of one hash range
    of the ids, so that one pass's records (which DuckDB's ASOF join holds, sorted: about 40
    bytes each) stay within an eighth of the memory limit: a sort that fits is faster than one
    that spills, and the peak falls with the passes (the 500,000 x 2,000,000 benchmark: two
    passes, 0.35-0.37 GiB at peak against 0.38-0.40 in one, about 0.05 s slower). One pass
    unless every group is keyed on the same entity column with a matching type (a hash is
    only comparable between the same values)."""
    import pyarrow as pa

    need = sum(rows.values()) * 40
    budget = memory_mb * 2**20 // 8
    rid = parts[0].group.record_id
    if need <= budget or any(p.group.record_id != rid for p in parts):
        return 1
    arrow = entity_cols[rid]
    for p in parts:
        kind = p.group.features[rid].type
        if not ((kind == "integral" and pa.types.is_integer(arrow)) or (kind == "string" and (pa.types.is_string(arrow) or pa.types.is_large_string(arrow)))):
            return 1
    return min(_MAX_PASSES, -(-need // budget))


# Parquet dictionaries for columns of up to 10,000 distinct values a row group (categories keep
# theirs); DuckDB's default tries far larger ones, and gives up on every unique-valued column
# (most features) only after building them: a third of the result's write time.
_WRITE = "FORMAT parquet, DICTIONARY_SIZE_LIMIT 10000"


def derived_sql(g: Group, feature: str) -> str:
    """A feature's column, or a derived feature's expression cast to its type (the same SQL online)."""
    from kiln.features._base import duck_type

    d = g.features[feature]
    if d.function is not None:  # the record as the function gets it (online JSON's shape); computed after the join
        return "struct_pack(" + ", ".join(
            f"{_q(n)} := " + (f"epoch_us({_q(n)}) / 1e6" if s.type == "timestamp" else _q(n)) for n, s in g.stored.items()) + ")"
    return _q(feature) if d.expression is None else f"CAST(({d.expression}) AS {duck_type(d.type)})"


def apply_functions(ws: Workspace, ctx: Context, path: Any, columns: dict[str, tuple[Group, Any]]) -> None:
    """Replace each function feature's column of the Parquet at ``path`` (the records, as structs;
    null where no record matched) by the function's values, batch by batch, in place."""
    if not columns:
        return
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from kiln.features._base import arrow_type
    from kiln.features._functions import call_function

    tmp = path.with_name(path.name + ".fn")
    writer = None
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            table = pa.Table.from_batches([batch])
            for name, (g, d) in columns.items():
                values = call_function(ws, ctx, g, d, table.column(name).to_pylist())
                if d.type == "timestamp":
                    col = pa.array([None if v is None else int(round(v * 1e6)) for v in values], type=pa.int64()).cast(arrow_type("timestamp"))
                else:
                    col = pa.array(values, type=arrow_type(d.type))
                table = table.set_column(table.schema.get_field_index(name), name, col)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is None:  # no rows: the empty file with the columns' types
            schema = pq.read_schema(path)
            for name, (_, d) in columns.items():
                schema = schema.set(schema.get_field_index(name), pa.field(name, arrow_type(d.type)))
            writer = pq.ParquetWriter(tmp, schema)
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


class TrainingSetService:
    """Training sets from the offline store, point-in-time correct."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def to_dataset(self, name: str, *, output_dataset: str, n_recent: int | None = None, as_of: float | str | None = None, include_deleted: bool = False,
                   start: float | str | None = None, end: float | str | None = None) -> DatasetVersion:
        """A feature group's offline records as a new dataset version (derived features computed).

        Args:
            name: the feature group.
            output_dataset: the dataset the records become a new version of.
            n_recent: only the N most recent records of each id (by event time, then write time).
            as_of: only records written by then (time travel).
            include_deleted: keep delete markers and the records they deleted (default: a delete removes its record's rows up to it).
            start: only records with an event time at or after this.
            end: only records with an event time before this.
        """
        try:
            self.ctx.require("editor")
        except PermissionDenied as exc:
            self.ws.audit_failure(self.ctx, action="features.to_dataset", resource=f"feature-groups/{str(name)[:64]}", error=exc)
            raise
        check_name(name, kind="feature group")
        check_name(output_dataset, kind="dataset")
        return to_dataset(self.ws, self.ctx, name, output=output_dataset, n_recent=n_recent, as_of=as_of, include_deleted=include_deleted, start=start, end=end)

    def training_set(self, *, entities: str, features: list[str], output_dataset: str, event_time_column: str = "event_time", as_of: float | str | None = None,
                     include_deleted: bool = False, start: float | str | None = None, end: float | str | None = None) -> DatasetVersion:
        """Build a point-in-time training set: entity rows joined with features, as a new dataset version.

        For every row of ``entities``, each feature comes from the latest record of its group
        whose event time is at most the row's time, within the group's TTL, ties broken by
        write time; a row with no such record keeps its place with nulls.

        Args:
            entities: a dataset reference whose rows hold each group's record identifier column and ``event_time_column``.
            features: ``"group:feature"``, ``"group@2:feature"`` or ``"group:*"``.
            output_dataset: the dataset the result becomes a new version of.
            event_time_column: the entity rows' time (timestamp, Unix seconds or ISO-8601 text).
            as_of: only records written by then (time travel): Unix seconds or ISO-8601.
            include_deleted: skip delete markers, so records that were deleted still count.
            start: only records with an event time at or after this.
            end: only records with an event time before this.

        Raises:
            InvalidArgument: an unknown group or feature, or a column the entities lack.
        """
        try:
            self.ctx.require("editor")
        except PermissionDenied as exc:
            self.ws.audit_failure(self.ctx, action="features.training_set", resource=f"datasets/{str(output_dataset)[:64]}", error=exc)
            raise
        check_name(output_dataset, kind="dataset")
        bounds = {k: None if v is None else parse_time(v, field=k) for k, v in (("as_of", as_of), ("start", start), ("end", end))}
        from kiln.features._service import FeatureService
        from kiln.lake.datasets import DatasetService

        svc = FeatureService(self.ws, self.ctx)
        parts = _parse_features(svc, features)
        lake = DatasetService(self.ws, self.ctx)
        version = lake.get(entities)
        entity_cols = parquet_columns(self.ws.store, version.files[0].key)
        if event_time_column not in entity_cols:
            raise InvalidArgument(f"the entities {version.ref} have no column {event_time_column!r} (event_time_column); they have {', '.join(list(entity_cols)[:20])}", details={"field": event_time_column})
        for part in parts:
            if part.group.record_id not in entity_cols:
                raise InvalidArgument(f"the entities {version.ref} have no column {part.group.record_id!r}, the record identifier of feature group {part.group.name!r}", details={"field": part.group.record_id})
        if any(c.startswith("__kiln") or c.startswith("__e") for c in entity_cols):
            raise InvalidArgument("entity columns may not start with '__kiln'")
        con = svc.duck()
        try:
            offset = 0
            sources = []
            for f in version.files:
                path = off.duck_paths(con, self.ws.store, [f.key])[1:-1]
                sources.append(f"SELECT *, file_row_number + {offset} AS __kiln_row FROM read_parquet({path}, file_row_number = true)")
                offset += f.rows
            con.execute(f"CREATE TEMP VIEW __kiln_entities AS {' UNION ALL '.join(sources)}")
            t_expr = event_expr(event_time_column, entity_cols[event_time_column])
            lo_us, hi_us = con.execute(f"SELECT min(epoch_us({t_expr})), max(epoch_us({t_expr})) FROM __kiln_entities").fetchall()[0]
            lo, hi = (None if lo_us is None else lo_us / 1e6), (None if hi_us is None else hi_us / 1e6)
            sources: dict[str, str | None] = {}
            order_keys: dict[str, OrderKey] = {}
            record_rows: dict[str, int] = {}
            lineage_groups = []
            for part in parts:
                g = part.group
                files = [f for f in svc.offline_files(g) if hi is not None and f.min_event <= hi and (g.ttl_s is None or lo is None or f.max_event >= lo - g.ttl_s)]
                keys = [f.key for f in files]
                record_rows[g.name] = sum(int(f.rows) for f in files)
                sources[g.name] = f"read_parquet({off.duck_paths(con, self.ws.store, keys)}, union_by_name = true, file_row_number = true)" if keys else None
                if keys:  # the ranges the group's order key packs: from the files' footers, else a scan of two columns
                    ranges = _footer_ranges(self.ws.store, keys, g.event_time) or con.execute(
                        f"SELECT min(epoch_us({_q(g.event_time)})), max(epoch_us({_q(g.event_time)})), min(epoch_us(write_time)), max(epoch_us(write_time)) "
                        f"FROM {sources[g.name]}").fetchall()[0]
                    order_keys[g.name] = OrderKey.of(*ranges)
                lineage_groups.append({"name": g.name, "version": g.version, "features": [f for f, _ in part.features], "files": len(keys)})
            name_outputs(parts, entity_cols)
            plan = {"as_of": bounds["as_of"], "include_deleted": include_deleted, "start": bounds["start"], "end": bounds["end"], "keys": order_keys}
            n = passes(parts, entity_cols, record_rows, self.ws.settings.ingest_memory_mb)
            tmp_dir = off.new_tmp(self.ws.settings.home)
            result = tmp_dir / f"training-{uuid.uuid4().hex}.parquet"
            progress = Progress(1.0)
            try:
                # The matches, pass by pass, into a table (spilling past the memory limit); then the
                # features fetched and the rows written in the entities' order.
                for k in range(n):
                    with watch_query(con, progress, 0.6 * k / n, 0.6 * (k + 1) / n):
                        sql = plan_sql(parts, entity_cols, event_time_column, sources, **plan, partition=(k, n) if n > 1 else None)
                        con.execute(("CREATE TEMP TABLE __kiln_matched AS " if k == 0 else "INSERT INTO __kiln_matched ") + sql)
                with watch_query(con, progress, 0.6, 0.95):
                    con.execute(f"COPY ({gather_sql(parts, entity_cols, sources, '__kiln_matched')}) TO '{result}' ({_WRITE})")
                con.execute("DROP TABLE __kiln_matched")
                apply_functions(self.ws, self.ctx, result, {out: (p.group, p.group.features[f]) for p in parts for f, out in p.features if p.group.features[f].function})
                lineage = {"parents": [version.ref], "producer": "features.training_set", "feature_groups": lineage_groups,
                           "event_time_column": event_time_column, "as_of": bounds["as_of"], "include_deleted": include_deleted,
                           "start": bounds["start"], "end": bounds["end"], "made_at": time.time()}
                made = lake.commit_parquet(output_dataset, result, lineage=lineage, source={"kind": "training_set", "entities": version.ref, "features": list(features)})
            finally:
                result.unlink(missing_ok=True)
            progress.finish()
            return made
        except KilnError:
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("duckdb", "_duckdb")):
                raise InvalidArgument(f"cannot build the training set: {str(exc).splitlines()[0][:300]}") from None
            raise
        finally:
            con.close()


def to_dataset(svc_ws: Workspace, ctx: Context, name: str, *, output: str, n_recent: int | None, as_of: float | str | None, include_deleted: bool,
               start: float | str | None, end: float | str | None) -> DatasetVersion:
    """A group's offline records as a dataset version (SageMaker's dataset builder on a group)."""
    from kiln.features._service import FeatureService
    from kiln.lake.datasets import DatasetService

    svc = FeatureService(svc_ws, ctx)
    g = svc.get_group(name)
    if n_recent is not None and (isinstance(n_recent, bool) or not isinstance(n_recent, int) or not 1 <= n_recent <= 1_000_000):
        raise InvalidArgument("n_recent must be between 1 and 1000000")
    bounds = {k: None if v is None else parse_time(v, field=k) for k, v in (("as_of", as_of), ("start", start), ("end", end))}
    keys = [f.key for f in svc.offline_files(g)]
    con = svc.duck()
    try:
        source = f"read_parquet({off.duck_paths(con, svc_ws.store, keys)}, union_by_name = true)" if keys else _empty(g)
        rid, et = _q(g.record_id), _q(g.event_time)
        where = []
        if bounds["as_of"] is not None:
            where.append(f"write_time <= make_timestamptz({int(bounds['as_of'] * 1e6)})")
        if bounds["start"] is not None:
            where.append(f"{et} >= make_timestamptz({int(bounds['start'] * 1e6)})")
        if bounds["end"] is not None:
            where.append(f"{et} < make_timestamptz({int(bounds['end'] * 1e6)})")
        rows = f"(SELECT * FROM {source}{(' WHERE ' + ' AND '.join(where)) if where else ''})"
        if not include_deleted:  # SageMaker's default: a delete removes its record's rows up to it, and itself
            rows = (f"(SELECT r.* FROM {rows} r LEFT JOIN (SELECT {rid} AS __id, max({et}) AS __dt FROM {rows} WHERE is_deleted GROUP BY ALL) d "
                    f"ON r.{rid} = d.__id WHERE NOT r.is_deleted AND (d.__dt IS NULL OR r.{et} > d.__dt))")
        cols = ", ".join([*(f"{derived_sql(g, n)} AS {_q(n)}" for n in g.features), "write_time", "api_invocation_time", "is_deleted"])
        top = f" QUALIFY row_number() OVER (PARTITION BY {rid} ORDER BY {et} DESC, write_time DESC) <= {n_recent}" if n_recent else ""
        sql = f"SELECT {cols} FROM {rows}{top} ORDER BY {rid}, {et}, write_time"
        result = off.new_tmp(svc_ws.settings.home) / f"snapshot-{uuid.uuid4().hex}.parquet"
        try:
            con.execute(f"COPY ({sql}) TO '{result}' (FORMAT parquet)")
            apply_functions(svc_ws, ctx, result, {n: (g, d) for n, d in g.functions.items()})
            lineage = {"producer": "features.to_dataset", "feature_groups": [{"name": g.name, "version": g.version, "files": len(keys)}], "n_recent": n_recent,
                       "as_of": bounds["as_of"], "include_deleted": include_deleted, "start": bounds["start"], "end": bounds["end"]}
            return DatasetService(svc_ws, ctx).commit_parquet(output, result, lineage=lineage, source={"kind": "feature_group", "feature_group": f"{g.name}@{g.version}"})
        finally:
            result.unlink(missing_ok=True)
    except Exception as exc:
        if type(exc).__module__.startswith(("duckdb", "_duckdb")):
            raise InvalidArgument(f"cannot read feature group {name!r}: {str(exc).splitlines()[0][:300]}") from None
        raise
    finally:
        con.close()


def _empty(g: Group) -> str:
    """A relation with the group's columns and no rows (no file can match)."""
    from kiln.features._base import duck_type

    cols = [f"CAST(NULL AS {duck_type(d.type)}) AS {_q(n)}" for n, d in g.stored.items()]
    cols += ["CAST(NULL AS TIMESTAMPTZ) AS write_time", "CAST(NULL AS TIMESTAMPTZ) AS api_invocation_time", "CAST(NULL AS BOOLEAN) AS is_deleted"]
    return f"(SELECT {', '.join(cols)} WHERE false)"
