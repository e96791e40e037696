"""REST: jobs (``/v1/jobs``), processing and training jobs, and the code upload every job kind shares."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kiln.core.errors import PayloadTooLarge
from kiln.jobs import _ops as ops
from kiln.jobs._code import CodeService
from kiln.jobs._models import CodeArchive
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import service
from kiln.serving import _transform_ops as transform_ops
from kiln.training import _ops as training_ops

router = APIRouter(tags=["jobs"], route_class=KilnRoute)


@router.post("/v1/jobs/code", response_model=CodeArchive, status_code=201, openapi_extra={
    **role("editor", action="jobs.code"),
    "requestBody": {"content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}},
})
async def upload_code(request: Request, svc: CodeService = service(CodeService)) -> CodeArchive:
    """Store users' source (a gzipped tar) for jobs; answers its sha256, which a job names."""
    limit = int(svc.ws.settings.max_upload_mb * (1 << 20))
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the code archive is larger than {limit / (1 << 20):g} MB; leave data out of source_dir")
            spool.write(chunk)
        spool.seek(0)
        return await run_in_threadpool(svc.upload, stream=spool, limit=limit)


# Declared operations after the fixed path above, so /v1/jobs/code is not taken for a job name.
router.include_router(operations_router(ops.ALL, tags=[]))

router.include_router(operations_router(training_ops.ALL, tags=["training"]))
router.include_router(operations_router(transform_ops.ALL, tags=["transform"]))
