"""REST: /v1/datasets."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from kiln.core.errors import InvalidArgument, PermissionDenied, invalid_input
from kiln.lake import Dataset, DatasetService, DatasetVersion, IngestOptions
from kiln.lake._wire import MEDIA_TYPES, encode_table
from kiln.lake.bundles import BundleService
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import Ws, service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=KilnRoute)

Svc = DatasetService


class IngestRequest(BaseModel):
    """Ingest from a source the server reads itself: ``s3://`` or a database URL."""

    source: str
    options: IngestOptions = IngestOptions()
    append: bool = False


class Deleted(BaseModel):
    name: str
    deleted_versions: list[int]


@router.get("", response_model=list[Dataset])
def list_datasets(svc: Svc = service(DatasetService)) -> list[Dataset]:
    return svc.list()


def _upload_options(params: dict[str, Any]) -> IngestOptions:
    raw = dict(params)
    if "types" in raw:
        try:
            raw["types"] = orjson.loads(raw["types"])
        except orjson.JSONDecodeError:
            raise InvalidArgument('types must be a JSON object, e.g. {"zip": "varchar"}') from None
    if "null_values" in raw:
        raw["null_values"] = raw["null_values"].split(",")
    raw.pop("append", None)
    try:
        return IngestOptions.model_validate(raw)
    except ValueError as exc:
        raise invalid_input("invalid ingest options", exc) from None


@router.post("/{name}/versions", response_model=DatasetVersion, status_code=201, openapi_extra={
    **role("editor", action="datasets.ingest"),
    "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": IngestRequest.model_json_schema()}}},
})
async def ingest(name: str, request: Request, ws: Ws, svc: Svc = service(DatasetService), append: bool = False) -> DatasetVersion:
    """Upload a file as the body (``?format=csv`` and other options as query parameters),
    or send JSON ``{"source": "s3://..."}`` for a source the server reads."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    params = {k: v for k, v in request.query_params.items()}
    if ctype == "application/json":
        try:
            body = IngestRequest.model_validate_json(await request.body())
        except ValueError as exc:
            raise invalid_input("invalid ingest request", exc) from None
        if not body.source.lower().startswith(("s3://", "postgresql://", "postgres://", "mysql", "sqlite:")):
            raise InvalidArgument("over REST, upload the file as the request body; only s3:// and database sources are read by the server")
        if body.source.lower().startswith("sqlite:"):
            raise InvalidArgument("sqlite: sources name files on the server and are refused over REST; upload the data instead")
        # The server reads wherever the URL says, with its own credentials and network
        # reach (other buckets, other databases): only an admin may point it there.
        _require(svc, "admin", name)
        return await _in_thread(svc.ingest, name, body.source, options=body.options, append=body.append)
    opts = _upload_options(params)
    if opts.format is None:
        raise InvalidArgument("say what the body holds with ?format=csv|json|jsonl|parquet|excel")
    if opts.format in ("sql", "arrow"):
        raise InvalidArgument(f"format {opts.format!r} cannot be uploaded; use csv, json, jsonl, parquet or excel")
    tmp_dir = ws.settings.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=f".{opts.format}", dir=tmp_dir)
    try:
        size = 0
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                fh.write(chunk)
        if size == 0:
            raise InvalidArgument("the request body is empty: upload the file's bytes")
        return await _in_thread(svc.ingest, name, path, options=opts, append=append)
    finally:
        os.unlink(path)


def _require(svc: DatasetService, role: str, name: str) -> None:
    """A role check that, when it refuses, leaves the same audit event the service would."""
    try:
        svc.ctx.require(role)
    except PermissionDenied as exc:
        svc.ws.audit_failure(svc.ctx, action="datasets.ingest", resource=f"datasets/{name}", error=exc)
        raise


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


@router.get("/{ref}", response_model=DatasetVersion)
def show(ref: str, svc: Svc = service(DatasetService)) -> DatasetVersion:
    return svc.get(ref)


@router.get("/{name}/versions", response_model=list[DatasetVersion])
def versions(name: str, svc: Svc = service(DatasetService)) -> list[DatasetVersion]:
    return svc.versions(name)


@router.get("/{ref}/verify", response_model=DatasetVersion)
def verify(ref: str, svc: Svc = service(DatasetService)) -> DatasetVersion:
    return svc.verify(ref)


@router.get("/{ref}/head")
def head(ref: str, n: int = Query(10, ge=0, le=100_000), format: str = Query("json", pattern="^(json|csv|arrow|parquet|jsonl)$"), svc: Svc = service(DatasetService)) -> Response:
    table = svc.head(ref, n=n)
    return Response(encode_table(table, format), media_type=MEDIA_TYPES[format])


@router.get("/{ref}/export")
def export(ref: str, ws: Ws, format: str = Query("parquet", pattern="^(csv|parquet|jsonl|json)$"), svc: Svc = service(DatasetService)) -> FileResponse:
    version = svc.get(ref)
    tmp_dir = ws.settings.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="export-", suffix=f".{format}", dir=tmp_dir)
    os.close(fd)
    try:
        svc.export(f"{version.name}@{version.version}", path, format=format)
    except BaseException:
        os.unlink(path)  # the response's background task, which removes it, never runs
        raise
    return FileResponse(path, media_type=MEDIA_TYPES[format], filename=f"{version.name}-v{version.version}.{format}", background=BackgroundTask(os.unlink, path))


@router.delete("/{ref}", response_model=Deleted)
def delete(ref: str, svc: Svc = service(DatasetService)) -> Deleted:
    return Deleted(name=ref.split("@", 1)[0], deleted_versions=svc.delete(ref))


@router.get("/{name}/bundle")
def export_bundle(name: str, ws: Ws, svc: BundleService = service(BundleService)) -> FileResponse:
    """Every version of a dataset, with schema, source, lineage and checksums, as one tar bundle."""
    tmp_dir = ws.settings.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="bundle-", suffix=".tar", dir=tmp_dir)
    os.close(fd)
    try:
        svc.export(name, path)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(path, media_type="application/x-tar", filename=f"{name}.kiln.tar", background=BackgroundTask(os.unlink, path))


@router.post("/bundles", response_model=list[DatasetVersion], status_code=201, openapi_extra={
    "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
})
async def import_bundle(request: Request, ws: Ws, name: str | None = None, svc: BundleService = service(BundleService)) -> list[DatasetVersion]:
    """Upload a bundle as the body; it is verified whole before anything is written."""
    tmp_dir = ws.settings.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="bundle-", suffix=".tar", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                fh.write(chunk)
        return await _in_thread(svc.import_, path, name=name)
    finally:
        os.unlink(path)
