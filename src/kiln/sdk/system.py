"""SDK calls for tokens, the audit trail and garbage collection."""

from __future__ import annotations

import time
from typing import Any

from kiln.core import audit as _audit
from kiln.core.auth import NewToken, TokenInfo, TokenService
from kiln.core.gc import GcReport, collect_garbage
from kiln.sdk._base import Namespace, seg

__all__ = ["Audit", "Tokens"]


class Tokens(Namespace):
    def create(self, name: str, *, role: str = "viewer") -> NewToken:
        """Create an API token; its secret is in ``.token`` and is never shown again."""
        if self._local:
            return self._svc(TokenService).create(name=name, role=role)
        return NewToken.model_validate(self._http("POST", "/v1/tokens", json={"name": name, "role": role}))

    def list(self) -> list[TokenInfo]:
        if self._local:
            return self._svc(TokenService).list()
        return [TokenInfo.model_validate(t) for t in self._http("GET", "/v1/tokens")]

    def revoke(self, name: str) -> TokenInfo:
        if self._local:
            return self._svc(TokenService).revoke(name=name)
        return TokenInfo.model_validate(self._http("DELETE", f"/v1/tokens/{seg(name)}"))


class Audit(Namespace):
    def list(self, *, actor: str | None = None, resource: str | None = None, action: str | None = None, since: float | None = None, until: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit events, newest first."""
        if self._local:
            ws = self._t.workspace  # type: ignore[union-attr]
            self._t.ctx.require("admin")  # type: ignore[union-attr]
            with ws.db.read() as conn:
                events = _audit.list_events(conn, actor=actor, resource=resource, action=action, since=since, until=until, limit=limit)
            return [e.model_dump() for e in events]
        return list(self._http("GET", "/v1/audit", params={"actor": actor, "resource": resource, "action": action, "since": since, "until": until, "limit": limit}))

    def verify(self) -> dict[str, Any]:
        """Check the MAC chain and its anchor: ``{"ok", "checked", "first_bad_seq", "problem"}``.

        ``first_bad_seq`` names the first missing or bad event; it is ``None`` when the
        anchor outside the database is itself missing or damaged.
        """
        if self._local:
            ws = self._t.workspace  # type: ignore[union-attr]
            self._t.ctx.require("admin")  # type: ignore[union-attr]
            return ws.verify_audit().model_dump()
        return dict(self._http("GET", "/v1/audit/verify"))

    def gc(self, *, grace_s: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Remove stored files no committed resource references (older than ``grace_s``)."""
        if self._local:
            t = self._t
            return collect_garbage(t.workspace, t.ctx, grace_s=grace_s, dry_run=dry_run, now=time.time())  # type: ignore[union-attr]
        return GcReport.model_validate(self._http("POST", "/v1/gc", params={"grace_s": grace_s, "dry_run": dry_run}))
