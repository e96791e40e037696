"""A workspace: settings, the metadata database and the object store, opened once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection

from kiln.core import audit
from kiln.core.config import Settings, load_settings
from kiln.core.context import Context
from kiln.core.db import Database
from kiln.core.errors import KilnError
from kiln.core.storage import ObjectStore, open_store

__all__ = ["Workspace"]


class Workspace:
    """The embedded or scaled-out backends a set of services work on."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.settings.database_url)
        self.db.migrate()
        self._store: ObjectStore | None = None
        self._store_lock = threading.Lock()
        self._on_close: list[Callable[[], None]] = []
        try:
            self.audit = audit.AuditTrail.open(self.settings, self.db, lambda: self.store)
        except BaseException:
            self.db.dispose()
            raise

    @property
    def store(self) -> ObjectStore:
        with self._store_lock:
            if self._store is None:
                self._store = open_store(
                    self.settings.storage_url, endpoint_url=self.settings.s3_endpoint_url
                )
            return self._store

    @contextmanager
    def mutation(
        self,
        ctx: Context,
        *,
        action: str,
        resource: str,
        role: str = "editor",
        details: dict[str, Any] | None = None,
    ) -> Iterator[tuple[Connection, dict[str, Any]]]:
        """A write transaction that audits itself.

        Yields the connection and a ``details`` dict the caller may fill. On
        success the audit event commits with the change; on failure the change
        rolls back and a failure event is written on its own.
        """
        extra: dict[str, Any] = dict(details or {})
        try:
            ctx.require(role)  # inside: a refused attempt is audited as a failure too
            with self.db.write() as conn:
                yield conn, extra
                self.audit.record(conn, ctx, action=action, resource=resource, details=extra)
            self.audit.committed()
        except KilnError as exc:
            self._record_failure(ctx, action, resource, extra, exc.code, exc.message)
            raise
        except Exception as exc:
            self._record_failure(ctx, action, resource, extra, "internal", type(exc).__name__)
            raise

    def audit_failure(self, ctx: Context, *, action: str, resource: str, error: KilnError) -> None:
        """Audit a mutation that failed before its transaction began (bad data, no permission)."""
        self._record_failure(ctx, action, resource, {}, error.code, error.message)

    def _record_failure(
        self, ctx: Context, action: str, resource: str, extra: dict[str, Any], code: str, message: str
    ) -> None:
        try:
            with self.db.write() as conn:
                self.audit.record(
                    conn, ctx, action=action, resource=resource, outcome="failure",
                    details={**extra, "error": code, "message": message[:500]},
                )
            self.audit.committed()
        except KilnError:
            pass  # the database itself is failing; the original error is what matters

    def verify_audit(self) -> audit.VerifyResult:
        """Check the audit trail against its key and its anchor (only reads)."""
        return self.audit.verify()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the workspace closes (a stage's processes held for it: warm
        function workers), before the database is released."""
        self._on_close.append(callback)

    def close(self) -> None:
        """Stop what stages hold for this workspace, anchor the audit events this process
        wrote, then release the database."""
        callbacks, self._on_close = self._on_close, []
        for callback in reversed(callbacks):
            callback()
        self.audit.close()
        self.db.dispose()
