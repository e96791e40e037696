"""``kiln.Run`` and ``kiln.load_run``: the experiments run API (CONTRACTS.md §7).

Metrics are buffered in memory and written in batches: by one background
flusher thread (every second, or sooner once a run holds many points), on
``flush()``, when the ``with`` block ends (in the same transaction that marks
the run Completed or Failed) and at interpreter exit. A ``log_metric`` call is
a few microseconds and never a round trip.
"""

from __future__ import annotations

import atexit
import datetime as dt
import io
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from kiln.core.errors import Conflict, InvalidArgument, KilnError
from kiln.core.names import parse_ref
from kiln.sdk._base import HttpTransport, LocalTransport, Transport
from kiln.sdk.tracking import Runs
from kiln.tracking._base import _GOOD_KEYS, check_key, metric_value, param_value
from kiln.tracking._resolve import check_run_ref
from kiln.tracking._models import ArtifactInfo, RunDetail
from kiln.tracking._plots import (
    confusion_matrix_data,
    graph_artifact_name,
    precision_recall_data,
    render_png,
    roc_curve_data,
)

__all__ = ["Run", "current_run", "load_run"]

log = logging.getLogger("kiln.run")

_FLUSH_EVERY_S = 1.0
_FLUSH_AT_POINTS = 20_000


class _Flusher:
    """One daemon thread that flushes every active run's buffer in the background."""

    def __init__(self) -> None:
        self._runs: weakref.WeakSet[Run] = weakref.WeakSet()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs.add(run)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="kiln-metric-flusher", daemon=True)
                self._thread.start()

    def remove(self, run: Run) -> None:
        with self._lock:
            self._runs.discard(run)

    def kick(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(_FLUSH_EVERY_S)
            self._wake.clear()
            with self._lock:
                active = list(self._runs)
            for run in active:
                try:
                    run._flush(background=True)
                except Exception as exc:  # noqa: BLE001 - kept in the buffer; retried and raised on exit
                    log.warning("kiln: flushing metrics of run %s failed (will retry): %s", run.id, exc)

    def flush_all(self) -> None:
        with self._lock:
            active = list(self._runs)
        for run in active:
            try:
                run.flush()
            except Exception as exc:  # noqa: BLE001 - at exit there is no one left to raise to
                log.error("kiln: could not flush metrics of run %s at exit: %s", run.id, exc)


_FLUSHER = _Flusher()
atexit.register(_FLUSHER.flush_all)

_ACTIVE = threading.local()


def current_run() -> Run | None:
    """The innermost active Run of this thread (what ``models.register`` records as lineage)."""
    stack = getattr(_ACTIVE, "stack", None)
    return stack[-1] if stack else None


def _push(run: Run) -> None:
    if not hasattr(_ACTIVE, "stack"):
        _ACTIVE.stack = []
    _ACTIVE.stack.append(run)


def _pop(run: Run) -> None:
    stack = getattr(_ACTIVE, "stack", [])
    if run in stack:
        stack.remove(run)


_default_lock = threading.Lock()
_default_transport: Transport | None = None


def _transport_of(client: Any) -> Transport:
    global _default_transport
    if isinstance(client, LocalTransport | HttpTransport):
        return client
    if client is not None:
        return client._t  # a kiln.Client
    with _default_lock:
        if _default_transport is None:
            from kiln.sdk.client import Client

            _default_transport = Client()._t
        return _default_transport


def _timestamp(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"timestamp must be Unix seconds or a datetime, not {value!r}") from None


class Run:
    """One run of an experiment, used as a context manager.

    ``with Run("churn", run_name="rf-200") as run:`` starts a run (creating the
    experiment if needed), and the end of the block marks it Completed, or
    Failed when the block raised. Logging outside the block raises Conflict.

    Args:
        experiment_name: the experiment to log to.
        run_name: a display name; generated when omitted.
        tags: tags to start the run with.
        client: a :class:`kiln.Client` (default: one from ``KILN_URL`` / ``KILN_HOME``).
        parent_run_id: makes this a nested run of another.
        run_id: attach to an existing running run instead of creating one.
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        *,
        client: Any = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        source: str = "",
    ) -> None:
        if experiment_name is None and run_id is None:
            raise InvalidArgument("Run needs an experiment_name (or run_id to attach to an existing run)")
        self._runs = Runs(_transport_of(client))
        self._experiment = experiment_name
        self._run_name = run_name
        self._tags = dict(tags or {})
        self._parent = parent_run_id
        self._source = source
        self._owns = run_id is None
        self.id: str = check_run_ref(run_id) if run_id else ""  # any run reference; the full id on enter
        self.name: str = run_name or ""
        self.experiment_name: str = experiment_name or ""
        self._active = False
        self._buf: list[tuple[str, float, int | None, float]] = []
        self._params: dict[str, str] = {}
        self._pending_params: dict[str, str] = {}
        self._late_conflict: Conflict | None = None
        self._inputs: set[str] = set()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> Run:
        if self._active:
            if not self._owns:
                return self  # `with load_run() as run:` on the already-active job run
            raise Conflict(f"run {self.id} is already active")
        if self._owns:
            info = self._runs.create(
                self._experiment or "", run_name=self._run_name, tags=self._tags,
                parent_run_id=self._parent, source=self._source,
            )
        else:
            info = self._runs.get(self.id)
            if info.status != "Running":
                raise Conflict(f"run {self.id} is {info.status}; only a running run can be logged to")
        self.id, self.name, self.experiment_name = info.id, info.name, info.experiment_name
        self._active = True
        _FLUSHER.add(self)
        _push(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._active:
            return
        self._active = False
        _FLUSHER.remove(self)
        _pop(self)
        if not self._owns:
            self.flush()
            return
        failed = exc_type is not None and not (issubclass(exc_type, SystemExit) and getattr(exc, "code", None) in (0, None))
        reason = f"{exc_type.__name__}: {exc}"[:4000] if failed and exc_type is not None else None
        with self._flush_lock:
            with self._lock:
                rest, self._buf = self._buf, []
                params, self._pending_params = self._pending_params, {}
            status = "Failed" if failed else "Completed"
            try:
                try:
                    self._runs.finish(self.id, status=status, failure_reason=reason, metrics=rest, params=params or None)
                except Conflict as exc:
                    if not params or "param" not in exc.message:
                        raise
                    self._late_conflict = exc  # another process set a param differently; keep the points
                    params = {}
                    self._runs.finish(self.id, status=status, failure_reason=reason, metrics=rest)
            except Exception as exc:
                if not isinstance(exc, Conflict | InvalidArgument):
                    # The run is still Running (e.g. the server was unreachable): keep the points and
                    # params, so flush() or the exit hook can still deliver them.
                    self._restore(rest, params)
                    _FLUSHER.add(self)
                raise
        self._raise_late_conflict()

    def _raise_late_conflict(self) -> None:
        if self._late_conflict is not None:
            error, self._late_conflict = self._late_conflict, None
            raise error

    def _require_active(self) -> None:
        if not self._active:
            raise Conflict("this run is not active: log inside `with Run(...) as run:` (or use load_run() in a job)")

    def __repr__(self) -> str:
        return f"Run(experiment={self.experiment_name!r}, name={self.name!r}, id={self.id!r}, active={self._active})"

    # -- metrics (buffered) -----------------------------------------------------------------

    def log_metric(self, name: str, value: float, step: int | None = None, timestamp: float | dt.datetime | None = None) -> None:
        """Record one point of metric ``name``; ``step`` defaults to the key's next step.

        NaN and infinite values are kept as they are.
        """
        if not self._active:
            self._require_active()
        if name not in _GOOD_KEYS:
            check_key(name)
        if value.__class__ is not float:
            value = metric_value(value, name)
        if step is not None and step.__class__ is not int:
            if isinstance(step, bool) or not float(step).is_integer():
                raise InvalidArgument(f"step of metric {name!r} must be an integer, not {step!r}")
            step = int(step)
        ts = time.time() if timestamp is None else _timestamp(timestamp)
        with self._lock:
            self._buf.append((name, value, step, ts))
            n = len(self._buf)
        if n % _FLUSH_AT_POINTS == 0:
            _FLUSHER.kick()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None) -> None:
        """Record several metrics at the same step."""
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=timestamp)

    def flush(self) -> None:
        """Write buffered metrics now (the background thread also does, every second)."""
        self._flush(background=False)

    def _flush(self, *, background: bool) -> None:
        if not self._flush_lock.acquire(blocking=not background):
            return
        try:
            with self._lock:
                batch, self._buf = self._buf, []
                params, self._pending_params = self._pending_params, {}
            if not batch and not params:
                return
            try:
                self._send(batch, params)
            except KilnError as exc:
                if isinstance(exc, Conflict | InvalidArgument):
                    raise  # the run finished elsewhere, or bad data: retrying cannot help
                self._restore(batch, params)
                raise
            except Exception:
                self._restore(batch, params)
                raise
        finally:
            self._flush_lock.release()

    def _restore(self, batch: list[Any], params: dict[str, str]) -> None:
        """Put points and params that could not be sent back in front of the buffer."""
        with self._lock:
            self._buf[:0] = batch
            self._pending_params = {**params, **self._pending_params}

    def _send(self, batch: list[Any], params: dict[str, str]) -> None:
        """One log_batch of points and params; a param another process set differently
        is dropped (raised at the end of the run) so the points still land."""
        try:
            self._runs.log_batch(self.id, metrics=batch, params=params or None)
        except Conflict as exc:
            if not params or "param" not in exc.message:
                raise
            self._late_conflict = exc
            self._runs.log_batch(self.id, metrics=batch)

    # -- params (checked at once, sent with the next batch) ----------------------------------

    def log_parameter(self, name: str, value: Any) -> None:
        """Record a parameter; logging it again with another value raises Conflict."""
        self.log_parameters({name: value})

    def log_parameters(self, parameters: Mapping[str, Any]) -> None:
        """Record several parameters; they travel with the next metric batch (or the finish)."""
        self._require_active()
        self._raise_late_conflict()
        clean = {check_key(k, kind="param"): param_value(v) for k, v in parameters.items()}
        with self._lock:
            for key, value in clean.items():
                known = self._params.get(key)
                if known is not None and known != value:
                    raise Conflict(
                        f"param {key!r} of run {self.id} is already {known!r}; params cannot change "
                        "(log another name, or a metric for values that change)"
                    )
            self._params.update(clean)
            self._pending_params.update(clean)

    def set_tag(self, key: str, value: Any) -> None:
        """Set (or replace) a tag."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._require_active()
        self._runs.log_batch(self.id, tags={k: str(v) for k, v in tags.items()})

    # -- artifacts --------------------------------------------------------------------

    def log_artifact(self, name: str, value: Any, media_type: str | None = None) -> ArtifactInfo:
        """Store ``value`` as artifact ``name``.

        bytes are stored as they are; str as text; dict/list as JSON; a pandas
        DataFrame as CSV; a numpy array as ``.npy``; a matplotlib figure as PNG;
        a ``pathlib.Path`` as the file it names.
        """
        self._require_active()
        if isinstance(value, Path):
            return self.log_file(value, name=name)
        data, guessed = _encode(value)
        return self._runs.log_artifact(self.id, name, data, media_type=media_type or guessed)

    def log_file(self, file_path: str | os.PathLike[str], name: str | None = None) -> ArtifactInfo:
        """Store a local file as an artifact (named after the file by default)."""
        self._require_active()
        import mimetypes

        media_type = mimetypes.guess_type(str(file_path))[0] or "application/octet-stream"
        return self._runs.log_file(self.id, file_path, name=name, media_type=media_type)

    def _log_graph(self, data: dict[str, Any], default: str) -> dict[str, Any]:
        base = graph_artifact_name(data, default)
        self.log_artifact(f"{base}.json", data, media_type="application/json")
        self.log_artifact(f"{base}.png", render_png(data), media_type="image/png")
        return data

    def log_confusion_matrix(self, y_true: Any, y_pred: Any, title: str | None = None) -> dict[str, Any]:
        """Store a confusion matrix as ``<title>.json`` (SageMaker's ConfusionMatrix) and ``.png``."""
        self._require_active()
        return self._log_graph(confusion_matrix_data(y_true, y_pred, title=title), "confusion-matrix")

    def log_roc_curve(self, y_true: Any, y_score: Any, title: str | None = None) -> dict[str, Any]:
        """Store a ROC curve (SageMaker's ROCCurve JSON) and its PNG."""
        self._require_active()
        return self._log_graph(roc_curve_data(y_true, y_score, title=title), "roc-curve")

    def log_precision_recall(
        self, y_true: Any, predicted_probabilities: Any, positive_label: Any = None, title: str | None = None
    ) -> dict[str, Any]:
        """Store a precision-recall curve (SageMaker's PrecisionRecallCurve JSON) and its PNG."""
        self._require_active()
        data = precision_recall_data(y_true, predicted_probabilities, positive_label=positive_label, title=title)
        return self._log_graph(data, "precision-recall")

    # -- inputs ------------------------------------------------------------------------

    def log_input(self, dataset: str) -> str:
        """Record a dataset version as an input of this run (``cancer`` is pinned to its latest
        version now); returns the exact ``name@N``. ``client.datasets.read``/``head``/``export``
        call this for the active run, and ``client.models.register`` in (or with ``run_id=`` of)
        the run takes the inputs as the model's ``lineage.datasets``."""
        self._require_active()
        parsed = parse_ref(dataset, kind="dataset")
        if parsed.version is None:
            from kiln.sdk.datasets import Datasets

            got = Datasets(self._runs._t).get(dataset)
            exact = f"{got.name}@{got.version}"
        else:
            exact = f"{parsed.name}@{parsed.version}"
        if exact not in self._inputs:
            self._runs.log_inputs(self.id, [exact])
            self._inputs.add(exact)
        return exact

    # -- reading back ------------------------------------------------------------------

    def child(self, run_name: str | None = None, tags: Mapping[str, Any] | None = None) -> Run:
        """A nested run of this one, in the same experiment."""
        self._require_active()
        return Run(self.experiment_name, run_name, tags, client=self._runs._t, parent_run_id=self.id)

    def info(self) -> RunDetail:
        """The run as stored now (flushes first)."""
        if self._active:
            self.flush()
        return self._runs.get(self.id)


def _encode(value: Any) -> tuple[bytes, str]:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), "application/octet-stream"
    if isinstance(value, str):
        return value.encode(), "text/plain; charset=utf-8"
    if hasattr(value, "savefig"):
        buf = io.BytesIO()
        value.savefig(buf, format="png")
        return buf.getvalue(), "image/png"
    if hasattr(value, "to_csv") and hasattr(value, "columns"):
        return value.to_csv(index=False).encode(), "text/csv"
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return buf.getvalue(), "application/x-npy"
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS), "application/json"
    except TypeError:
        raise InvalidArgument(
            f"cannot store a {type(value).__name__} as an artifact: pass bytes, str, JSON data, a DataFrame, "
            "a numpy array, a matplotlib figure or a Path"
        ) from None


def load_run(*, run_id: str | None = None, client: Any = None) -> Run:
    """The run of the job this code runs in (``KILN_RUN_ID``), already active.

    Inside a Kiln training or processing job the runner sets ``KILN_RUN_ID``
    (and ``KILN_HOME`` or ``KILN_URL``); the job's run is returned ready to
    log to, and its metrics are flushed at exit. The job runner, not this
    process, marks it Completed or Failed. ``with load_run() as run:`` also works.

    Raises:
        InvalidArgument: no run id is given and ``KILN_RUN_ID`` is not set.
        Conflict: the run is not running.
    """
    rid = run_id or os.environ.get("KILN_RUN_ID", "")
    if not rid:
        raise InvalidArgument("load_run() needs a run: set KILN_RUN_ID (Kiln's job runner does) or pass run_id=")
    run = Run(run_id=rid, client=client)
    run.__enter__()
    return run

