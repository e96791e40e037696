"""Runs: create, log (in batches), finish, read, search and compare."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, NotFound
from kiln.core.names import check_name, parse_ref
from kiln.core.workspace import Workspace
from kiln.tracking._base import (
    MAX_BATCH,
    MAX_VALUE_LEN,
    check_key,
    check_run_name,
    param_value,
)
from kiln.tracking._experiments import _insert, check_tags, ensure_experiment
from kiln.tracking._models import (
    ArtifactInfo,
    LogResult,
    MetricHistory,
    MetricPoint,
    RunComparison,
    RunDetail,
    INPUTS_TAG,
    RunInfo,
    RunInputs,
    RunPage,
    parse_inputs,
)
from kiln.tracking._resolve import check_run_ref, is_run_id, resolve_run
from kiln.tracking._search import compile_search, decode_page_token, encode_page_token
from kiln.tracking._tables import (
    artifacts,
    experiments,
    latest_metrics,
    metric_chunks,
    run_params,
    run_tags,
    runs,
)

__all__ = ["Point", "RunService", "Scalar", "run_inputs"]

# (key, value, step, timestamp): what the SDK buffers and sends per flush. A missing step
# continues after the key's last step; a missing timestamp is the time the batch arrives.
# Over HTTP a point is the JSON array [key, value, step|null, timestamp|null], and a value
# may be "NaN", "Infinity" or "-Infinity".
Point = tuple[str, float, int | None, float | None]
# A param or tag value: stored as text (numbers by ``str``).
Scalar = str | int | float | bool

_NAN = float("nan")
_MAX_STEP = 2**63 - 1
_MAX_OFFSET = 2**62
_CHUNK = 900
_RUN_COLS = [
    runs.c.id, runs.c.experiment_id, experiments.c.name.label("experiment_name"), runs.c.name,
    runs.c.status, runs.c.parent_run_id, runs.c.source, runs.c.start_time, runs.c.end_time,
    runs.c.created_by, runs.c.failure_reason,
]


# Statements of the hot paths, built once: SQLAlchemy then reuses their compiled form.
_RID = sa.bindparam("rid")
_Q_STATUS = sa.select(runs.c.status).where(runs.c.id == _RID)
# Locked: a batch and a finish of one run serialise, so no point lands after the finish.
_Q_STATUS_LOCKED = _Q_STATUS.with_for_update()
_Q_ROW = sa.select(*_RUN_COLS).select_from(runs.join(experiments, experiments.c.id == runs.c.experiment_id)).where(runs.c.id == _RID)
_Q_FINISH = runs.update().where(runs.c.id == sa.bindparam("rid")).values(
    status=sa.bindparam("status"), end_time=sa.bindparam("end_time"), failure_reason=sa.bindparam("failure_reason")
)
_IDS = sa.bindparam("ids", expanding=True)
_NULL_FLOAT = sa.cast(sa.null(), sa.Float)
# Params, tags and latest metrics of a page of runs, in one round trip.
_Q_HYDRATE = sa.union_all(
    sa.select(run_params.c.run_id, sa.literal(0), run_params.c.key, run_params.c.value, _NULL_FLOAT).where(run_params.c.run_id.in_(_IDS)),
    sa.select(run_tags.c.run_id, sa.literal(1), run_tags.c.key, run_tags.c.value, _NULL_FLOAT).where(run_tags.c.run_id.in_(_IDS)),
    sa.select(latest_metrics.c.run_id, sa.literal(2), latest_metrics.c.key, sa.cast(sa.null(), sa.Text), latest_metrics.c.value).where(latest_metrics.c.run_id.in_(_IDS)),
)
_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, which: str) -> Any:
    """The dialect's INSERT .. ON CONFLICT for latest metrics or tags, built once."""
    key = (conn.dialect.name, which)
    stmt = _UPSERTS.get(key)
    if stmt is None:
        if which == "latest":
            ins = _insert(conn)(latest_metrics)
            ex, cur = ins.excluded, latest_metrics.c
            stmt = ins.on_conflict_do_update(
                index_elements=["run_id", "key"],
                set_={"value": ex.value, "step": ex.step, "timestamp": ex.timestamp},
                where=sa.or_(ex.step > cur.step, sa.and_(ex.step == cur.step, ex.timestamp >= cur.timestamp)),
            )
        else:
            ins = _insert(conn)(run_tags)
            stmt = ins.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": ins.excluded.value})
        _UPSERTS[key] = stmt
    return stmt


def run_inputs(conn: Connection, run_id: str) -> list[str]:
    """The dataset versions recorded as inputs of run ``run_id`` (a full id)."""
    text = conn.execute(sa.select(run_tags.c.value).where(run_tags.c.run_id == run_id, run_tags.c.key == INPUTS_TAG)).scalar()
    return parse_inputs(text)


def _info_kwargs(row: Any) -> dict[str, Any]:
    return {c: getattr(row, c) for c in RunInfo.model_fields}


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def _hydrate(conn: Connection, rows: Sequence[Any]) -> list[RunDetail]:
    """Runs with their params, tags and latest metrics, in one query per chunk of runs."""
    ids = [r.id for r in rows]
    params: dict[str, dict[str, str]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    latest: dict[str, dict[str, float]] = {i: {} for i in ids}
    targets = {0: params, 1: tags}
    for chunk in _chunks(ids):
        for run_id, kind, key, text, number in conn.execute(_Q_HYDRATE, {"ids": list(chunk)}):
            if kind == 2:
                latest[run_id][key] = _NAN if number is None else number
            else:
                targets[kind][run_id][key] = text
    # Rows come straight from our own tables: construct without re-validating (search speed).
    return [
        RunDetail.model_construct(**r._mapping, params=params[r.id], tags=tags[r.id], metrics=latest[r.id], artifacts=None)
        for r in rows
    ]


# A run never changes experiment: remember which one, so logging needs no extra read.
_EXPERIMENT_OF: dict[str, str] = {}
_CHUNK_POINTS = 50_000


def _remember(run_id: str, experiment: str) -> None:
    if len(_EXPERIMENT_OF) > 50_000:
        _EXPERIMENT_OF.clear()
    _EXPERIMENT_OF[run_id] = experiment


class _Series:
    """The points of one metric in one batch, as arrays."""

    __slots__ = ("_raw", "open_steps", "stamps", "steps", "values")

    def __init__(self, key: str, pts: list[Any]) -> None:
        n = len(pts)
        try:
            self.values = np.fromiter((p[1] for p in pts), dtype=np.float64, count=n)
            self.stamps = np.fromiter((p[3] for p in pts), dtype=np.float64, count=n)
        except (TypeError, ValueError):
            raise InvalidArgument(f"metric {key!r}: values and timestamps must be numbers") from None
        raw = [p[2] for p in pts]
        self.open_steps = None in raw
        self.steps: np.ndarray | None = None
        self._raw: list[Any] | None = None
        if not self.open_steps:
            try:
                self.steps = np.fromiter(raw, dtype=np.int64, count=n)
            except (TypeError, ValueError, OverflowError):
                raise InvalidArgument(f"metric {key!r}: steps must be integers") from None
        else:
            self._raw = raw

    def fill_steps(self, last: int) -> None:
        """Give points without a step the key's next steps, after ``last``."""
        raw = self._raw
        if raw is None:
            return
        out = np.empty(len(raw), dtype=np.int64)
        for i, step in enumerate(raw):
            if step is None:
                if last >= _MAX_STEP:
                    raise InvalidArgument(f"metric step would pass {_MAX_STEP}: log the next point with an explicit step")
                step = last + 1
            last = max(last, int(step))
            out[i] = step
        self.steps = out
        self.open_steps = False

    def latest(self) -> tuple[float, int, float]:
        assert self.steps is not None
        top = self.steps.max()
        idx = np.flatnonzero(self.steps == top)
        i = int(idx[np.argmax(self.stamps[idx])]) if len(idx) > 1 else int(idx[0])
        return float(self.values[i]), int(top), float(self.stamps[i])

    def chunk(self, run_id: str, key: str, part: slice) -> dict[str, Any]:
        assert self.steps is not None
        steps = self.steps[part]
        data = self.values[part].astype("<f8").tobytes() + steps.astype("<i8").tobytes() + self.stamps[part].astype("<f8").tobytes()
        return {"run_id": run_id, "key": key, "count": len(steps), "min_step": int(steps.min()), "max_step": int(steps.max()), "data": data}


def _series(points: Sequence[Any]) -> dict[str, _Series]:
    groups: dict[str, list[Any]] = {}
    for p in points:
        g = groups.get(p[0])
        if g is None:
            groups[check_key(p[0])] = g = []
        g.append(p)
    return {k: _Series(k, pts) for k, pts in groups.items()}


def _unpack(blobs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values, steps, stamps = [], [], []
    for count, data in blobs:
        raw = bytes(data)
        values.append(np.frombuffer(raw, dtype="<f8", count=count, offset=0))
        steps.append(np.frombuffer(raw, dtype="<i8", count=count, offset=8 * count))
        stamps.append(np.frombuffer(raw, dtype="<f8", count=count, offset=16 * count))
    return np.concatenate(values), np.concatenate(steps), np.concatenate(stamps)


def _points(metrics: Any) -> list[Any]:
    """``metrics`` as ``(key, value, step, timestamp)`` tuples, a missing timestamp made now.

    Items may be 4-tuples or lists (the wire form), MetricPoints or dicts with ``key`` and
    ``value`` (and optionally ``step`` and ``timestamp``).
    """
    if isinstance(metrics, (str, bytes, Mapping)) or not isinstance(metrics, Iterable):
        raise InvalidArgument("metrics must be a list of (key, value, step, timestamp) points")
    now: float | None = None
    out: list[Any] = []
    append = out.append
    for m in metrics:
        if type(m) is tuple and len(m) == 4 and m[3] is not None:
            append(m)  # the hot path: what Run buffers
            continue
        if isinstance(m, (tuple, list)):
            if len(m) != 4:
                raise InvalidArgument(f"a metric point is [key, value, step, timestamp] (step and timestamp may be null), not {str(m)[:80]}")
            key, value, step, ts = m
        elif isinstance(m, MetricPoint):
            key, value, step, ts = m.key, m.value, m.step, m.timestamp
        elif isinstance(m, Mapping) and "key" in m and "value" in m:
            key, value, step, ts = m["key"], m["value"], m.get("step"), m.get("timestamp")
        else:
            raise InvalidArgument(f"a metric point is [key, value, step, timestamp] or a dict with key and value, not {str(m)[:80]}")
        if ts is None:
            now = time.time() if now is None else now
            ts = now
        append((key, value, step, ts))
    return out


def _scalars(values: Any, kind: str) -> Mapping[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidArgument(f"{kind}s must be a mapping of names to values")
    return values


class RunService:
    """Runs and everything logged to them. Safe to call from many threads."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- create / finish --------------------------------------------------------

    def create(
        self,
        *,
        experiment_name: str,
        run_name: str | None = None,
        tags: Mapping[str, Scalar] | None = None,
        params: Mapping[str, Scalar] | None = None,
        parent_run_id: str | None = None,
        source: str = "",
    ) -> RunInfo:
        """Start a run (status Running) in an experiment, creating the experiment if needed.

        Raises:
            InvalidArgument: a name, key or value is invalid.
            NotFound: ``parent_run_id`` names no run.
        """
        check_name(experiment_name, kind="experiment")
        run_id = uuid.uuid4().hex
        name = check_run_name(run_name) if run_name else f"run-{run_id[:8]}"
        clean_tags = check_tags(_scalars(tags, "tag"))
        clean_params = {check_key(k, kind="param"): param_value(v) for k, v in _scalars(params, "param").items()}
        if parent_run_id is not None:
            parent_run_id = self._resolve(parent_run_id)
        if not isinstance(source, str):
            raise InvalidArgument("source must be text (where the run was started from)")
        now = time.time()
        resource = f"experiments/{experiment_name}/runs/{run_id}"
        with self.ws.mutation(self.ctx, action="runs.create", resource=resource) as (conn, details):
            exp_id, created = ensure_experiment(conn, self.ctx, experiment_name)
            if created:
                details["experiment_created"] = True
            if parent_run_id is not None and conn.execute(_Q_STATUS, {"rid": parent_run_id}).first() is None:
                raise NotFound(f"parent run {parent_run_id} does not exist")
            row = {
                "id": run_id, "experiment_id": exp_id, "name": name, "status": "Running",
                "parent_run_id": parent_run_id, "source": source[:300], "start_time": now,
                "end_time": None, "created_by": self.ctx.actor, "failure_reason": None,
            }
            conn.execute(runs.insert(), row)
            if clean_tags:
                conn.execute(run_tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in clean_tags.items()])
            if clean_params:
                conn.execute(run_params.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in clean_params.items()])
        _remember(run_id, experiment_name)
        return RunInfo(**row, experiment_name=experiment_name)

    def finish(
        self,
        *,
        run_id: str,
        status: str = "Completed",
        failure_reason: str | None = None,
        metrics: Sequence[Point] = (),
        params: Mapping[str, Scalar] | None = None,
    ) -> RunInfo:
        """End a run as Completed or Failed, committing any last metrics in the same transaction.

        ``metrics`` are points as :meth:`log_batch` takes them.

        Raises:
            InvalidArgument: the status is neither Completed nor Failed, or a point is invalid.
            NotFound: no such run.
            Conflict: the run has already finished.
        """
        if status not in ("Completed", "Failed"):
            raise InvalidArgument(f"a run finishes as Completed or Failed, not {str(status)[:40]!r}")
        if failure_reason is not None and not isinstance(failure_reason, str):
            raise InvalidArgument("failure_reason must be text")
        _, row = self._commit(run_id, _points(metrics), _scalars(params, "param"), {}, finish=(status, failure_reason))
        return RunInfo(**_info_kwargs(row))

    # -- logging ------------------------------------------------------------------

    def log_batch(
        self,
        *,
        run_id: str,
        metrics: Sequence[Point] = (),
        params: Mapping[str, Scalar] | None = None,
        tags: Mapping[str, Scalar] | None = None,
    ) -> LogResult:
        """Log metrics, params and tags to a running run in one transaction.

        ``metrics`` items are ``(key, value, step, timestamp)`` tuples (in-process also
        MetricPoints or dicts); a missing step continues after the run's last step for that
        key, a missing timestamp is now. Values may be NaN or infinite.

        Raises:
            NotFound: no such run.
            Conflict: the run has finished, or a param was logged before with another value.
            InvalidArgument: a key or value is invalid.
        """
        return self._commit(run_id, _points(metrics), _scalars(params, "param"), _scalars(tags, "tag"), finish=None)[0]

    def _resolve(self, ref: str) -> str:
        """The full id of run ``ref`` (an id, a unique prefix or a name): no query for a full id."""
        if is_run_id(ref):
            return ref
        check_run_ref(ref)
        with self.ws.db.read() as conn:
            return resolve_run(conn, ref)

    def resolve(self, *, ref: str) -> RunInfo:
        """The run a reference names: its id, a unique id prefix (6+ hex digits), ``experiment/run-name`` or a run name.

        A prefix or name that several runs share is refused with the candidates listed.

        Raises:
            InvalidArgument: not a run reference, or it names several runs.
            NotFound: no run matches.
        """
        with self.ws.db.read() as conn:
            return RunInfo(**_info_kwargs(self._row(conn, ref)))

    def log_inputs(self, *, run_id: str, datasets: Sequence[str]) -> RunInputs:
        """Record dataset versions as inputs of a running run (``cancer@1``), once each.

        The SDK calls this when a dataset is read inside a ``kiln.Run``; a model registered
        from the run then takes them as its lineage. They are kept, in the order first
        read, in the run's ``kiln.inputs`` tag (a JSON list).

        Raises:
            InvalidArgument: a reference is not an exact version (``name@N``).
            NotFound: no such run.
            Conflict: the run has finished.
        """
        if isinstance(datasets, str) or not isinstance(datasets, Sequence):
            raise InvalidArgument("datasets must be a list of dataset versions, e.g. [\"cancer@1\"]")
        refs = []
        for ref in datasets:
            parsed = parse_ref(ref, kind="dataset")
            if parsed.version is None:
                raise InvalidArgument(f"a run input is an exact dataset version (name@N), not {ref!r}")
            refs.append(f"{parsed.name}@{parsed.version}")
        run_id = self._resolve(run_id)
        resource = f"experiments/{self._experiment_of(run_id)}/runs/{run_id}"
        with self.ws.mutation(self.ctx, action="runs.log_inputs", resource=resource, details={"datasets": refs}) as (conn, _):
            status = conn.execute(_Q_STATUS_LOCKED, {"rid": run_id}).scalar()
            if status is None:
                raise NotFound(f"run {run_id} does not exist; `kiln runs ls EXPERIMENT` lists runs")
            if status != "Running":
                raise Conflict(f"run {run_id} is {status}; inputs can only be recorded on a running run")
            current = run_inputs(conn, run_id)
            merged = current + [r for r in dict.fromkeys(refs) if r not in current]
            if merged != current:
                text = json.dumps(merged)
                if len(text) > MAX_VALUE_LEN:
                    raise InvalidArgument(f"a run records inputs up to {MAX_VALUE_LEN} characters; this run has {len(current)}")
                conn.execute(_upsert(conn, "tags"), [{"run_id": run_id, "key": INPUTS_TAG, "value": text}])
        return RunInputs(run_id=run_id, datasets=merged)

    def _experiment_of(self, run_id: str) -> str:
        name = _EXPERIMENT_OF.get(run_id)
        if name is None:
            with self.ws.db.read() as conn:
                name = self._row(conn, run_id).experiment_name
            _remember(run_id, name)
        return name

    def _commit(
        self,
        run_id: str,
        points: Sequence[Any],
        params: Mapping[str, Any],
        tags: Mapping[str, Any],
        *,
        finish: tuple[str, str | None] | None,
    ) -> tuple[LogResult, Any]:
        run_id = self._resolve(run_id)
        if len(points) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} metric points per batch; send several batches")
        series = _series(points)
        clean_params = {check_key(k, kind="param"): param_value(v) for k, v in params.items()}
        clean_tags = check_tags(dict(tags))
        action = "runs.finish" if finish else "runs.log"
        # The metric hot path is audited once per batch (and once at finish), never per point.
        details: dict[str, Any] = {"metrics": len(points), "params": len(clean_params), "tags": len(clean_tags)}
        if finish:
            details["status"] = finish[0]
        resource = f"experiments/{self._experiment_of(run_id)}/runs/{run_id}"
        row = None
        with self.ws.mutation(self.ctx, action=action, resource=resource, details=details) as (conn, _):
            status = conn.execute(_Q_STATUS_LOCKED, {"rid": run_id}).scalar()
            if status is None:
                raise NotFound(f"run {run_id} does not exist; `kiln runs ls EXPERIMENT` lists runs")
            if status != "Running":
                raise Conflict(f"run {run_id} is {status}; metrics, params and tags can only be logged to a running run")
            if clean_params:
                self._insert_params(conn, run_id, clean_params)
            if clean_tags:
                conn.execute(_upsert(conn, "tags"), [{"run_id": run_id, "key": k, "value": v} for k, v in clean_tags.items()])
            if series:
                self._insert_series(conn, run_id, series)
            if finish:
                reason = finish[1][:4000] if finish[1] else None
                conn.execute(_Q_FINISH, {"rid": run_id, "status": finish[0], "end_time": time.time(), "failure_reason": reason})
                row = self._row(conn, run_id)
        result = LogResult(run_id=run_id, metrics=len(points), params=len(clean_params), tags=len(clean_tags))
        return result, row

    def _insert_params(self, conn: Connection, run_id: str, params: dict[str, str]) -> None:
        existing = dict(
            conn.execute(
                sa.select(run_params.c.key, run_params.c.value).where(run_params.c.run_id == run_id, run_params.c.key.in_(list(params)))
            ).all()
        )
        for key, value in params.items():
            if key in existing and existing[key] != value:
                raise Conflict(
                    f"param {key!r} of run {run_id} is already {existing[key]!r}; params cannot change "
                    "(log another name, or a metric for values that change)"
                )
        new = [{"run_id": run_id, "key": k, "value": v} for k, v in params.items() if k not in existing]
        if new:
            conn.execute(run_params.insert(), new)

    def _insert_series(self, conn: Connection, run_id: str, series: dict[str, _Series]) -> None:
        missing = [k for k, s in series.items() if s.steps is None or s.open_steps]
        if missing:
            last = dict(
                conn.execute(
                    sa.select(latest_metrics.c.key, latest_metrics.c.step).where(latest_metrics.c.run_id == run_id, latest_metrics.c.key.in_(missing))
                ).all()
            )
            for key in missing:
                series[key].fill_steps(last.get(key, -1))
        chunks = []
        latest = []
        for key, s in series.items():
            for lo in range(0, len(s.values), _CHUNK_POINTS):
                part = slice(lo, lo + _CHUNK_POINTS)
                chunks.append(s.chunk(run_id, key, part))
            value, step, ts = s.latest()
            latest.append({"run_id": run_id, "key": key, "value": None if value != value else value, "step": step, "timestamp": ts})
        conn.execute(metric_chunks.insert(), chunks)
        conn.execute(_upsert(conn, "latest"), latest)

    # -- reads ----------------------------------------------------------------------

    def _row(self, conn: Connection, run_id: str) -> Any:
        run_id = resolve_run(conn, run_id)
        row = conn.execute(_Q_ROW, {"rid": run_id}).first()
        if row is None:
            raise NotFound(f"run {run_id} does not exist; `kiln runs ls EXPERIMENT` lists runs")
        return row

    def get_info(self, *, run_id: str) -> RunInfo:
        """A run's own fields (no params or metrics)."""
        with self.ws.db.read() as conn:
            return RunInfo(**_info_kwargs(self._row(conn, run_id)))

    def get(self, *, run_id: str) -> RunDetail:
        """A run with its params, tags, latest metrics and artifacts.

        Raises:
            NotFound: no such run.
        """
        with self.ws.db.read() as conn:
            detail = _hydrate(conn, [self._row(conn, run_id)])[0]
            arts = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == detail.id).order_by(artifacts.c.name)).all()
        return RunDetail.model_validate(
            {**detail.__dict__, "artifacts": [ArtifactInfo(**{k: getattr(a, k) for k in ArtifactInfo.model_fields}) for a in arts]}
        )

    def metric_history(self, *, run_id: str, key: str) -> MetricHistory:
        """Every logged point of one metric, by step then time.

        Raises:
            NotFound: no such run, or the run has no such metric.
        """
        check_key(key)
        with self.ws.db.read() as conn:
            run_id = self._row(conn, run_id).id
            blobs = conn.execute(
                sa.select(metric_chunks.c.count, metric_chunks.c.data)
                .where(metric_chunks.c.run_id == run_id, metric_chunks.c.key == key)
                .order_by(metric_chunks.c.id)
            ).all()
        if not blobs:
            raise NotFound(f"run {run_id} has no metric {key!r}")
        values, steps, stamps = _unpack(blobs)
        order = np.lexsort((stamps, steps))
        return MetricHistory.model_construct(
            run_id=run_id, key=key, steps=steps[order].tolist(), values=values[order].tolist(), timestamps=stamps[order].tolist()
        )

    def search(
        self,
        *,
        experiment_names: Sequence[str] | None = None,
        filter: str | None = None,  # noqa: A002 - the public name users know
        order_by: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        page_token: str | None = None,
    ) -> RunPage:
        """Runs matching a filter, in order, one page at a time.

        Args:
            experiment_names: only runs of these experiments (all when empty).
            filter: e.g. ``metrics.auc > 0.9 and params.max_depth = '5'``.
            order_by: e.g. ``["metrics.auc DESC"]``; ties by newest start time.
            limit: runs per page (1 to 10,000).
            offset: runs to skip (or pass ``page_token`` from the previous page).
            page_token: ``next_page_token`` of the previous page of the same search.

        Raises:
            InvalidArgument: the filter, order or page token is invalid.
            NotFound: an experiment does not exist.
        """
        if isinstance(experiment_names, str):
            experiment_names = [experiment_names]
        if isinstance(order_by, str):
            order_by = [order_by]
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidArgument("offset must be 0 or more")
        if filter is not None and not isinstance(filter, str):
            raise InvalidArgument("filter must be text, e.g. \"metrics.auc > 0.9\"")
        if page_token is not None and not isinstance(page_token, str):
            raise InvalidArgument("page_token must be the next_page_token of the previous page")
        names = [check_name(n, kind="experiment") for n in experiment_names or []]
        spec = compile_search(filter, list(order_by or []))
        fingerprint = [sorted(names), filter or "", list(order_by or []), limit]
        if page_token:
            offset = decode_page_token(page_token, fingerprint)
        if offset > _MAX_OFFSET:
            raise InvalidArgument("offset must be below 2**62")
        q = sa.select(*_RUN_COLS).select_from(spec.from_)
        with self.ws.db.read() as conn:
            if names:
                found = dict(conn.execute(sa.select(experiments.c.name, experiments.c.id).where(experiments.c.name.in_(names))).all())
                missing = [n for n in names if n not in found]
                if missing:
                    raise NotFound(f"experiment {missing[0]!r} does not exist; `kiln experiments ls` lists them")
                q = q.where(runs.c.experiment_id.in_(list(found.values())))
            if spec.where is not None:
                q = q.where(spec.where)
            rows = conn.execute(q.order_by(*spec.order_by).limit(limit + 1).offset(offset)).all()
            page = _hydrate(conn, rows[:limit])
        token = encode_page_token(offset + limit, fingerprint) if len(rows) > limit else None
        return RunPage.model_construct(runs=page, next_page_token=token, total=None)

    def compare(self, *, run_ids: Sequence[str]) -> RunComparison:
        """Runs side by side: params, tags and latest metrics as rows, runs as columns.

        Raises:
            InvalidArgument: fewer than 1 or more than 100 runs, or an invalid run id.
            NotFound: a run does not exist.
        """
        if isinstance(run_ids, str) or not isinstance(run_ids, Sequence):
            raise InvalidArgument("run_ids must be a list of run ids")
        if not 1 <= len(run_ids) <= 100:
            raise InvalidArgument("compare between 1 and 100 runs")
        with self.ws.db.read() as conn:
            details = _hydrate(conn, [self._row(conn, r) for r in run_ids])

        def table(attr: str) -> dict[str, list[Any]]:
            keys = sorted({k for d in details for k in getattr(d, attr)})
            return {k: [getattr(d, attr).get(k) for d in details] for k in keys}

        return RunComparison(
            runs=[RunInfo(**{k: getattr(d, k) for k in RunInfo.model_fields}) for d in details],
            params=table("params"), metrics=table("metrics"), tags=table("tags"),
        )

    def check_status(self, *, run_id: str) -> str:
        with self.ws.db.read() as conn:
            return str(self._row(conn, run_id).status)

