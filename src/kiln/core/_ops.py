"""The system operations (tokens, audit, gc), declared once (see :mod:`kiln.core.ops`)."""

from __future__ import annotations

from kiln.core.audit import AuditEvent, VerifyResult
from kiln.core.auth import NewToken, TokenInfo
from kiln.core.gc import GcReport
from kiln.core.ops import Operation, declare

_TOKENS = "kiln.core.auth:TokenService"
_AUDIT = "kiln.core.system:AuditService"

ALL = declare(
    Operation(name="tokens.create", method="POST", path="/v1/tokens", role="admin", service=_TOKENS, call="create", response=NewToken, body=("name", "role"), status=201, kind="token"),
    Operation(name="tokens.list", method="GET", path="/v1/tokens", role="admin", service=_TOKENS, call="list", response=list[TokenInfo]),
    Operation(name="tokens.revoke", method="DELETE", path="/v1/tokens/{name}", role="admin", service=_TOKENS, call="revoke", response=TokenInfo, kind="token"),
    Operation(name="audit.list", method="GET", path="/v1/audit", role="admin", service=_AUDIT, call="list", response=list[AuditEvent]),
    Operation(name="audit.verify", method="GET", path="/v1/audit/verify", role="admin", service=_AUDIT, call="verify", response=VerifyResult),
    Operation(name="system.gc", method="POST", path="/v1/gc", role="admin", service="kiln.core.system:GcService", call="collect", response=GcReport),
)
TOKENS_CREATE, TOKENS_LIST, TOKENS_REVOKE, AUDIT_LIST, AUDIT_VERIFY, GC = ALL
