"""Services behind the system operations: the audit trail and garbage collection
(tokens are :class:`kiln.core.auth.TokenService`)."""

from __future__ import annotations

import time

from kiln.core import audit
from kiln.core.context import Context
from kiln.core.errors import InvalidArgument
from kiln.core.gc import GcReport, collect_garbage
from kiln.core.workspace import Workspace

__all__ = ["AuditService", "GcService"]

_TEN_YEARS = 10 * 365 * 86400


class AuditService:
    """Reading and verifying the audit trail (admin only)."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def list(
        self,
        *,
        actor: str | None = None,
        resource: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[audit.AuditEvent]:
        """Audit events, newest first, filtered by actor, resource, action and time.

        Raises:
            InvalidArgument: ``limit`` is not between 1 and 10,000.
        """
        self.ctx.require("admin")
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        with self.ws.db.read() as conn:
            return audit.list_events(conn, actor=actor, resource=resource, action=action, since=since, until=until, limit=limit)

    def verify(self) -> audit.VerifyResult:
        """Check the MAC chain and its anchor; names the first missing or bad event."""
        self.ctx.require("admin")
        return self.ws.verify_audit()


class GcService:
    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def collect(self, *, grace_s: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Remove stored files no committed resource references, older than ``grace_s`` seconds.

        Raises:
            InvalidArgument: ``grace_s`` is not between 0 and ten years.
        """
        if not 0 <= grace_s <= _TEN_YEARS:
            raise InvalidArgument("grace_s must be between 0 and ten years")
        return collect_garbage(self.ws, self.ctx, grace_s=grace_s, dry_run=dry_run, now=time.time())
