"""One error tree for every face.

Each error carries the HTTP status the REST face answers with and the exit
code the CLI exits with, so no face maps errors on its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "KilnError",
    "FunctionError",
    "ModelError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "NotAcceptable",
    "error_from_payload",
    "invalid_input",
]


class KilnError(Exception):
    """Root of every error Kiln raises on purpose.

    Args:
        message: what was wrong and what to do about it.
        details: optional machine-readable context (a field name, a line number...).
    """

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_payload(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidArgument(KilnError):
    code = "invalid_argument"
    http_status = 400
    exit_code = 2


class NotFound(KilnError):
    code = "not_found"
    http_status = 404
    exit_code = 3


class AlreadyExists(KilnError):
    code = "already_exists"
    http_status = 409
    exit_code = 4


class Conflict(KilnError):
    code = "conflict"
    http_status = 409
    exit_code = 4


class Unauthenticated(KilnError):
    code = "unauthenticated"
    http_status = 401
    exit_code = 5


class PermissionDenied(KilnError):
    code = "permission_denied"
    http_status = 403
    exit_code = 5


class PayloadTooLarge(KilnError):
    code = "payload_too_large"
    http_status = 413
    exit_code = 2


class UnsupportedMediaType(KilnError):
    code = "unsupported_media_type"
    http_status = 415
    exit_code = 2


class NotAcceptable(KilnError):
    code = "not_acceptable"
    http_status = 406
    exit_code = 2


class ResourceExhausted(KilnError):
    code = "resource_exhausted"
    http_status = 429
    exit_code = 6


class Unavailable(KilnError):
    code = "unavailable"
    http_status = 503
    exit_code = 7


class ModelError(KilnError):
    """The model's own code failed, crashed or ran past its time (SageMaker's ModelError, 424)."""

    code = "model_error"
    http_status = 424
    exit_code = 8


class FunctionError(KilnError):
    """A function's own code raised, crashed, ran past its time or returned what JSON cannot
    hold. 424 (Failed Dependency) as ModelError: the request was valid and Kiln worked; the
    user's code it depends on failed. The message is ``Type: message``; ``details`` carry the
    user's ``traceback`` (server paths hidden) and, in a map, the ``row``."""

    code = "function_error"
    http_status = 424
    exit_code = 9


def invalid_input(what: str, exc: Exception) -> InvalidArgument:
    """A pydantic ValidationError (or other ValueError) as one line: ``what: field: problem; ...``."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'value'}: {e.get('msg', '')}" for e in errors()]
        text = "; ".join(parts)
    else:
        text = " ".join(str(exc).split())
    return InvalidArgument(f"{what}: {text[:1000]}")


_BY_CODE: dict[str, type[KilnError]] = {
    cls.code: cls
    for cls in (
        KilnError,
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Conflict,
        Unauthenticated,
        PermissionDenied,
        PayloadTooLarge,
        UnsupportedMediaType,
        NotAcceptable,
        ResourceExhausted,
        Unavailable,
        ModelError,
        FunctionError,
    )
}


def error_from_payload(payload: Any, status: int) -> KilnError:
    """Rebuild the error a server sent, so remote and local calls raise alike."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(body, dict):
        cls = _BY_CODE.get(str(body.get("code")), KilnError)
        # AlreadyExists and Conflict share 409; the code tells them apart.
        return cls(str(body.get("message", "")), details=body.get("details") or {})
    text = payload if isinstance(payload, str) else str(body or payload)
    for cls in _BY_CODE.values():
        if cls.http_status == status and cls is not KilnError:
            return cls(text)
    return KilnError(f"server answered {status}: {text}")
