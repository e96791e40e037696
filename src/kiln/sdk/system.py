"""SDK calls for tokens, the audit trail and garbage collection."""

from __future__ import annotations

from typing import Any

from kiln.core import _ops as ops
from kiln.core.auth import NewToken, TokenInfo
from kiln.core.gc import GcReport
from kiln.sdk._base import Namespace

__all__ = ["Audit", "Tokens"]


class Tokens(Namespace):
    def create(self, name: str, *, role: str = "viewer") -> NewToken:
        """Create an API token; its secret is in ``.token`` and is never shown again."""
        return self._call(ops.TOKENS_CREATE, name=name, role=role)  # type: ignore[no-any-return]

    def list(self) -> list[TokenInfo]:
        """Every token (admin only); secrets are never shown again."""
        return self._call(ops.TOKENS_LIST)  # type: ignore[no-any-return]

    def revoke(self, name: str) -> TokenInfo:
        """Revoke a token; requests with it are refused from then on."""
        return self._call(ops.TOKENS_REVOKE, name=name)  # type: ignore[no-any-return]


class Audit(Namespace):
    def list(self, *, actor: str | None = None, resource: str | None = None, action: str | None = None, since: float | None = None, until: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Audit events, newest first."""
        events = self._call(ops.AUDIT_LIST, actor=actor, resource=resource, action=action, since=since, until=until, limit=limit)
        return [e.model_dump() for e in events]

    def verify(self) -> dict[str, Any]:
        """Check the MAC chain and its anchor: ``{"ok", "checked", "first_bad_seq", "problem"}``.

        ``first_bad_seq`` names the first missing or bad event; it is ``None`` when the
        anchor outside the database is itself missing or damaged.
        """
        return self._call(ops.AUDIT_VERIFY).model_dump()  # type: ignore[no-any-return]

    def gc(self, *, grace_s: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Remove stored files no committed resource references (older than ``grace_s``)."""
        return self._call(ops.GC, grace_s=grace_s, dry_run=dry_run)  # type: ignore[no-any-return]
