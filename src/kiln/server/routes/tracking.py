"""REST: experiments, runs, metrics, artifacts, search, compare and evaluations.

The operations declared in :mod:`kiln.tracking._ops` are mounted first; below are
the special cases: artifact upload (a raw body) and download (streamed), and
evaluations of uploaded Parquet tables.

Responses are serialised by the models themselves, so a NaN or infinite
metric reads as ``"NaN"`` / ``"Infinity"`` (JSON has no such numbers) and the
SDK parses it back to the same float.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import service
from kiln.tracking import (
    ArtifactInfo,
    ArtifactService,
    EvaluationComparison,
    EvaluationReport,
    EvaluationService,
)
from kiln.tracking import _ops as ops
from kiln.tracking._base import check_artifact_name
from kiln.tracking._resolve import check_run_ref
from kiln.tracking._evaluation import parquet_to_frame
from kiln.tracking._models import dump_json

router = APIRouter(tags=["tracking"], route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dump_json(obj), media_type="application/json", status_code=status)


@router.put("/v1/runs/{run_id}/artifacts/{name:path}", response_model=ArtifactInfo, status_code=201, openapi_extra=role("editor", action="runs.log_artifact"))
async def put_artifact(run_id: str, name: str, request: Request, media_type: str = Query("application/octet-stream", max_length=128), svc: ArtifactService = service(ArtifactService)) -> Response:
    check_run_ref(run_id)  # refused before the body is read
    check_artifact_name(name)
    data = await request.body()
    info = await run_in_threadpool(svc.put, run_id=run_id, name=name, data=data, media_type=media_type)
    return _json(info, 201)


@router.get("/v1/runs/{run_id}/artifacts/{name:path}", openapi_extra=role("viewer", action="runs.read_artifact"))
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


@router.post("/v1/evaluations/upload", response_model=EvaluationReport, openapi_extra=role("editor", action="evaluations.evaluate"))
async def evaluate_upload(
    request: Request, model: str, target: str, experiment: str = "evaluations", run_name: str | None = None,
    problem_type: str | None = None, svc: EvaluationService = service(EvaluationService),
) -> Response:
    frame = parquet_to_frame(await request.body())
    report = await run_in_threadpool(
        svc.evaluate, model=model, target=target, data=frame, experiment=experiment, run_name=run_name,
        problem_type=problem_type,
    )
    return _json(report)


@router.post("/v1/evaluations/compare/upload", response_model=EvaluationComparison, openapi_extra=role("editor", action="evaluations.compare"))
async def compare_models_upload(
    request: Request, target: str, models: list[str] = Query(...), experiment: str = "evaluations",
    svc: EvaluationService = service(EvaluationService),
) -> Response:
    frame = parquet_to_frame(await request.body())
    result = await run_in_threadpool(svc.compare, models=models, target=target, data=frame, experiment=experiment)
    return _json(result)
