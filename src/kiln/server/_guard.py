"""Refuse what a web page could send: foreign ``Host`` names (DNS rebinding), cross-site
requests, and state-changing requests a browser may send cross-site without a preflight.

A page on another site can make the browser send a GET, or a POST with a CORS-simple
content type (``text/plain``, a form) and no custom header, to ``127.0.0.1`` - and with DNS
rebinding even read the answers. So, before any route runs:

- ``Host`` must be a loopback name, the name the server was bound to, or an allowed host;
- ``Origin``, when sent, must be the server's own (or an allowed origin), and
  ``Sec-Fetch-Site`` must be ``same-origin`` or ``none`` when sent;
- a POST/PUT/PATCH/DELETE must carry JSON or a declared upload type, and ``Authorization``
  or ``X-Kiln-Client`` - headers a browser sends cross-site only after a preflight, which
  this server never grants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from kiln.core.auth import is_loopback
from kiln.core.errors import InvalidArgument

__all__ = ["CLIENT_HEADER", "UPLOAD_TYPES", "BrowserGuard", "HostRules", "check"]

# Sent by the SDK and the CLI on every request; a browser cannot add it cross-site without
# a CORS preflight, and the server answers no preflight.
CLIENT_HEADER = "x-kiln-client"

# Media types a state-changing request may carry: JSON, and what the upload routes take.
UPLOAD_TYPES = frozenset({
    "application/gzip",
    "application/json",
    "application/octet-stream",
    "application/vnd.apache.parquet",
    "application/x-tar",
    "text/csv",
})

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` or ``[v6][:port]`` as (lower-case name without brackets, port)."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@?#\\ \t,"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:]
    else:
        name, sep, port_text = value.rpartition(":")
        if not sep:
            name, port_text = value, ""
        elif ":" in name:  # a bare IPv6 address is not a valid Host
            return None
    if port_text and not (port_text.isdigit() and len(port_text) <= 5):
        return None
    if not name:
        return None
    return name.rstrip("."), int(port_text) if port_text else None


@dataclass(frozen=True)
class HostRules:
    """Which ``Host`` names and ``Origin`` values the server answers.

    ``allowed`` entries are ``name`` (any port), ``name:port``, ``*.domain`` (any
    sub-domain), or an origin ``scheme://name[:port]``, which allows that origin too.
    """

    names: frozenset[str]
    name_ports: frozenset[tuple[str, int]]
    suffixes: tuple[str, ...]
    origins: frozenset[str]

    @classmethod
    def build(cls, allowed: Iterable[str], *, bound: str = "") -> HostRules:
        names: set[str] = set()
        name_ports: set[tuple[str, int]] = set()
        suffixes: list[str] = []
        origins: set[str] = set()
        entries = [e.strip() for e in allowed if e and e.strip()]
        if bound.strip().lower() not in _WILDCARD_BINDS:
            entries.append(bound.strip())
        for entry in entries:
            if "://" in entry:
                origin = _origin(entry)
                if origin is None:
                    raise InvalidArgument(f"KILN_ALLOWED_HOSTS entry {entry!r} is not an origin like https://kiln.example.com")
                origins.add(origin)
                entry = entry.split("://", 1)[1].split("/", 1)[0]
            if entry.startswith("*."):
                suffixes.append(entry[1:].lower().rstrip("."))
                continue
            parsed = _split_host(entry)
            if parsed is None:
                raise InvalidArgument(f"KILN_ALLOWED_HOSTS entry {entry!r} is not a host name like kiln.example.com[:8300]")
            name, port = parsed
            if port is None:
                names.add(name)
            else:
                name_ports.add((name, port))
        return cls(frozenset(names), frozenset(name_ports), tuple(suffixes), frozenset(origins))

    def allows_host(self, value: str) -> bool:
        parsed = _split_host(value)
        if parsed is None:
            return False
        name, port = parsed
        if is_loopback(name) or name in self.names:
            return True
        if port is not None and (name, port) in self.name_ports:
            return True
        return any(name.endswith(s) and len(name) > len(s) for s in self.suffixes)

    def allows_origin(self, origin: str, host: str) -> bool:
        """Same origin as the ``Host`` the request was sent to, or an allowed origin."""
        normal = _origin(origin)
        if normal is None:
            return False
        if normal in self.origins:
            return True
        scheme, _, netloc = normal.partition("://")
        mine = _split_host(host)
        theirs = _split_host(netloc)
        if mine is None or theirs is None:
            return False
        default = _DEFAULT_PORTS.get(scheme)
        # The scheme is not compared: behind a TLS proxy the server sees http.
        return mine[0] == theirs[0] and (mine[1] or default) == (theirs[1] or default)


def _origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case, or None for 'null' and anything else."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


def check(method: str, headers: dict[str, str], rules: HostRules) -> Refusal | None:
    """Why this request must be refused, or None."""
    host = headers.get("host", "")
    if not rules.allows_host(host):
        shown = host[:100] if host else "(none)"
        return Refusal(403, "host_not_allowed", f"this server does not answer to Host {shown!r}: use http://127.0.0.1 or http://localhost, or add the name to KILN_ALLOWED_HOSTS")
    origin = headers.get("origin")
    if origin is not None and not rules.allows_origin(origin, host):
        return Refusal(403, "cross_site_request", f"cross-origin request from {origin[:100]!r} refused; to allow a web app's origin, add it to KILN_ALLOWED_HOSTS (https://app.example.com)")
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site and site not in ("same-origin", "none"):
        return Refusal(403, "cross_site_request", f"request from another site refused (Sec-Fetch-Site: {site[:40]})")
    if method.upper() in _SAFE_METHODS:
        return None
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype:
        if ctype not in UPLOAD_TYPES:
            return Refusal(415, "unsupported_media_type", f"content type {ctype[:100]!r} is not accepted: send application/json, or an upload as {', '.join(sorted(UPLOAD_TYPES - {'application/json'}))}")
    elif headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers:
        return Refusal(415, "unsupported_media_type", "a request body needs a Content-Type: application/json, or application/octet-stream for an upload")
    if not headers.get("authorization", "").strip() and not headers.get(CLIENT_HEADER, "").strip():
        return Refusal(403, "client_header_missing", "state-changing requests need 'Authorization: Bearer <token>' or an 'X-Kiln-Client' header (the Kiln SDK and CLI send it)")
    return None


class BrowserGuard:
    """ASGI middleware applying :func:`check` before anything else sees the request."""

    def __init__(self, app: ASGIApp, *, rules: HostRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            key = k.decode("latin-1").lower()
            # A repeated Host/Origin is ambiguous: keep a value no rule allows.
            headers[key] = "\x00" if key in headers and key in ("host", "origin") else v.decode("latin-1")
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        refusal = check(method, headers, self.rules)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.code})
            return
        body = {"error": {"code": refusal.code, "message": refusal.message, "details": {}}}
        await JSONResponse(body, status_code=refusal.status)(scope, receive, send)
