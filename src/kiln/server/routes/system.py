"""Health, tokens, audit and garbage collection."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query
from pydantic import BaseModel

import kiln
from kiln.core import audit
from kiln.core.auth import NewToken, TokenInfo, TokenService
from kiln.core.errors import InvalidArgument
from kiln.core.gc import GcReport, collect_garbage
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import Ctx, Ws, service

router = APIRouter(tags=["system"], route_class=KilnRoute)


class Health(BaseModel):
    status: str
    version: str


@router.get("/v1/health", response_model=Health, openapi_extra=role("public"))
def health() -> Health:
    return Health(status="ok", version=kiln.__version__)


class TokenCreate(BaseModel):
    name: str
    role: str = "viewer"


@router.post("/v1/tokens", response_model=NewToken, status_code=201, openapi_extra=role("admin", action="tokens.create"))
def create_token(body: TokenCreate, svc: TokenService = service(TokenService)) -> NewToken:
    return svc.create(name=body.name, role=body.role)


@router.get("/v1/tokens", response_model=list[TokenInfo], openapi_extra=role("admin"))
def list_tokens(svc: TokenService = service(TokenService)) -> list[TokenInfo]:
    return svc.list()


@router.delete("/v1/tokens/{name}", response_model=TokenInfo, openapi_extra=role("admin", action="tokens.revoke"))
def revoke_token(name: str, svc: TokenService = service(TokenService)) -> TokenInfo:
    return svc.revoke(name=name)


@router.get("/v1/audit", response_model=list[audit.AuditEvent], openapi_extra=role("admin"))
def list_audit(
    ws: Ws,
    ctx: Ctx,
    actor: str | None = None,
    resource: str | None = None,
    action: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[audit.AuditEvent]:
    ctx.require("admin")
    with ws.db.read() as conn:
        events = audit.list_events(conn, actor=actor, resource=resource, action=action, since=since, until=until, limit=limit)
    return events


@router.get("/v1/audit/verify", response_model=audit.VerifyResult, openapi_extra=role("admin"))
def verify_audit(ws: Ws, ctx: Ctx) -> audit.VerifyResult:
    ctx.require("admin")
    return ws.verify_audit()


@router.post("/v1/gc", response_model=GcReport, openapi_extra=role("admin"))
def gc(ws: Ws, ctx: Ctx, grace_s: float = Query(3600.0, ge=0), dry_run: bool = False) -> GcReport:
    if grace_s < 0 or grace_s > 10 * 365 * 86400:
        raise InvalidArgument("grace_s must be between 0 and ten years")
    return collect_garbage(ws, ctx, grace_s=grace_s, dry_run=dry_run, now=time.time())
