"""SDK: experiments, runs and evaluations (``client.experiments``, ``client.runs``, ``client.evaluations``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kiln.core.errors import InvalidArgument
from kiln.sdk._base import Namespace
from kiln.tracking._artifacts import ArtifactService
from kiln.tracking._base import check_artifact_name, check_key, check_run_id
from kiln.tracking._experiments import ExperimentService
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
    RunPage,
)
from kiln.tracking._runs import Point, RunService

if TYPE_CHECKING:
    from kiln.sdk.run import Run

__all__ = ["Evaluations", "Experiments", "Runs"]

# Remote batches stay well under the server's default 6 MB request limit.
_HTTP_BATCH = 20_000
_LOCAL_BATCH = 100_000


def _wire(value: float) -> float | str:
    """JSON has no NaN or infinity: send them as the strings pydantic parses back."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _wire_points(points: Sequence[Point]) -> list[list[Any]]:
    return [[k, _wire(float(v)), s, t] for k, v, s, t in points]


class Experiments(Namespace):
    """``client.experiments``: named groups of runs."""

    def create(self, name: str, *, description: str = "", tags: dict[str, str] | None = None) -> Experiment:
        """Create an experiment (runs also create theirs on first use)."""
        if self._local:
            return self._svc(ExperimentService).create(name=name, description=description, tags=tags)
        body = {"name": name, "description": description, "tags": tags or {}}
        return Experiment.model_validate(self._http("POST", "/v1/experiments", json=body))

    def get(self, name: str) -> Experiment:
        """One experiment with its run count."""
        if self._local:
            return self._svc(ExperimentService).get(name=name)
        return Experiment.model_validate(self._http("GET", f"/v1/experiments/{quote(name, safe='')}"))

    def list(self) -> list[Experiment]:
        """Every experiment, newest first."""
        if self._local:
            return self._svc(ExperimentService).list()
        return [Experiment.model_validate(e) for e in self._http("GET", "/v1/experiments")]


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
        if self._local:
            return self._svc(RunService).create(
                experiment_name=experiment_name, run_name=run_name, tags=tags, params=params,
                parent_run_id=parent_run_id, source=source,
            )
        body = {
            "experiment_name": experiment_name, "run_name": run_name, "tags": {k: str(v) for k, v in (tags or {}).items()},
            "params": {k: str(v) for k, v in (params or {}).items()}, "parent_run_id": parent_run_id, "source": source,
        }
        return RunInfo.model_validate(self._http("POST", "/v1/runs", json=body))

    def get(self, run_id: str) -> RunDetail:
        """A run with params, tags, latest metrics and artifacts."""
        if self._local:
            return self._svc(RunService).get(run_id=run_id)
        return RunDetail.model_validate(self._http("GET", f"/v1/runs/{check_run_id(run_id)}"))

    def log_batch(self, run_id: str, *, metrics: Sequence[Point] = (), params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None) -> LogResult:
        """Log ``(key, value, step, timestamp)`` points, params and tags in one call."""
        size = _LOCAL_BATCH if self._local else _HTTP_BATCH
        total = LogResult(run_id=run_id)
        batches = [list(metrics[i:i + size]) for i in range(0, len(metrics), size)] or [[]]
        for i, batch in enumerate(batches):
            first = i == 0
            if self._local:
                got = self._svc(RunService).log_batch(
                    run_id=run_id, metrics=batch, params=params if first else None, tags=tags if first else None
                )
            else:
                check_run_id(run_id)
                body: dict[str, Any] = {"metrics": _wire_points(batch)}
                if first:
                    body["params"] = {k: v if isinstance(v, str) else str(v) for k, v in (params or {}).items()}
                    body["tags"] = {k: str(v) for k, v in (tags or {}).items()}
                got = LogResult.model_validate(self._http("POST", f"/v1/runs/{run_id}/log-batch", json=body))
            total = LogResult(run_id=run_id, metrics=total.metrics + got.metrics, params=total.params + got.params, tags=total.tags + got.tags)
        return total

    def finish(
        self, run_id: str, *, status: str = "Completed", failure_reason: str | None = None, metrics: Sequence[Point] = (), params: dict[str, Any] | None = None
    ) -> RunInfo:
        """End a run as Completed or Failed, committing any last metrics and params with it."""
        batch = _LOCAL_BATCH if self._local else _HTTP_BATCH
        rest = list(metrics)
        if len(rest) > batch:
            self.log_batch(run_id, metrics=rest[:-batch])
            rest = rest[-batch:]
        if self._local:
            return self._svc(RunService).finish(run_id=run_id, status=status, failure_reason=failure_reason, metrics=rest, params=params)
        check_run_id(run_id)
        body = {"status": status, "failure_reason": failure_reason, "metrics": _wire_points(rest), "params": {k: str(v) for k, v in (params or {}).items()}}
        return RunInfo.model_validate(self._http("POST", f"/v1/runs/{run_id}/finish", json=body))

    def metric_history(self, run_id: str, key: str) -> MetricHistory:
        """Every point of one metric, by step (``.steps``, ``.values``, ``.timestamps``; ``.points()``)."""
        if self._local:
            return self._svc(RunService).metric_history(run_id=run_id, key=key)
        check_run_id(run_id)
        check_key(key)
        return MetricHistory.model_validate(self._http("GET", f"/v1/runs/{run_id}/metrics/{quote(key, safe='')}"))

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
        names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names or [])
        order = [order_by] if isinstance(order_by, str) else list(order_by or [])
        if self._local:
            return self._svc(RunService).search(
                experiment_names=names, filter=filter, order_by=order, limit=limit, offset=offset, page_token=page_token
            )
        body = {"experiment_names": names, "filter": filter, "order_by": order, "limit": limit, "offset": offset, "page_token": page_token}
        return RunPage.model_validate(self._http("POST", "/v1/runs/search", json=body))

    def compare(self, run_ids: Sequence[str]) -> RunComparison:
        """Runs side by side: params, tags and latest metrics."""
        if self._local:
            return self._svc(RunService).compare(run_ids=list(run_ids))
        return RunComparison.model_validate(self._http("POST", "/v1/runs/compare", json={"run_ids": list(run_ids)}))

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
        check_run_id(run_id)
        check_artifact_name(name)
        got = self._http(
            "PUT", f"/v1/runs/{run_id}/artifacts/{quote(name)}", content=data,
            headers={"content-type": "application/octet-stream"}, params={"media_type": media_type},
        )
        return ArtifactInfo.model_validate(got)

    def list_artifacts(self, run_id: str) -> list[ArtifactInfo]:
        """A run's artifacts."""
        if self._local:
            return self._svc(ArtifactService).list(run_id=run_id)
        return [ArtifactInfo.model_validate(a) for a in self._http("GET", f"/v1/runs/{check_run_id(run_id)}/artifacts")]

    def read_artifact(self, run_id: str, name: str) -> bytes:
        """The bytes of one artifact."""
        if self._local:
            return self._svc(ArtifactService).read(run_id=run_id, name=name)
        check_run_id(run_id)
        check_artifact_name(name)
        with self._t.stream("GET", f"/v1/runs/{run_id}/artifacts/{quote(name)}") as resp:  # type: ignore[union-attr]
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
        from kiln.tracking._evaluation import EvaluationService, table_to_parquet

        if self._local:
            return self._svc(EvaluationService).evaluate(
                model=model, target=target, dataset=dataset, data=data, experiment=experiment,
                run_name=run_name, problem_type=problem_type,
            )
        params = {"model": model, "target": target, "dataset": dataset, "experiment": experiment, "run_name": run_name, "problem_type": problem_type}
        if data is not None:
            got = self._http("POST", "/v1/evaluations/upload", content=table_to_parquet(data), params=params, headers={"content-type": "application/octet-stream"})
        else:
            got = self._http("POST", "/v1/evaluations", json=params)
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
        from kiln.tracking._evaluation import EvaluationService, table_to_parquet

        if self._local:
            return self._svc(EvaluationService).compare(
                models=list(models), target=target, dataset=dataset, data=data, experiment=experiment
            )
        params = {"models": list(models), "target": target, "dataset": dataset, "experiment": experiment}
        if data is not None:
            got = self._http("POST", "/v1/evaluations/compare/upload", content=table_to_parquet(data), params=params, headers={"content-type": "application/octet-stream"})
        else:
            got = self._http("POST", "/v1/evaluations/compare", json=params)
        return EvaluationComparison.model_validate(got)
