"""Monitoring: baselines, comparisons, monitors over endpoints' captured data, their runs
(on demand or on a cron schedule the server keeps), ground truth and model quality."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
import uuid
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, InvalidArgument, KilnError, NotFound
from kiln.core.names import check_name, parse_ref
from kiln.core.workspace import Workspace
from kiln.monitoring import _tables as t
from kiln.monitoring._models import (
    BaselineFiles,
    CompareResult,
    GroundTruthUpload,
    Monitor,
    MonitorRun,
    RunReport,
)

__all__ = ["MonitoringService", "referenced_keys"]

log = logging.getLogger("kiln.monitoring")

KINDS = ("data_quality", "model_quality")
ALIASES = {"hourly": "0 * * * *", "daily": "0 0 * * *"}
MAX_MISSED_RECORDED = 100  # a longer outage records this many missed slots, the latest ones
MAX_ROWS = 1_000_000  # captured rows read per run; more are counted and left out
MAX_WINDOW_S = 31 * 86_400.0
MAX_GROUND_TRUTH_BYTES = 64 * 1024 * 1024
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_HOUR_KEY = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def referenced_keys(conn: Any) -> set[str]:
    """Store prefixes that live monitors own (for ``kiln gc``)."""
    return {f"monitoring/{r.id}/" for r in conn.execute(sa.select(t.monitors.c.id))}


def cron_of(schedule: str) -> str | None:
    """The cron expression of a schedule (``hourly``, ``daily``, a 5-field cron, ``none``)."""
    from croniter import croniter

    text = (schedule or "").strip()
    if text.lower() == "none":
        return None
    expr = ALIASES.get(text.lower(), text)
    if len(expr) > 120 or len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise InvalidArgument(f"schedule {schedule!r} is not hourly, daily, none or a 5-field cron expression such as '*/15 * * * *'")
    return expr


def next_slot(expr: str, after: float) -> float:
    from croniter import croniter

    return float(croniter(expr, after).get_next(float))


def prev_slot(expr: str, before: float) -> float:
    from croniter import croniter

    return float(croniter(expr, before).get_prev(float))


def parse_window(window: str | None, *, now: float) -> tuple[float, float]:
    """``1h`` / ``30m`` / ``2d`` (ending now) or ``START/END`` in ISO-8601."""
    text = (window or "1h").strip()
    m = _DURATION.match(text)
    if m:
        span = float(m.group(1)) * _UNITS[m.group(2)]
        start, end = now - span, now
    elif "/" in text:
        a, _, b = text.partition("/")
        start, end = _iso(a), _iso(b)
    else:
        raise InvalidArgument(f"window {window!r}: use a duration ending now (1h, 30m, 2d) or START/END in ISO-8601 "
                              "(2026-01-01T00:00:00Z/2026-01-01T01:00:00Z)")
    if not end > start:
        raise InvalidArgument(f"window {window!r} ends before it starts")
    if end - start > MAX_WINDOW_S:
        raise InvalidArgument(f"window {window!r} is longer than 31 days; run the monitor over shorter windows")
    return start, end


def _iso(text: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"{text!r} is not an ISO-8601 time such as 2026-01-01T00:00:00Z") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _run(row: Any, monitor: str, *, full: dict[str, Any] | None = None, violations: list[dict[str, Any]] | None = None) -> MonitorRun:
    summary = orjson.loads(row.summary) if row.summary else {}
    return MonitorRun(id=row.id, monitor=monitor, status=row.status, trigger=row.trigger, scheduled_for=row.scheduled_for,
                      window_start=row.window_start, window_end=row.window_end, started_at=row.started_at, finished_at=row.finished_at,
                      rows=row.rows, violations=row.violations, drift=bool(row.drift), failure_reason=row.failure_reason,
                      metrics=summary.get("metrics", []), faults=summary.get("faults", {}), result=full, constraint_violations=violations)


class MonitoringService:
    """Baselines, comparisons and monitors, checked and audited."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- baselines and comparisons (no endpoint) -------------------------------------------

    def _dataset(self, ref: str) -> Any:
        from kiln.lake import DatasetService

        if not isinstance(ref, str):
            raise InvalidArgument("a dataset reference is a string such as sales or sales@3")
        parse_ref(ref, kind="dataset")
        return DatasetService(self.ws, self.ctx).arrow_dataset(ref)

    def baseline(self, *, dataset: str, monitoring_config: dict[str, Any] | None = None) -> BaselineFiles:
        """Suggest a baseline: ``statistics.json`` and ``constraints.json`` of a dataset version.

        Args:
            dataset: ``name`` or ``name@3``.
            monitoring_config: overrides of Model Monitor's monitoring_config defaults.

        Raises:
            NotFound: no such dataset or version.
        """
        self.ctx.require("viewer")
        from kiln.monitoring._compare import baseline_files

        if monitoring_config is not None and not isinstance(monitoring_config, dict):
            raise InvalidArgument("monitoring_config must be an object, e.g. {\"datatype_check_threshold\": 0.2}")
        stats, constraints = baseline_files(self._dataset(dataset), monitoring_config=monitoring_config)
        return BaselineFiles(statistics=stats, constraints=constraints)

    def compare(self, *, current: str, reference: str | None = None, statistics: dict[str, Any] | None = None,
                constraints: dict[str, Any] | None = None, methods: dict[str, str] | None = None,
                thresholds: dict[str, float] | None = None, drift_share: float = 0.5, psi: bool = False) -> CompareResult:
        """Check a dataset against another dataset or a baseline's files, with no endpoint.

        Args:
            current: the dataset version to check (``name`` or ``name@3``).
            reference: the reference dataset version; or give ``statistics`` (and ``constraints``).
            statistics: a baseline's ``statistics.json`` (Kiln's or SageMaker's).
            constraints: a baseline's ``constraints.json`` (default: suggested from ``statistics``).
            methods: drift method per column (``"*"``: all): ks, chisquare, z, wasserstein, jensenshannon, psi, linf.
            thresholds: threshold per column (``"*"``: all).
            drift_share: share of drifted columns at which the dataset drifts.
            psi: also report each column's PSI.
        """
        self.ctx.require("viewer")
        from kiln.monitoring._compare import compare

        options = _options(methods, thresholds, drift_share, psi)
        if (reference is None) == (statistics is None):
            raise InvalidArgument("give a reference dataset or a baseline's statistics (and constraints), not both or neither")
        ref = self._dataset(reference) if reference is not None else None
        cur = self._dataset(current)
        done = compare(cur, reference=ref, statistics=statistics, constraints=constraints, options=options,
                       title=f"Data quality: {current} against {reference or 'the baseline'}")
        return CompareResult(statistics=done.statistics, constraint_violations=done.constraint_violations, result=done.result, html=done.html)

    # -- monitors ----------------------------------------------------------------------------

    def create(self, *, name: str, endpoint: str, baseline: str | None = None, statistics: dict[str, Any] | None = None,
               constraints: dict[str, Any] | None = None, schedule: str = "hourly", kind: str = "data_quality",
               problem_type: str | None = None, label: str | None = None, prediction: str | None = None,
               positive_label: str | int | None = None, methods: dict[str, str] | None = None,
               thresholds: dict[str, float] | None = None, drift_share: float = 0.5, psi: bool = False) -> Monitor:
        """Create a monitor of an endpoint's captured data.

        Args:
            name: the monitor's name.
            endpoint: the endpoint whose capture it reads.
            baseline: a dataset version to baseline on (data quality: its statistics and
                suggested constraints; model quality: its ``label`` and ``prediction`` columns' metrics).
            statistics: instead of ``baseline``, a ``statistics.json`` (data quality).
            constraints: a ``constraints.json``: data quality's (with ``statistics``), or model
                quality's (``binary_classification_constraints`` ...) instead of ``baseline``.
            schedule: ``hourly``, ``daily``, a 5-field cron expression, or ``none`` (on demand).
            kind: ``data_quality`` or ``model_quality``.
            problem_type: model quality: BinaryClassification, MulticlassClassification or Regression.
            label: model quality baseline: the column of true labels.
            prediction: model quality baseline: the column of predictions.
            positive_label: binary classification: the positive class (default 1).
            methods: drift method per column (``"*"``: all).
            thresholds: drift threshold per column (``"*"``: all).
            drift_share: share of drifted columns at which the dataset drifts.
            psi: also report PSI per column.

        Raises:
            AlreadyExists: a monitor has that name.
            NotFound: no such endpoint or dataset.
        """
        check_name(name, kind="monitor")
        check_name(endpoint, kind="endpoint")
        try:
            self.ctx.require("editor")
            if kind not in KINDS:
                raise InvalidArgument(f"kind must be data_quality or model_quality, not {kind!r}")
            expr = cron_of(schedule)
            _options(methods, thresholds, drift_share, psi)
            prefix = self._endpoint_prefix(endpoint)
            files, info, config = self._baseline_for(kind, baseline, statistics, constraints, problem_type, label, prediction, positive_label)
        except KilnError as exc:
            self.ws.audit_failure(self.ctx, action="monitors.create", resource=f"monitors/{name}", error=exc)
            raise
        with self.ws.db.read() as conn:
            if conn.execute(sa.select(t.monitors.c.id).where(t.monitors.c.name == name)).first() is not None:
                raise AlreadyExists(f"monitor {name!r} already exists; delete it first or pick another name")
        mid = uuid.uuid4().hex
        key = f"monitoring/{mid}/baseline"
        for fname, doc in files.items():  # files first; the row below makes them visible
            self.ws.store.put_bytes(f"{key}/{fname}", orjson.dumps(doc))
        now = time.time()
        config.update(capture_prefix=prefix, methods=dict(methods or {}), thresholds=dict(thresholds or {}), drift_share=drift_share, psi=psi,
                      baseline=info, cron=expr)
        row = {"id": mid, "name": name, "kind": kind, "endpoint": endpoint, "schedule": schedule.strip().lower() if schedule.strip().lower() in (*ALIASES, "none") else expr,
               "baseline_key": key, "config": _json(config), "next_slot": next_slot(expr, now) if expr else None,
               "created_at": now, "created_by": self.ctx.actor}
        try:
            with self.ws.mutation(self.ctx, action="monitors.create", resource=f"monitors/{name}", details={"endpoint": endpoint, "kind": kind}) as (conn, _):
                conn.execute(t.monitors.insert().values(**row))
        except Exception as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise AlreadyExists(f"monitor {name!r} already exists; delete it first or pick another name") from None
            raise
        return self._monitor(self._row(name))

    def _endpoint_prefix(self, endpoint: str) -> str:
        from kiln.serving import _tables as st

        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(st.endpoints.c.spec).where(st.endpoints.c.name == endpoint)).first()
        if row is None:
            raise NotFound(f"endpoint {endpoint!r} does not exist; create it first (kiln endpoints create) with data capture on")
        try:
            prefix = (orjson.loads(row.spec).get("capture") or {}).get("prefix") or ""
        except orjson.JSONDecodeError:
            prefix = ""
        return str(prefix or f"capture/{endpoint}").strip("/")

    def _baseline_for(self, kind: str, baseline: str | None, statistics: Any, constraints: Any, problem_type: str | None,
                      label: str | None, prediction: str | None, positive_label: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The baseline files to store, a digest of them, and the config they imply."""
        from kiln.monitoring import _quality as q
        from kiln.monitoring._constraints import check_baseline

        if kind == "data_quality":
            if (baseline is None) == (statistics is None):
                raise InvalidArgument("a data quality monitor needs --baseline DATASET or a baseline's statistics.json (not both)")
            if baseline is not None:
                from kiln.monitoring._compare import baseline_files

                stats, suggested = baseline_files(self._dataset(baseline))
                cons = constraints or suggested
            else:
                from kiln.monitoring._compare import validate_baseline

                stats, cons = statistics, validate_baseline(statistics, constraints)
            check_baseline(stats, cons)
            return ({"statistics.json": stats, "constraints.json": cons},
                    {"rows": stats.get("dataset", {}).get("item_count"), "features": [f["name"] for f in stats["features"]], "source": baseline or "files"}, {})
        if problem_type not in q.PROBLEM_TYPES:
            raise InvalidArgument(f"a model quality monitor needs problem_type {', '.join(q.PROBLEM_TYPES)}")
        pos = 1 if positive_label is None else positive_label
        if baseline is not None:
            if constraints is not None:
                raise InvalidArgument("give a baseline dataset or model quality constraints, not both")
            if not label or not prediction:
                raise InvalidArgument("a model quality baseline needs --label COLUMN and --prediction COLUMN of the dataset")
            ds = self._dataset(baseline)
            missing = [c for c in (label, prediction) if c not in ds.schema.names]
            if missing:
                raise InvalidArgument(f"{baseline} has no column {missing[0]!r}; its columns are {', '.join(ds.schema.names)}")
            tbl = ds.to_table(columns=[label, prediction])
            metrics = q.quality_metrics(tbl.column(label).to_pylist(), tbl.column(prediction).to_pylist(), problem_type=problem_type, positive_label=pos)
            cons = q.suggest_quality_constraints(metrics, problem_type=problem_type)
        elif constraints is not None:
            q.check_quality_constraints(constraints)
            cons, metrics = constraints, {}
        else:
            raise InvalidArgument("a model quality monitor needs --baseline DATASET (with --label and --prediction) or a model quality constraints.json")
        return {"constraints.json": cons}, {"metrics": metrics, "source": baseline or "files"}, {"problem_type": problem_type, "positive_label": pos}

    def _row(self, name: str) -> Any:
        check_name(name, kind="monitor")
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(t.monitors).where(t.monitors.c.name == name)).first()
        if row is None:
            raise NotFound(f"monitor {name!r} does not exist; see kiln monitor list")
        return row

    def _monitor(self, row: Any) -> Monitor:
        config = orjson.loads(row.config)
        with self.ws.db.read() as conn:
            last = conn.execute(sa.select(t.runs).where(t.runs.c.monitor_id == row.id).order_by(t.runs.c.started_at.desc()).limit(1)).first()
        return Monitor(name=row.name, kind=row.kind, endpoint=row.endpoint, schedule=row.schedule, next_run_at=row.next_slot,
                       config={k: v for k, v in config.items() if k != "baseline"}, baseline=config.get("baseline", {}),
                       last_run=None if last is None else {"id": last.id, "status": last.status, "started_at": last.started_at, "violations": last.violations},
                       created_at=row.created_at, created_by=row.created_by)

    def list(self) -> list[Monitor]:
        """Every monitor, by name."""
        self.ctx.require("viewer")
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(t.monitors).order_by(t.monitors.c.name)).all()
        return [self._monitor(r) for r in rows]

    def describe(self, *, name: str) -> Monitor:
        """One monitor: its endpoint, baseline digest, schedule, next slot and last run."""
        self.ctx.require("viewer")
        return self._monitor(self._row(name))

    def delete(self, *, name: str) -> Monitor:
        """Delete a monitor with its runs and ground truth (its files go with ``kiln gc``)."""
        check_name(name, kind="monitor")
        with self.ws.mutation(self.ctx, action="monitors.delete", resource=f"monitors/{name}") as (conn, _):
            row = conn.execute(sa.select(t.monitors).where(t.monitors.c.name == name)).first()
            if row is None:
                raise NotFound(f"monitor {name!r} does not exist; see kiln monitor list")
            out = self._monitor(row)
            conn.execute(t.runs.delete().where(t.runs.c.monitor_id == row.id))
            conn.execute(t.ground_truth.delete().where(t.ground_truth.c.monitor_id == row.id))
            conn.execute(t.monitors.delete().where(t.monitors.c.id == row.id))
        try:
            self.ws.store.delete(f"monitoring/{row.id}")
        except Exception:  # noqa: BLE001 - the row is gone; what is left is garbage for kiln gc
            pass
        return out

    # -- runs ------------------------------------------------------------------------------

    def run(self, *, name: str, window: str | None = None) -> MonitorRun:
        """Run a monitor now over a window of captured data (default: the last hour).

        Args:
            name: the monitor.
            window: ``1h``, ``30m``, ``2d`` (ending now) or ``START/END`` in ISO-8601.

        Returns:
            The run, with status Completed, CompletedWithViolations or Failed (and why).
        """
        check_name(name, kind="monitor")
        self.ctx.require("editor")
        start, end = parse_window(window, now=time.time())
        return self._execute(self._row(name), start, end, trigger="manual", scheduled_for=None)

    def _execute(self, row: Any, start: float, end: float, *, trigger: str, scheduled_for: float | None) -> MonitorRun:
        from kiln.monitoring._metrics import run_metrics

        started = time.time()
        rid = uuid.uuid4().hex
        key = f"monitoring/{row.id}/runs/{rid}"
        try:
            result, violations, files = self._evaluate(row, start, end)
            result.update(monitor=row.name, endpoint=row.endpoint, window_start=start, window_end=end, run_id=rid)
            for fname, data in files.items():
                self.ws.store.put_bytes(f"{key}/{fname}", data)
            self.ws.store.put_bytes(f"{key}/constraint_violations.json", orjson.dumps({"violations": violations}))
            self.ws.store.put_bytes(f"{key}/result.json", orjson.dumps(result))
            metrics = [m.to_dict() for m in run_metrics(result)]
            status = "CompletedWithViolations" if violations else "Completed"
            values = {"status": status, "rows": int(result.get("current", {}).get("rows") or 0), "violations": len(violations),
                      "drift": bool(result.get("dataset_drift", {}).get("drift")), "failure_reason": None, "key": key,
                      "summary": _json({"metrics": metrics, "faults": result.get("faults", {})})}
        except KilnError as exc:
            values = self._failed(exc.message)
        except Exception as exc:  # noqa: BLE001 - a run that breaks is recorded as Failed, never a 500
            values = self._failed(f"{type(exc).__name__}: {str(exc)[:300]}")
        rec = {"id": rid, "monitor_id": row.id, "trigger": trigger, "scheduled_for": scheduled_for, "window_start": start,
               "window_end": end, "started_at": started, "finished_at": time.time(), **values}
        with self.ws.mutation(self.ctx, action="monitors.run", resource=f"monitors/{row.name}",
                              details={"run": rid, "status": rec["status"], "trigger": trigger}) as (conn, _):
            if conn.execute(sa.select(t.monitors.c.id).where(t.monitors.c.id == row.id)).first() is None:
                raise NotFound(f"monitor {row.name!r} was deleted while it ran")
            conn.execute(t.runs.insert().values(**rec))
        if values["status"] != "Failed":
            self._store_metrics(row.name, metrics)
        return _run(_Rec(rec), row.name)

    def _store_metrics(self, monitor: str, metrics: list[dict[str, Any]]) -> None:
        """The run's metrics into the metrics store (namespace ``kiln/monitoring``), for alarms.
        The run is recorded already: a metric the store refuses (a window older than it keeps)
        is logged, never a failed run."""
        from kiln.metrics import put_platform_metrics

        try:
            put_platform_metrics(self.ws, "kiln/monitoring", metrics)
        except KilnError as exc:
            log.warning("monitor %s: its run's metrics were not stored: %s", monitor, exc.message)

    @staticmethod
    def _failed(reason: str) -> dict[str, Any]:
        return {"status": "Failed", "rows": 0, "violations": 0, "drift": False, "failure_reason": reason, "key": None, "summary": _json({})}

    def _capture(self, row: Any, config: dict[str, Any], features: list[str], start: float, end: float) -> Any:
        from kiln.monitoring._capture import CaptureRows, read_capture

        prefix = config.get("capture_prefix") or f"capture/{row.endpoint}"
        rows = CaptureRows()
        try:
            keys = self.ws.store.list(prefix)
        except FileNotFoundError:
            keys = []
        for k, _size, _mtime in sorted(keys):
            m = _HOUR_KEY.search(k)
            if m is None or not k.endswith(".jsonl"):
                continue
            hour = dt.datetime(*map(int, m.groups()), tzinfo=dt.UTC).timestamp()
            if hour >= end or hour + 3600 <= start:
                continue
            try:
                data = self.ws.store.read_bytes(k)
            except FileNotFoundError:
                rows.fault("vanished_files")
                continue
            read_capture(data.splitlines(), features=features, start=start, end=end, rows=rows)
            if len(rows.rows) > MAX_ROWS:
                rows.fault("rows_over_limit", len(rows.rows) - MAX_ROWS)
                del rows.rows[MAX_ROWS:], rows.predictions[MAX_ROWS:], rows.ids[MAX_ROWS:]
                break
        return rows

    def _evaluate(self, row: Any, start: float, end: float) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, bytes]]:
        config = orjson.loads(row.config)
        if row.kind == "model_quality":
            return self._evaluate_quality(row, config, start, end)
        from kiln.monitoring._compare import compare

        stats = orjson.loads(self.ws.store.read_bytes(f"{row.baseline_key}/statistics.json"))
        cons = orjson.loads(self.ws.store.read_bytes(f"{row.baseline_key}/constraints.json"))
        features = [f["name"] for f in stats["features"]]
        rows = self._capture(row, config, features, start, end)
        if not rows.rows:
            raise InvalidArgument(f"no captured data of endpoint {row.endpoint!r} in the window"
                                  + (f" ({', '.join(f'{k}: {v}' for k, v in rows.faults.items())})" if rows.faults else "")
                                  + "; send traffic with data capture on, or run over another --window")
        done = compare(rows.table(features), statistics=stats, constraints=cons,
                       options=_options(config.get("methods"), config.get("thresholds"), config.get("drift_share", 0.5), config.get("psi", False)),
                       faults={"capture": rows.faults, "events": rows.events}, title=f"Monitor {row.name}: endpoint {row.endpoint}")
        return done.result, done.violations, {"statistics.json": orjson.dumps(done.statistics), "report.html": done.html.encode()}

    def _evaluate_quality(self, row: Any, config: dict[str, Any], start: float, end: float) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, bytes]]:
        from kiln.monitoring import _quality as q
        from kiln.monitoring._report import render

        cons = orjson.loads(self.ws.store.read_bytes(f"{row.baseline_key}/constraints.json"))
        rows = self._capture(row, config, [], start, end)
        truth: dict[str, list[Any]] = {}
        with self.ws.db.read() as conn:
            keys = [r.key for r in conn.execute(sa.select(t.ground_truth.c.key).where(t.ground_truth.c.monitor_id == row.id).order_by(t.ground_truth.c.created_at))]
        for k in keys:
            truth.update(orjson.loads(self.ws.store.read_bytes(k)))
        y_true, y_pred = [], []
        unlabelled = no_prediction = 0
        for (ident, i), pred in zip(rows.ids, rows.predictions, strict=True):
            labels = truth.get(ident)
            if labels is None or i >= len(labels):
                unlabelled += 1
            elif pred is None:
                no_prediction += 1
            else:
                y_true.append(labels[i])
                y_pred.append(pred)
        if not y_true:
            raise InvalidArgument(f"no captured prediction of endpoint {row.endpoint!r} in the window has ground truth "
                                  f"({len(rows.ids)} captured rows, {len(truth)} labelled ids); upload it with kiln monitor ground-truth")
        metrics = q.quality_metrics(y_true, y_pred, problem_type=config["problem_type"], positive_label=config.get("positive_label", 1))
        violations = q.check_quality(cons, metrics, problem_type=config["problem_type"])
        result = {"kind": "model_quality", "created_at": time.time(), "current": {"rows": len(y_true)},
                  "model_quality": {"problem_type": config["problem_type"], "metrics": metrics, "matched": len(y_true),
                                    "unlabelled": unlabelled, "no_prediction": no_prediction},
                  "violations": {"count": len(violations), "by_check": {v["constraint_check_type"]: 1 for v in violations}},
                  "faults": {"capture": rows.faults, "events": rows.events}}
        page = render(result, violations, title=f"Monitor {row.name}: model quality of {row.endpoint}")
        return result, violations, {"report.html": page.encode()}

    def runs(self, *, name: str, limit: int = 50) -> list[MonitorRun]:
        """A monitor's runs (and missed slots), newest first."""
        self.ctx.require("viewer")
        if not 1 <= int(limit) <= 1000:
            raise InvalidArgument("limit must be between 1 and 1000")
        row = self._row(name)
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(t.runs).where(t.runs.c.monitor_id == row.id)
                                .order_by(t.runs.c.started_at.desc(), t.runs.c.window_end.desc()).limit(int(limit))).all()
        return [_run(r, name) for r in rows]

    def _run_row(self, name: str, run_id: str) -> tuple[Any, Any]:
        row = self._row(name)
        if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-f]{4,32}", run_id):
            raise InvalidArgument(f"run id {str(run_id)[:40]!r} is not a run id (hex, as kiln monitor runs lists them)")
        with self.ws.db.read() as conn:
            found = conn.execute(sa.select(t.runs).where(t.runs.c.monitor_id == row.id, t.runs.c.id.like(f"{run_id}%")).limit(2)).all()
        if len(found) != 1:
            raise NotFound(f"monitor {name!r} has {'no run' if not found else 'several runs'} with id {run_id!r}; see kiln monitor runs {name}")
        return row, found[0]

    def get_run(self, *, name: str, run_id: str) -> MonitorRun:
        """One run with its whole result document and violations."""
        self.ctx.require("viewer")
        _, r = self._run_row(name, run_id)
        full = violations = None
        if r.key:
            full = orjson.loads(self.ws.store.read_bytes(f"{r.key}/result.json"))
            violations = orjson.loads(self.ws.store.read_bytes(f"{r.key}/constraint_violations.json"))["violations"]
        return _run(r, name, full=full, violations=violations)

    def report(self, *, name: str, run_id: str) -> RunReport:
        """A run's HTML page."""
        self.ctx.require("viewer")
        _, r = self._run_row(name, run_id)
        if not r.key:
            raise NotFound(f"run {r.id} of {name!r} has no report: it is {r.status}" + (f" ({r.failure_reason})" if r.failure_reason else ""))
        return RunReport(id=r.id, html=self.ws.store.read_bytes(f"{r.key}/report.html").decode())

    def ground_truth(self, *, name: str, data: str) -> GroundTruthUpload:
        """Upload ground truth for a model quality monitor: SageMaker's JSONL
        (groundTruthData + eventMetadata.eventId/inferenceId) or a CSV ``inference_id,label``."""
        from kiln.monitoring._quality import parse_ground_truth

        check_name(name, kind="monitor")
        self.ctx.require("editor")
        row = self._row(name)
        if row.kind != "model_quality":
            raise InvalidArgument(f"monitor {name!r} checks data quality; ground truth is for model_quality monitors")
        if not isinstance(data, str) or not data.strip():
            raise InvalidArgument("ground truth is empty; give JSONL lines or a CSV with inference_id,label")
        if len(data) > MAX_GROUND_TRUTH_BYTES:
            raise InvalidArgument("a ground truth upload is at most 64 MiB; split it")
        labels = parse_ground_truth(data.encode())
        gid = uuid.uuid4().hex
        key = f"monitoring/{row.id}/ground-truth/{gid}.json"
        self.ws.store.put_bytes(key, orjson.dumps(labels))
        now = time.time()
        with self.ws.mutation(self.ctx, action="monitors.ground_truth", resource=f"monitors/{name}", details={"records": len(labels)}) as (conn, _):
            conn.execute(t.ground_truth.insert().values(id=gid, monitor_id=row.id, key=key, records=len(labels), created_at=now, created_by=self.ctx.actor))
        return GroundTruthUpload(id=gid, monitor=name, records=len(labels), created_at=now)

    # -- the schedule (the server's periodic loop calls this) --------------------------------

    def tick(self, *, now: float | None = None) -> list[MonitorRun]:
        """Run every monitor whose slot has come; slots that passed while no server ran are
        recorded as Missed and only the latest runs. A run that fails is recorded as Failed
        and the schedule moves on to the next slot."""
        self.ctx.require("admin")
        now = time.time() if now is None else now
        with self.ws.db.read() as conn:
            due = conn.execute(sa.select(t.monitors).where(t.monitors.c.next_slot.is_not(None), t.monitors.c.next_slot <= now)).all()
        out = []
        for row in due:
            expr = orjson.loads(row.config).get("cron")
            if not expr:
                continue
            slots = [row.next_slot]
            following = next_slot(expr, row.next_slot)
            while following <= now and len(slots) < 100_000:
                slots.append(following)
                following = next_slot(expr, following)
            with self.ws.db.write() as conn:  # claim: another server's tick may have taken it
                claimed = conn.execute(t.monitors.update().where(t.monitors.c.id == row.id, t.monitors.c.next_slot == row.next_slot)
                                       .values(next_slot=following)).rowcount
            if not claimed:
                continue
            if len(slots) > 1:
                self._record_missed(row, expr, slots[:-1], now)
            slot = slots[-1]
            out.append(self._execute(row, prev_slot(expr, slot), slot, trigger="schedule", scheduled_for=slot))
        return out

    def _record_missed(self, row: Any, expr: str, slots: list[float], now: float) -> None:
        kept = slots[-MAX_MISSED_RECORDED:]
        recs = [{"id": uuid.uuid4().hex, "monitor_id": row.id, "status": "Missed", "trigger": "schedule", "scheduled_for": s,
                 "window_start": prev_slot(expr, s), "window_end": s, "started_at": now, "finished_at": now, "rows": 0, "violations": 0,
                 "drift": False, "key": None, "summary": _json({}),
                 "failure_reason": "no server was running at this slot" + (f" ({len(slots) - len(kept)} earlier slots also missed)" if i == 0 and len(slots) > len(kept) else "")}
                for i, s in enumerate(kept)]
        with self.ws.mutation(self.ctx, action="monitors.missed", resource=f"monitors/{row.name}", role="admin", details={"slots": len(slots)}) as (conn, _):
            conn.execute(t.runs.insert(), recs)


class _Rec:
    """A run record dict read like a row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _options(methods: Any, thresholds: Any, drift_share: Any, psi: Any) -> Any:
    from kiln.monitoring._drift import DriftOptions

    if methods is not None and (not isinstance(methods, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in methods.items())):
        raise InvalidArgument('methods must map columns (or "*") to method names, e.g. {"age": "psi"}')
    if thresholds is not None and (not isinstance(thresholds, dict) or not all(isinstance(k, str) for k in thresholds)):
        raise InvalidArgument('thresholds must map columns (or "*") to numbers, e.g. {"*": 0.2}')
    try:
        share = float(drift_share)
    except (TypeError, ValueError):
        raise InvalidArgument(f"drift_share must be a number in (0, 1], not {drift_share!r}") from None
    if not math.isfinite(share):
        raise InvalidArgument("drift_share must be a number in (0, 1]")
    return DriftOptions(methods=dict(methods or {}), thresholds={k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)  # type: ignore[misc]
                                                                   for k, v in (thresholds or {}).items()}, drift_share=share, psi=bool(psi))
