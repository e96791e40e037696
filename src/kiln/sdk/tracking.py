"""SDK: experiments, runs and evaluations (``client.experiments``, ``client.runs``, ``client.evaluations``).

Each call is one declared operation (:mod:`kiln.tracking._ops`), in-process or over
HTTP by the client's transport. Artifact upload and download and evaluations of a
table in memory are the special cases, with a route of their own.
"""

from __future__ import annotations

import builtins
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kiln.core.errors import InvalidArgument
from kiln.sdk._base import Namespace, seg
from kiln.tracking import _ops as ops
from kiln.tracking._artifacts import ArtifactService
from kiln.tracking._base import check_artifact_name, check_key
from kiln.tracking._resolve import check_run_ref
from kiln.tracking._models import (
    ArtifactInfo,
    EvaluationComparison,
    EvaluationReport,
    Experiment,
    LogResult,
    MetricHistory,
    RunComparison,
    RunDetail,
    RunInfo,
    RunInputs,
    RunPage,
)
from kiln.tracking._runs import Point

if TYPE_CHECKING:
    from kiln.sdk.run import Run

__all__ = ["Evaluations", "Experiments", "Runs"]

# Remote batches stay well under the server's default 6 MB request limit.
_HTTP_BATCH = 20_000
_LOCAL_BATCH = 100_000


def _text(values: Mapping[str, Any] | None, *, nan: str = "nan") -> dict[str, str]:
    """Param or tag values as the text they are stored as, the same on either transport
    (``str`` of a numpy scalar, not of the float it would become in JSON)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidArgument("params and tags must be a mapping of names to values")
    return {k: v if isinstance(v, str) else (nan if isinstance(v, float) and math.isnan(v) else str(v)) for k, v in values.items()}


def _params(values: Mapping[str, Any] | None) -> dict[str, str]:
    return _text(values, nan="NaN")  # as the service stores a NaN param


class Experiments(Namespace):
    """``client.experiments``: named groups of runs."""

    def create(self, name: str, *, description: str = "", tags: dict[str, str] | None = None) -> Experiment:
        """Create an experiment (runs also create theirs on first use)."""
        return self._call(ops.CREATE_EXPERIMENT, name=name, description=description, tags=_text(tags))  # type: ignore[no-any-return]

    def get(self, name: str) -> Experiment:
        """One experiment with its run count."""
        return self._call(ops.GET_EXPERIMENT, name=name)  # type: ignore[no-any-return]

    def list(self) -> list[Experiment]:
        """Every experiment, newest first."""
        return self._call(ops.LIST_EXPERIMENTS)  # type: ignore[no-any-return]


class Runs(Namespace):
    """``client.runs``: create, log to, search and compare runs."""

    def start(self, experiment_name: str, *, run_name: str | None = None, tags: dict[str, Any] | None = None, parent_run_id: str | None = None) -> Run:
        """A :class:`kiln.Run` on this client; use it as ``with client.runs.start("exp") as run:``."""
        from kiln.sdk.run import Run

        return Run(experiment_name, run_name, tags, client=self._t, parent_run_id=parent_run_id)

    def create(
        self,
        experiment_name: str,
        *,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        source: str = "",
    ) -> RunInfo:
        """Start a run (status Running); the experiment is created when missing."""
        return self._call(  # type: ignore[no-any-return]
            ops.CREATE_RUN, experiment_name=experiment_name, run_name=run_name, tags=_text(tags), params=_params(params),
            parent_run_id=parent_run_id, source=source,
        )

    def _id(self, run: str) -> str:
        """What to send for a run reference: ``experiment/run-name`` holds a '/', which no
        path segment carries, so over HTTP it is resolved to the run's id first."""
        check_run_ref(run)
        if "/" in run and not self._local:
            return self.resolve(run).id
        return run

    def resolve(self, run: str) -> RunInfo:
        """The run a reference names: its id, a unique id prefix (6+ hex digits),
        ``experiment/run-name`` or a run name unique across experiments."""
        return self._call(ops.RESOLVE, ref=check_run_ref(run))  # type: ignore[no-any-return]

    def get(self, run_id: str) -> RunDetail:
        """A run with params, tags, latest metrics and artifacts (``run_id``: any run reference)."""
        return self._call(ops.GET_RUN, run_id=self._id(run_id))  # type: ignore[no-any-return]

    def log_inputs(self, run_id: str, datasets: Sequence[str]) -> RunInputs:
        """Record exact dataset versions (``cancer@1``) as inputs of a running run, once each."""
        return self._call(ops.LOG_INPUTS, run_id=self._id(run_id), datasets=[datasets] if isinstance(datasets, str) else builtins.list(datasets))  # type: ignore[no-any-return]

    def _batch_size(self) -> int:
        return _LOCAL_BATCH if self._local else _HTTP_BATCH

    def log_batch(self, run_id: str, *, metrics: Sequence[Point] = (), params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None) -> LogResult:
        """Log ``(key, value, step, timestamp)`` points, params and tags in one call.

        Many points go in several batches; params and tags go with the first.
        """
        run_id = self._id(run_id)
        size = self._batch_size()
        total = LogResult(run_id=run_id)
        batches = [list(metrics[i:i + size]) for i in range(0, len(metrics), size)] or [[]]
        for i, batch in enumerate(batches):
            extra = {"params": _params(params), "tags": _text(tags)} if i == 0 else {}
            got: LogResult = self._call(ops.LOG_BATCH, run_id=run_id, metrics=batch, **extra)
            total = LogResult(run_id=run_id, metrics=total.metrics + got.metrics, params=total.params + got.params, tags=total.tags + got.tags)
        return total

    def finish(
        self, run_id: str, *, status: str = "Completed", failure_reason: str | None = None, metrics: Sequence[Point] = (), params: dict[str, Any] | None = None
    ) -> RunInfo:
        """End a run as Completed or Failed, committing any last metrics and params with it.

        More points than one batch holds are logged first; the last batch goes with the finish.
        """
        run_id = self._id(run_id)
        batch = self._batch_size()
        rest = list(metrics)
        if len(rest) > batch:
            self.log_batch(run_id, metrics=rest[:-batch])
            rest = rest[-batch:]
        return self._call(  # type: ignore[no-any-return]
            ops.FINISH, run_id=run_id, status=status, failure_reason=failure_reason, metrics=rest, params=_params(params)
        )

    def metric_history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of one metric, by step (``.steps``, ``.values``, ``.timestamps``; ``.points()``)."""
        return self._call(ops.METRIC_HISTORY, run_id=self._id(run_id), key=check_key(key))  # type: ignore[no-any-return]

    def search(
        self,
        experiment_names: Sequence[str] | str | None = None,
        *,
        filter: str | None = None,  # noqa: A002
        order_by: Sequence[str] | str | None = None,
        limit: int = 100,
        offset: int = 0,
        page_token: str | None = None,
    ) -> RunPage:
        """Search runs: ``filter="metrics.auc > 0.9 and params.depth = '5'"``, ``order_by="metrics.auc DESC"``."""
        names = [experiment_names] if isinstance(experiment_names, str) else builtins.list(experiment_names or [])
        order = [order_by] if isinstance(order_by, str) else builtins.list(order_by or [])
        return self._call(  # type: ignore[no-any-return]
            ops.SEARCH, experiment_names=names, filter=filter, order_by=order, limit=limit, offset=offset, page_token=page_token
        )

    def compare(self, run_ids: Sequence[str]) -> RunComparison:
        """Runs side by side: params, tags and latest metrics."""
        if isinstance(run_ids, str):
            run_ids = [run_ids]
        return self._call(ops.COMPARE, run_ids=builtins.list(run_ids))  # type: ignore[no-any-return]

    # -- artifacts ------------------------------------------------------------------

    def log_artifact(self, run_id: str, name: str, data: bytes, *, media_type: str = "application/octet-stream") -> ArtifactInfo:
        """Store bytes as an artifact of a running run."""
        if self._local:
            return self._svc(ArtifactService).put(run_id=run_id, name=name, data=data, media_type=media_type)
        return self._put_remote(run_id, name, data, media_type)

    def log_file(self, run_id: str, file_path: str | os.PathLike[str], *, name: str | None = None, media_type: str = "application/octet-stream") -> ArtifactInfo:
        """Store a local file as an artifact of a running run."""
        path = Path(file_path)
        if not path.is_file():
            raise InvalidArgument(f"{str(file_path)!r} is not a file")
        name = name or path.name
        if self._local:
            return self._svc(ArtifactService).put(run_id=run_id, name=name, file_path=path, media_type=media_type)
        return self._put_remote(run_id, name, path.read_bytes(), media_type)

    def _put_remote(self, run_id: str, name: str, data: bytes, media_type: str) -> ArtifactInfo:
        run_id = self._id(run_id)
        check_artifact_name(name)
        got = self._http(
            "PUT", f"/v1/runs/{seg(run_id)}/artifacts/{quote(name)}", content=data,
            headers={"content-type": "application/octet-stream"}, params={"media_type": media_type},
        )
        return ArtifactInfo.model_validate(got)

    def list_artifacts(self, run_id: str) -> list[ArtifactInfo]:
        """A run's artifacts."""
        return self._call(ops.LIST_ARTIFACTS, run_id=self._id(run_id))  # type: ignore[no-any-return]

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The bytes of one artifact."""
        if self._local:
            return self._svc(ArtifactService).read(run_id=run_id, name=name)
        run_id = self._id(run_id)
        check_artifact_name(name)
        with self._t.stream("GET", f"/v1/runs/{seg(run_id)}/artifacts/{quote(name)}") as resp:  # type: ignore[union-attr]
            return resp.read()


class Evaluations(Namespace):
    """``client.evaluations``: score registered models on data, into a run."""

    def evaluate(
        self,
        model: str,
        *,
        target: str,
        dataset: str | None = None,
        data: Any = None,
        experiment: str = "evaluations",
        run_name: str | None = None,
        problem_type: str | None = None,
    ) -> EvaluationReport:
        """Evaluate ``model`` (``name@version|alias``) on a Kiln dataset or a table.

        Args:
            model: a model reference.
            target: the label column.
            dataset: a Kiln dataset reference (``sales@3``).
            data: a pandas DataFrame or pyarrow Table instead of ``dataset``.
            experiment: the experiment the evaluation run is logged to.
            run_name: a name for that run.
            problem_type: ``classification`` or ``regression`` (inferred by default).

        The model runs in a worker process. One that runs code (a pickle,
        ``code/inference.py``) needs an admin's ``client.models.trust(ref)`` first.
        """
        if data is None:
            return self._call(  # type: ignore[no-any-return]
                ops.EVALUATE, model=model, target=target, dataset=dataset, experiment=experiment, run_name=run_name, problem_type=problem_type
            )
        from kiln.tracking._evaluation import ONE_SOURCE, EvaluationService, table_to_parquet

        if dataset is not None:
            raise InvalidArgument(ONE_SOURCE)
        if self._local:
            return self._svc(EvaluationService).evaluate(
                model=model, target=target, dataset=dataset, data=data, experiment=experiment,
                run_name=run_name, problem_type=problem_type,
            )
        # A table in memory is the special case: uploaded as Parquet.
        params = {"model": model, "target": target, "experiment": experiment, "run_name": run_name, "problem_type": problem_type}
        got = self._http("POST", "/v1/evaluations/upload", content=table_to_parquet(data), params=params, headers={"content-type": "application/octet-stream"})
        return EvaluationReport.model_validate(got)

    def compare(
        self,
        models: Sequence[str],
        *,
        target: str,
        dataset: str | None = None,
        data: Any = None,
        experiment: str = "evaluations",
    ) -> EvaluationComparison:
        """Evaluate several models on the same data and put their metrics side by side."""
        if data is None:
            return self._call(  # type: ignore[no-any-return]
                ops.COMPARE_MODELS, models=[models] if isinstance(models, str) else list(models), target=target, dataset=dataset, experiment=experiment
            )
        from kiln.tracking._evaluation import ONE_SOURCE, EvaluationService, table_to_parquet

        if dataset is not None:
            raise InvalidArgument(ONE_SOURCE)
        if self._local:
            return self._svc(EvaluationService).compare(models=list(models), target=target, data=data, experiment=experiment)
        # A table in memory is the special case: uploaded as Parquet.
        params = {"models": list(models), "target": target, "experiment": experiment}
        got = self._http("POST", "/v1/evaluations/compare/upload", content=table_to_parquet(data), params=params, headers={"content-type": "application/octet-stream"})
        return EvaluationComparison.model_validate(got)
