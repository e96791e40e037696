"""REST: /v1/streams."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kiln.lake.streams import Consumer, FlushResult, Position, PullResult, PutResult, ReadResult, Stream, StreamService
from kiln.server._roles import KilnRoute
from kiln.server.deps import service

router = APIRouter(prefix="/v1/streams", tags=["streams"], route_class=KilnRoute)

Svc = StreamService


class StreamCreate(BaseModel):
    name: str
    dataset: str | None = None
    columns: dict[str, str] | None = Field(None, description="declared schema: column -> string|int64|double|bool|timestamp|date|json")
    source: str | None = Field(None, description="nats://host:port/subject")
    flush_rows: int = 10_000
    flush_interval_s: float = 60.0
    description: str = ""


class PutRecords(BaseModel):
    records: list[Any] = Field(description="JSON objects, at most 10,000 per request")


class ConsumerRead(BaseModel):
    limit: int = 1000
    position: Position = Position.TRIM_HORIZON
    sequence_number: int | None = None
    lease_s: float = 60.0


class ConsumerCommit(BaseModel):
    lease: str


class ConsumerCreate(BaseModel):
    name: str
    position: Position = Position.TRIM_HORIZON
    sequence_number: int | None = None


class PullRequest(BaseModel):
    max_messages: int = 1000
    timeout_s: float = 1.0


@router.post("", response_model=Stream, status_code=201)
def create(body: StreamCreate, svc: Svc = service(StreamService)) -> Stream:
    return svc.create(body.name, dataset=body.dataset, columns=body.columns, source=body.source, flush_rows=body.flush_rows, flush_interval_s=body.flush_interval_s, description=body.description)


@router.get("", response_model=list[Stream])
def list_streams(svc: Svc = service(StreamService)) -> list[Stream]:
    return svc.list()


@router.get("/{name}", response_model=Stream)
def show(name: str, svc: Svc = service(StreamService)) -> Stream:
    return svc.get(name)


@router.delete("/{name}", response_model=Stream)
def delete(name: str, svc: Svc = service(StreamService)) -> Stream:
    return svc.delete(name)


@router.post("/{name}/records", response_model=PutResult)
def put_records(name: str, body: PutRecords, svc: Svc = service(StreamService)) -> PutResult:
    """Append a batch; the answer comes once the batch is committed (durable)."""
    return svc.put_records(name, body.records)


@router.get("/{name}/records", response_model=ReadResult)
def read(name: str, position: Position = Position.TRIM_HORIZON, sequence_number: int | None = Query(None, ge=0), limit: int = Query(1000, ge=1, le=10_000), svc: Svc = service(StreamService)) -> ReadResult:
    """Read from a position without a consumer (nothing is claimed)."""
    return svc.read(name, position=position, sequence_number=sequence_number, limit=limit)


@router.get("/{name}/consumers", response_model=list[Consumer])
def consumers(name: str, svc: Svc = service(StreamService)) -> list[Consumer]:
    return svc.consumers(name)


@router.post("/{name}/consumers", response_model=Consumer, status_code=201)
def create_consumer(name: str, body: ConsumerCreate, svc: Svc = service(StreamService)) -> Consumer:
    return svc.create_consumer(name, body.name, position=body.position, sequence_number=body.sequence_number)


@router.get("/{name}/consumers/{consumer}", response_model=Consumer)
def get_consumer(name: str, consumer: str, svc: Svc = service(StreamService)) -> Consumer:
    return svc.get_consumer(name, consumer)


@router.delete("/{name}/consumers/{consumer}", response_model=Consumer)
def delete_consumer(name: str, consumer: str, svc: Svc = service(StreamService)) -> Consumer:
    return svc.delete_consumer(name, consumer)


@router.post("/{name}/consumers/{consumer}/read", response_model=ReadResult)
def consumer_read(name: str, consumer: str, body: ConsumerRead, svc: Svc = service(StreamService)) -> ReadResult:
    """Claim the next records for a named consumer; commit the returned lease when done."""
    return svc.read_consumer(name, consumer, limit=body.limit, position=body.position, sequence_number=body.sequence_number, lease_s=body.lease_s)


@router.post("/{name}/consumers/{consumer}/commit", response_model=Consumer)
def consumer_commit(name: str, consumer: str, body: ConsumerCommit, svc: Svc = service(StreamService)) -> Consumer:
    return svc.commit(name, consumer, body.lease)


@router.post("/{name}/flush", response_model=FlushResult)
def flush(name: str, svc: Svc = service(StreamService)) -> FlushResult:
    return svc.flush(name)


@router.post("/{name}/pull", response_model=PullResult)
def pull(name: str, body: PullRequest | None = None, svc: Svc = service(StreamService)) -> PullResult:
    """Pull once from the stream's NATS source (a sync route: it runs in a worker thread)."""
    req = body or PullRequest()
    return svc.pull(name, max_messages=req.max_messages, timeout_s=req.timeout_s)
