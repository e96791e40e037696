"""How the SDK reaches Kiln: in-process services or a server, behind one interface."""

from __future__ import annotations

import functools
import math
import numbers
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import orjson

from kiln.core.errors import InvalidArgument, KilnError, Unavailable, error_from_payload

if TYPE_CHECKING:
    from kiln.core.context import Context
    from kiln.core.ops import Operation
    from kiln.core.workspace import Workspace

__all__ = ["HttpTransport", "LocalTransport", "Namespace", "Transport", "seg"]

S = TypeVar("S")


class LocalTransport:
    """Calls the service layer directly, on a workspace opened once."""

    is_local = True

    def __init__(self, workspace: Workspace, ctx: Context) -> None:
        self.workspace = workspace
        self.ctx = ctx

    def call(self, op: Operation, **args: Any) -> Any:
        """Run a declared operation in this process."""
        return op.invoke(self.workspace, self.ctx, args)

    def close(self) -> None:
        self.workspace.close()


class HttpTransport:
    """Calls a Kiln server's REST API; errors come back as the same KilnError types."""

    is_local = False

    def __init__(self, base_url: str, *, token: str = "", timeout: float = 300.0, transport: httpx.BaseTransport | None = None) -> None:
        # X-Kiln-Client tells the server this is not a web page (which cannot send it cross-site).
        headers = {"user-agent": "kiln-sdk", "x-kiln-client": "1"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)
        self._lock = threading.Lock()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None, content: Any = None, files: Any = None, headers: dict[str, str] | None = None) -> Any:
        """Send one request and return its decoded JSON (or raw bytes for non-JSON)."""
        _check_path(path)
        body = None
        hdrs = dict(headers or {})
        if json is not None:
            body = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
            hdrs["content-type"] = "application/json"
        elif content is not None:
            body = content
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            resp = self._http.request(method, path, content=body, params=params, files=files, headers=hdrs)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the Kiln server at {self.base_url}: {exc}") from None
        return _decode(resp)

    def call(self, op: Operation, **args: Any) -> Any:
        """Run a declared operation on the server: path, query and body from its declaration."""
        path = op.path_for(args, seg)
        query = {k: args[k] for k in op.query_args if args.get(k) is not None}
        if op.payload:
            # The whole body is the value, whatever JSON it is (null included).
            try:
                content = orjson.dumps(args.get(op.payload), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
            except TypeError as exc:
                raise InvalidArgument(f"the {op.payload} is not JSON: {exc}") from None
            got = self.request(op.method, path, params=query or None, content=content, headers={"content-type": "application/json"})
            return _adapter(op.response).validate_python(got)
        body = {k: _finite(args[k]) for k in op.body if k in args} if op.body else None
        got = self.request(op.method, path, params=query or None, json=body)
        return _adapter(op.response).validate_python(got)

    @contextmanager
    def stream(self, method: str, path: str, *, params: dict[str, Any] | None = None) -> Iterator[httpx.Response]:
        _check_path(path)
        try:
            with self._http.stream(method, path, params=params) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _decode(resp)
                yield resp
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the Kiln server at {self.base_url}: {exc}") from None

    def close(self) -> None:
        self._http.close()


@functools.lru_cache(maxsize=None)
def _adapter(response: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(response)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: send them as the strings pydantic parses back
    (numpy scalars as the Python numbers they are)."""
    if isinstance(value, numbers.Real) and not isinstance(value, (int, float)):
        value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def seg(value: Any) -> str:
    """One URL path segment: every name or ref reaches the server's validation whole.

    '/', '?', '#' and '%' are encoded, and so is '.', which httpx would otherwise
    resolve ('a/../b' -> 'b') into a request for another resource.
    """
    from urllib.parse import quote

    return quote(str(value), safe="@").replace(".", "%2E")


def _check_path(path: str) -> None:
    """A safety net for paths built without :func:`seg`: refuse what would reach another route."""
    if "?" in path or "#" in path or any(part in (".", "..") for part in path.split("/")):
        raise InvalidArgument(
            f"invalid name in request path {path!r}: names cannot be '.' or '..' or hold '?' or '#'"
        )


def _decode(resp: httpx.Response) -> Any:
    ctype = resp.headers.get("content-type", "")
    is_json = ctype.startswith("application/json")
    if resp.status_code >= 300:  # the API never redirects; a 3xx is not an answer
        try:
            payload = resp.json() if is_json else resp.text
        except ValueError:
            payload = resp.text
        raise error_from_payload(payload, resp.status_code)
    if resp.status_code == 204:
        return None
    if is_json:
        return orjson.loads(resp.content)
    return resp.content


Transport = LocalTransport | HttpTransport


class Namespace:
    """A group of SDK calls (``client.datasets``...). Local or remote by transport."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    @property
    def _local(self) -> bool:
        return self._t.is_local

    def _svc(self, cls: type[S]) -> S:
        t = self._t
        assert isinstance(t, LocalTransport)
        return cls(t.workspace, t.ctx)  # type: ignore[call-arg]

    def _call(self, op: Operation, **args: Any) -> Any:
        """A declared operation, on whichever transport this client has."""
        return self._t.call(op, **args)

    def _http(self, method: str, path: str, **kwargs: Any) -> Any:
        t = self._t
        assert isinstance(t, HttpTransport)
        return t.request(method, path, **kwargs)


def raise_for(exc: BaseException) -> KilnError:  # pragma: no cover - helper for faces
    return exc if isinstance(exc, KilnError) else KilnError(str(exc))
