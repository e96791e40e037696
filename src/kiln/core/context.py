"""Who is asking: the actor, role, request id and source of one operation."""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass, field

from kiln.core.errors import PermissionDenied

__all__ = ["ROLES", "Context", "local_context"]

# Each role holds the rights of those before it. An approver is an editor who may also
# approve or reject model versions.
ROLES = ("viewer", "editor", "approver", "admin")


def _new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Context:
    """Carried into every service call so every face audits alike."""

    actor: str
    role: str = "admin"
    source: str = "local"
    request_id: str = field(default_factory=_new_request_id)

    def require(self, role: str) -> None:
        """Raise PermissionDenied unless this caller holds ``role`` or a higher one."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise PermissionDenied(
                f"{self.actor} has role {self.role!r}; this needs {role!r} - "
                f"ask an admin for a token with --role {role}"
            )


def local_context() -> Context:
    """The person at this machine using the SDK or CLI in-process: full rights."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Context(actor=f"local:{user}", role="admin", source="local")
