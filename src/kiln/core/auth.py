"""API tokens with roles. Only a token's sha256 is stored; the secret is shown once."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid

import sqlalchemy as sa
from pydantic import BaseModel

from kiln.core._tables import tokens
from kiln.core.context import ROLES, Context
from kiln.core.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from kiln.core.names import check_name
from kiln.core.workspace import Workspace

__all__ = ["TokenInfo", "TokenService", "NewToken"]

_PREFIX = "kiln_"


class TokenInfo(BaseModel):
    id: str
    name: str
    role: str
    created_at: float
    created_by: str
    revoked: bool
    last_used_at: float | None = None


class NewToken(TokenInfo):
    token: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenService:
    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def create(self, *, name: str, role: str) -> NewToken:
        check_name(name, kind="token")
        if role not in ROLES:
            raise InvalidArgument(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        secret = _PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": uuid.uuid4().hex,
            "name": name,
            "role": role,
            "token_hash": _hash(secret),
            "created_at": time.time(),
            "created_by": self.ctx.actor,
        }
        with self.ws.mutation(self.ctx, action="tokens.create", resource=f"tokens/{name}", role="admin", details={"role": role}) as (conn, _):
            if conn.execute(sa.select(tokens.c.id).where(tokens.c.name == name)).first():
                raise AlreadyExists(f"token {name!r} already exists; pick another name or revoke it first")
            conn.execute(tokens.insert().values(**row))
        return NewToken(**{k: v for k, v in row.items() if k != "token_hash"}, revoked=False, token=secret)

    def list(self) -> list[TokenInfo]:
        self.ctx.require("admin")
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at)).all()
        return [_info(r) for r in rows]

    def revoke(self, *, name: str) -> TokenInfo:
        check_name(name, kind="token")
        with self.ws.mutation(self.ctx, action="tokens.revoke", resource=f"tokens/{name}", role="admin") as (conn, _):
            row = conn.execute(sa.select(tokens).where(tokens.c.name == name)).first()
            if row is None:
                raise NotFound(f"token {name!r} does not exist; `kiln tokens ls` lists them")
            if row.revoked_at is None:  # revoking twice keeps the first revocation time
                conn.execute(tokens.update().where(tokens.c.name == name).values(revoked_at=time.time()))
            row = conn.execute(sa.select(tokens).where(tokens.c.name == name)).one()
        return _info(row)


def _info(row: sa.Row) -> TokenInfo:
    m = row._mapping
    return TokenInfo(
        id=m["id"], name=m["name"], role=m["role"], created_at=m["created_at"],
        created_by=m["created_by"], revoked=m["revoked_at"] is not None, last_used_at=m["last_used_at"],
    )


def authenticate(ws: Workspace, secret: str, *, source: str, request_id: str) -> Context:
    """Turn a bearer token into a Context, or raise Unauthenticated."""
    if not secret or not secret.startswith(_PREFIX):
        raise Unauthenticated("missing or malformed token: send 'Authorization: Bearer kiln_...'")
    with ws.db.read() as conn:
        row = conn.execute(
            sa.select(tokens.c.name, tokens.c.role, tokens.c.revoked_at).where(tokens.c.token_hash == _hash(secret))
        ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("token is unknown or revoked; create one with `kiln tokens create`")
    return Context(actor=f"token:{row.name}", role=row.role, source=source, request_id=request_id)
