"""REST: the model registry under ``/v1/models``.

``{version}`` in a path is a version number, an alias (``champion``) or ``latest``.
Package files are served only by the paths the version's manifest lists, so no
request can reach outside a package.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kiln.core.errors import PayloadTooLarge
from kiln.core.limits import unpacked_limit
from kiln.core.names import check_name, parse_ref
from kiln.registry import ModelFile, ModelService, ModelVersion
from kiln.registry import _ops as ops
from kiln.registry._package import extract_tar
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import service
from kiln.tracking._models import dump_json

router = APIRouter(tags=["registry"], route_class=KilnRoute)
# Declared operations first; below, the special cases: an upload and streamed files.
router.include_router(operations_router(ops.ALL, tags=[]))


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dump_json(obj), media_type="application/json", status_code=status)


def _ref(name: str, version: str) -> str:
    """``name@version`` after checking both parts (a traversal string fails here)."""
    return str(parse_ref(f"{check_name(name, kind='model')}@{version}", kind="model"))


@router.post("/v1/models/{name}/versions", response_model=ModelVersion, status_code=201, openapi_extra=role("editor", action="models.register"))
async def register_version(
    name: str,
    request: Request,
    flavor: str | None = None,
    description: str = "",
    run_id: str | None = None,
    job: str | None = None,
    datasets: list[str] | None = Query(None),
    svc: ModelService = service(ModelService),
) -> Response:
    """Register a package uploaded as a tar (``application/octet-stream``)."""
    check_name(name, kind="model")
    limit = int(svc.ws.settings.max_upload_mb * (1 << 20))
    tmp = Path(tempfile.mkdtemp(prefix="kiln-upload-"))
    try:
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20, dir=str(tmp))
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the package is larger than {limit / (1 << 20):g} MB")
            spool.write(chunk)
        spool.seek(0)
        folder = tmp / "package"
        folder.mkdir()
        # A compressed tar may unpack to a bounded multiple of its size (a gzip bomb stops at
        # the member header that passes the bound, before its bytes are written).
        await run_in_threadpool(extract_tar, spool, folder, max_bytes=unpacked_limit(size, limit * 4))
        version = await run_in_threadpool(
            svc.register_folder, name=name, folder=folder, flavor=flavor, description=description,
            run_id=run_id, job=job, datasets=datasets,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _json(version, 201)


@router.get("/v1/models/{name}/versions/{version}/files", response_model=list[ModelFile])
def list_files(name: str, version: str, svc: ModelService = service(ModelService)) -> Response:
    return _json(svc.get_version(ref=_ref(name, version)).files)


@router.get("/v1/models/{name}/versions/{version}/files/{path:path}")
def get_file(name: str, version: str, path: str, svc: ModelService = service(ModelService)) -> StreamingResponse:
    info, fh = svc.open_file(ref=_ref(name, version), path=path)

    def chunks() -> Any:
        with fh:
            while block := fh.read(1 << 20):
                yield block

    return StreamingResponse(
        chunks(), media_type="application/octet-stream",
        headers={"content-length": str(info.size), "x-sha256": info.sha256, "content-disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}"'},
    )


@router.get("/v1/models/{name}/versions/{version}/package.tar")
def get_package(name: str, version: str, svc: ModelService = service(ModelService)) -> StreamingResponse:
    ref = _ref(name, version)
    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
    svc.write_tar(ref=ref, out=spool)
    spool.seek(0)

    def chunks() -> Any:
        with spool:
            while block := spool.read(1 << 20):
                yield block

    filename = ref.replace("@", "-") + ".tar"
    return StreamingResponse(chunks(), media_type="application/x-tar", headers={"content-disposition": f'attachment; filename="{filename}"'})
