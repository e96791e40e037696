"""Operations, each declared once: name, HTTP method and path, role, service method,
request and response. The REST route, the SDK's remote call and the OpenAPI entry
are derived from the declaration (see ``kiln.server._ops`` and ``kiln.sdk._base``),
so an SDK namespace calls one interface whatever its transport.

A declaration names the service method that does the work; its keyword arguments
are the operation's parameters. Each one travels over HTTP as a path segment (a
``{placeholder}`` of ``path``), in the JSON body (``body``), or as a query
parameter (the rest). A reference (``iris@3``) may be split across two path
segments with ``ref=("name", "version")``. Uploads and streamed downloads stay
hand-written routes: they are the special cases.

Declarations import nothing heavy: the service is named by its dotted path and
loaded when first called.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kiln.core.context import ROLES
from kiln.core.errors import InvalidArgument
from kiln.core.names import check_alias, check_name, parse_ref

__all__ = ["OPERATIONS", "Operation", "declare"]

# ``{name}``, or ``{name:path}`` for an argument that may hold '/' (a metric key).
_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::path)?\}")
_FREE_SEGMENT = re.compile(r"\{([a-z_]+):path\}")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

OPERATIONS: dict[str, Operation] = {}


@dataclass(frozen=True)
class Operation:
    """One operation of Kiln's API.

    Attributes:
        name: ``<stage>.<verb>``, unique (``models.get_version``); also the audit action
            of a refusal and the OpenAPI operation id.
        method: HTTP method.
        path: the route, with ``{placeholders}`` named after the call's arguments.
        role: the least role that may call it (``public`` for no token at all).
        service: ``"module:Class"`` of the service, built as ``Class(workspace, context)``.
        call: the service method, called with keyword arguments.
        response: the type the call returns (a pydantic model, ``list[...]``...).
        body: arguments sent in the JSON body; the others not in the path go in the query.
        payload: the argument that is the whole JSON body, any JSON value, for an operation
            that passes users' JSON through as it is (``functions.invoke``); not with ``body``.
        ref: ``(name_segment, version_segment)`` when the ``ref`` argument is split over two
            path segments (``/v1/models/{name}/versions/{version}``).
        fixed: arguments the operation always passes (``approve`` is ``set_status`` with
            ``status="Approved"``).
        kind: the resource kind named in errors about a bad reference.
        status: the HTTP status of a success (201 for a create).
        summary: one line for the OpenAPI; defaults to the service method's first line.
        inline: ``"module:function"`` of a predicate on the workspace and the call's arguments that says the call is cheap
            and never waits long (an online read from a local SQLite file): the REST route then
            runs it on the event loop instead of handing it to the thread pool. A store that may
            stall (network) answers False, and the call keeps its thread.
    """

    name: str
    method: str
    path: str
    role: str
    service: str
    call: str
    response: Any
    body: tuple[str, ...] = ()
    payload: str = ""
    ref: tuple[str, str] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "resource"
    status: int = 200
    summary: str = ""
    inline: str = ""

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"{self.name}: unknown method {self.method}")
        if self.role not in (*ROLES, "public"):
            raise ValueError(f"{self.name}: unknown role {self.role}")
        if self.payload and self.body:
            raise ValueError(f"{self.name}: a payload is the whole body; it takes no other body argument")

    @cached_property
    def service_class(self) -> type:
        module, _, cls = self.service.partition(":")
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]

    def runs_inline(self, workspace: Any, args: Mapping[str, Any]) -> bool:
        """Whether the REST route may run this call, with these arguments, on the event loop (see ``inline``)."""
        if not self.inline:
            return False
        module, _, func = self.inline.partition(":")
        return bool(getattr(importlib.import_module(module), func)(workspace, args))

    @cached_property
    def parameters(self) -> dict[str, inspect.Parameter]:
        """The service method's keyword arguments, less the fixed ones."""
        sig = inspect.signature(getattr(self.service_class, self.call))
        return {n: p for n, p in sig.parameters.items() if n != "self" and n not in self.fixed}

    @property
    def segments(self) -> list[str]:
        return _PLACEHOLDER.findall(self.path)

    @property
    def template(self) -> str:
        """The path as the OpenAPI shows it (``{key:path}`` is ``{key}`` there)."""
        return self.path.replace(":path}", "}")

    @property
    def path_args(self) -> list[str]:
        """Arguments carried in the path (``ref`` for a split reference)."""
        names = [s for s in self.segments if not (self.ref and s in self.ref)]
        return [*names, "ref"] if self.ref else names

    @property
    def query_args(self) -> list[str]:
        return [n for n in self.parameters if n not in self.body and n != self.payload and n not in self.path_args]

    def path_for(self, args: Mapping[str, Any], quote: Callable[[Any], str]) -> str:
        """The request path for these arguments, each segment quoted whole."""
        values = {k: args[k] for k in self.segments if k in args}
        free = set(_FREE_SEGMENT.findall(self.path))  # {key:path} may hold '/'
        for k, v in values.items():
            if not (self.ref and k in self.ref) and k not in free:
                self._check_segment(k, str(v))
        if self.ref:
            parsed = parse_ref(str(args["ref"]), kind=self.kind)
            tail = str(parsed.version) if parsed.version is not None else (parsed.alias or "latest")
            values.update({self.ref[0]: parsed.name, self.ref[1]: tail})
        quoted = {k: quote(v) for k, v in values.items()}
        return _PLACEHOLDER.sub(lambda m: quoted[m.group(1)], self.path)

    def _check_segment(self, segment: str, value: str) -> None:
        """Refuse here a value the router would split or drop ('a/b', ''), which would never
        reach the service whole: the same error the service gives, not the router's 404."""
        if value and "/" not in value:
            return
        if segment == "ref":
            parse_ref(value, kind=self.kind)
        elif segment == "alias":
            check_alias(value)
        else:
            check_name(value, kind=self.kind)
        raise InvalidArgument(f"invalid {segment} {value!r} for {self.name}: it cannot be empty or hold '/'")

    def args_from_path(self, values: Mapping[str, str]) -> dict[str, Any]:
        """The call's arguments from the path segments of a request."""
        out = {k: v for k, v in values.items() if not (self.ref and k in self.ref)}
        if self.ref:
            name, version = values[self.ref[0]], values[self.ref[1]]
            out["ref"] = f"{name}@{version}"
        return out

    def invoke(self, workspace: Any, context: Any, args: Mapping[str, Any]) -> Any:
        """Run the operation in this process, on ``workspace`` as ``context``."""
        unknown = set(args) - set(self.parameters)
        if unknown:
            raise InvalidArgument(f"{self.name} takes no argument {sorted(unknown)[0]!r}")
        service = self.service_class(workspace, context)
        return getattr(service, self.call)(**args, **self.fixed)


def declare(*operations: Operation) -> tuple[Operation, ...]:
    """Add operations to :data:`OPERATIONS` (each stage's ``_ops`` module does this once)."""
    for op in operations:
        if OPERATIONS.get(op.name, op) != op:
            raise ValueError(f"operation {op.name} is declared twice")
        OPERATIONS[op.name] = op
    return operations
