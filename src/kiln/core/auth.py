"""API tokens with roles. Only a token's sha256 is stored; the secret is shown once."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import secrets
import stat
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel

from kiln.core._tables import tokens
from kiln.core.context import ROLES, Context
from kiln.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from kiln.core.names import check_name
from kiln.core.workspace import Workspace

__all__ = ["LOCAL_TOKEN_FILE", "NewToken", "TokenInfo", "TokenService", "ensure_local_token", "is_loopback", "local_token_path", "read_local_token"]

_PREFIX = "kiln_"

# The admin token `kiln server` makes for the person who started it, in KILN_HOME.
LOCAL_TOKEN_FILE = "server-token"


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

    def create(self, *, name: str, role: str = "viewer") -> NewToken:
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


def local_token_path(home: Path) -> Path:
    return Path(home) / LOCAL_TOKEN_FILE


def read_local_token(home: Path) -> str:
    """The secret in ``KILN_HOME/server-token``, or "" when there is none.

    Raises:
        PermissionDenied: the file is not a regular file of this user's that only this user
            can read and write (like ssh with a private key).
    """
    path = local_token_path(home)
    # Not blocking: opening a fifo for reading would wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise PermissionDenied(f"cannot read the token file {path}: {exc.strerror}; remove it and restart `kiln server`") from None
    try:
        _check_private(path, os.fstat(fd))  # before reading: a folder or a fifo is refused, not read
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        return fh.read(4096).strip()


def _check_private(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise PermissionDenied(f"the token file {path} is not a regular file; remove it and restart `kiln server`")
    if os.name != "posix":
        return
    if st.st_uid != os.getuid():
        raise PermissionDenied(f"the token file {path} belongs to another user; refusing to use it (remove it and restart `kiln server`)")
    if st.st_mode & 0o077:
        raise PermissionDenied(
            f"the token file {path} can be read or written by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"refusing to use it: its token may have leaked. Revoke it (`kiln tokens ls`, `kiln tokens revoke NAME`), "
            f"remove the file and restart `kiln server` to get a new one"
        )


def ensure_local_token(ws: Workspace) -> Path:
    """Make sure ``KILN_HOME/server-token`` holds a live admin token; return its path.

    An existing file whose token is still valid is kept (clients keep working across
    restarts); otherwise a new admin token is created (stored hashed, audited) and written
    owner-only (0600), replacing the file atomically.

    Raises:
        PermissionDenied: an existing file is readable by others (see :func:`read_local_token`).
    """
    path = local_token_path(ws.settings.home)
    secret = read_local_token(ws.settings.home)
    if secret.startswith(_PREFIX):
        with ws.db.read() as conn:
            row = conn.execute(sa.select(tokens.c.role, tokens.c.revoked_at).where(tokens.c.token_hash == _hash(secret))).first()
        if row is not None and row.revoked_at is None and row.role == "admin":
            return path
    ctx = Context(actor="system:server", role="admin", source="server")
    new = TokenService(ws, ctx).create(name=f"local-server-{secrets.token_hex(4)}", role="admin")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new.token + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@functools.lru_cache(maxsize=1024)  # asked on every request of a --no-auth server: a parse each time cost ~5 µs
def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, without port or brackets) is this machine."""
    host = host.strip().lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
