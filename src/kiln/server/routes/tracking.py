"""REST: experiments, runs, metrics, artifacts, search, compare and evaluations.

Responses are serialised by the models themselves, so a NaN or infinite
metric reads as ``"NaN"`` / ``"Infinity"`` (JSON has no such numbers) and the
SDK parses it back to the same float.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kiln.server._roles import KilnRoute, role
from kiln.server.deps import service
from kiln.tracking import (
    ArtifactInfo,
    ArtifactService,
    EvaluationComparison,
    EvaluationReport,
    EvaluationService,
    Experiment,
    ExperimentService,
    LogResult,
    RunComparison,
    RunDetail,
    RunInfo,
    RunPage,
    RunService,
)
from kiln.tracking._base import check_artifact_name, check_run_id
from kiln.tracking._evaluation import parquet_to_frame
from kiln.tracking._models import MetricHistory, dump_json

router = APIRouter(tags=["tracking"], route_class=KilnRoute)


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dump_json(obj), media_type="application/json", status_code=status)


class ExperimentCreate(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


@router.post("/v1/experiments", response_model=Experiment, status_code=201)
def create_experiment(body: ExperimentCreate, svc: ExperimentService = service(ExperimentService)) -> Response:
    return _json(svc.create(name=body.name, description=body.description, tags=body.tags), 201)


@router.get("/v1/experiments", response_model=list[Experiment])
def list_experiments(svc: ExperimentService = service(ExperimentService)) -> Response:
    return _json(svc.list())


@router.get("/v1/experiments/{name}", response_model=Experiment)
def get_experiment(name: str, svc: ExperimentService = service(ExperimentService)) -> Response:
    return _json(svc.get(name=name))


class RunCreate(BaseModel):
    experiment_name: str
    run_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    parent_run_id: str | None = None
    source: str = ""


@router.post("/v1/runs", response_model=RunInfo, status_code=201)
def create_run(body: RunCreate, svc: RunService = service(RunService)) -> Response:
    info = svc.create(
        experiment_name=body.experiment_name, run_name=body.run_name, tags=body.tags, params=body.params,
        parent_run_id=body.parent_run_id, source=body.source,
    )
    return _json(info, 201)


class SearchBody(BaseModel):
    experiment_names: list[str] = Field(default_factory=list)
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    limit: int = 100
    offset: int = 0
    page_token: str | None = None


@router.post("/v1/runs/search", response_model=RunPage, openapi_extra=role("viewer"))
def search_runs(body: SearchBody, svc: RunService = service(RunService)) -> Response:
    page = svc.search(
        experiment_names=body.experiment_names, filter=body.filter, order_by=body.order_by,
        limit=body.limit, offset=body.offset, page_token=body.page_token,
    )
    return _json(page)


class CompareBody(BaseModel):
    run_ids: list[str]


@router.post("/v1/runs/compare", response_model=RunComparison, openapi_extra=role("viewer"))
def compare_runs(body: CompareBody, svc: RunService = service(RunService)) -> Response:
    return _json(svc.compare(run_ids=body.run_ids))


@router.get("/v1/runs/{run_id}", response_model=RunDetail)
def get_run(run_id: str, svc: RunService = service(RunService)) -> Response:
    return _json(svc.get(run_id=run_id))


# A point is [key, value, step|null, timestamp|null]; value may be "NaN" / "Infinity" / "-Infinity".
Point = tuple[str, float, int | None, float | None]


class LogBatch(BaseModel):
    metrics: list[Point] = Field(default_factory=list)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


def _points(points: list[Point]) -> list[tuple[str, float, int | None, float]]:
    import time

    now = time.time()
    return [(k, v, s, now if t is None else t) for k, v, s, t in points]


@router.post("/v1/runs/{run_id}/log-batch", response_model=LogResult)
def log_batch(run_id: str, body: LogBatch, svc: RunService = service(RunService)) -> Response:
    return _json(svc.log_batch(run_id=run_id, metrics=_points(body.metrics), params=body.params, tags=body.tags))


class FinishBody(BaseModel):
    status: str = "Completed"
    failure_reason: str | None = None
    metrics: list[Point] = Field(default_factory=list)
    params: dict[str, str] = Field(default_factory=dict)


@router.post("/v1/runs/{run_id}/finish", response_model=RunInfo)
def finish_run(run_id: str, body: FinishBody, svc: RunService = service(RunService)) -> Response:
    return _json(svc.finish(run_id=run_id, status=body.status, failure_reason=body.failure_reason, metrics=_points(body.metrics), params=body.params))


@router.get("/v1/runs/{run_id}/metrics/{key:path}", response_model=MetricHistory)
def metric_history(run_id: str, key: str, svc: RunService = service(RunService)) -> Response:
    return _json(svc.metric_history(run_id=run_id, key=key))


@router.get("/v1/runs/{run_id}/artifacts", response_model=list[ArtifactInfo])
def list_artifacts(run_id: str, svc: ArtifactService = service(ArtifactService)) -> Response:
    return _json(svc.list(run_id=run_id))


@router.put("/v1/runs/{run_id}/artifacts/{name:path}", response_model=ArtifactInfo, status_code=201)
async def put_artifact(run_id: str, name: str, request: Request, media_type: str = Query("application/octet-stream", max_length=128), svc: ArtifactService = service(ArtifactService)) -> Response:
    check_run_id(run_id)
    check_artifact_name(name)
    data = await request.body()
    from starlette.concurrency import run_in_threadpool

    info = await run_in_threadpool(svc.put, run_id=run_id, name=name, data=data, media_type=media_type)
    return _json(info, 201)


@router.get("/v1/runs/{run_id}/artifacts/{name:path}")
def get_artifact(run_id: str, name: str, svc: ArtifactService = service(ArtifactService)) -> StreamingResponse:
    info, key = svc.locate(run_id=run_id, name=name)
    fh = svc.ws.store.open(key)

    def chunks() -> Any:
        with fh:
            while block := fh.read(1 << 20):
                yield block

    return StreamingResponse(
        chunks(), media_type=info.media_type,
        headers={"content-length": str(info.size), "x-sha256": info.sha256, "content-disposition": f'attachment; filename="{name.rsplit("/", 1)[-1]}"'},
    )


class EvaluateBody(BaseModel):
    # Unknown fields are refused: trust is the model version's recorded provenance, and a
    # request that still sends "trust_pickle" learns that instead of being silently ignored.
    model_config = ConfigDict(extra="forbid")

    model: str
    target: str
    dataset: str
    experiment: str = "evaluations"
    run_name: str | None = None
    problem_type: str | None = None


@router.post("/v1/evaluations", response_model=EvaluationReport)
def evaluate(body: EvaluateBody, svc: EvaluationService = service(EvaluationService)) -> Response:
    return _json(svc.evaluate(**body.model_dump()))


@router.post("/v1/evaluations/upload", response_model=EvaluationReport)
async def evaluate_upload(
    request: Request, model: str, target: str, experiment: str = "evaluations", run_name: str | None = None,
    problem_type: str | None = None, svc: EvaluationService = service(EvaluationService),
) -> Response:
    from starlette.concurrency import run_in_threadpool

    frame = parquet_to_frame(await request.body())
    report = await run_in_threadpool(
        svc.evaluate, model=model, target=target, data=frame, experiment=experiment, run_name=run_name,
        problem_type=problem_type,
    )
    return _json(report)


class CompareModelsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str]
    target: str
    dataset: str
    experiment: str = "evaluations"


@router.post("/v1/evaluations/compare", response_model=EvaluationComparison)
def compare_models(body: CompareModelsBody, svc: EvaluationService = service(EvaluationService)) -> Response:
    return _json(svc.compare(**body.model_dump()))


@router.post("/v1/evaluations/compare/upload", response_model=EvaluationComparison)
async def compare_models_upload(
    request: Request, target: str, models: list[str] = Query(...), experiment: str = "evaluations",
    svc: EvaluationService = service(EvaluationService),
) -> Response:
    from starlette.concurrency import run_in_threadpool

    frame = parquet_to_frame(await request.body())
    result = await run_in_threadpool(svc.compare, models=models, target=target, data=frame, experiment=experiment)
    return _json(result)
