"""`kiln doctor`: what is in use, and does each part answer."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from kiln.core.config import _mask_password, load_settings

__all__ = ["run_checks"]


def _check(part: str, backend: str, fn: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        detail = fn() or ""
        ok = True
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        detail, ok = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", False
    return {"part": part, "backend": backend, "ok": ok, "detail": f"{detail} ({(time.perf_counter() - start) * 1000:.0f} ms)".strip()}


def run_checks() -> dict[str, Any]:
    settings = load_settings()
    checks = []
    state: dict[str, Any] = {}

    def database() -> str:
        from kiln.core.workspace import Workspace

        state["ws"] = Workspace(settings)
        return "schema at " + ", ".join(sorted(state["ws"].db.current()))

    def storage() -> str:
        ws = state.get("ws")
        if ws is None:
            from kiln.core.storage import open_store

            store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url)
        else:
            store = ws.store
        store.ping()
        return store.url

    def sql() -> str:
        import duckdb

        duckdb.connect().execute("select 1").fetchall()
        return f"duckdb {duckdb.__version__}"

    def executor() -> str:
        if settings.executor == "local":
            return "local processes"
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError("KILN_EXECUTOR names ray but ray is not installed: pip install 'kiln[ray]'")
        return settings.executor

    def server() -> str:
        import httpx

        r = httpx.get(settings.url.rstrip("/") + "/v1/health", timeout=5)
        r.raise_for_status()
        return settings.url

    def auth() -> str:
        from kiln.core.auth import local_token_path, read_local_token

        if not settings.auth:
            return "off (--no-auth): every Kiln client on this machine is admin"
        if settings.token:
            return "on; clients send KILN_TOKEN"
        path = local_token_path(settings.home)
        if read_local_token(settings.home):  # raises when others can read it
            return f"on; clients on this machine use {path} (owner-only)"
        return f"on; no local token yet: `kiln server` writes {path}"

    def online() -> str:
        # The feature store's online store (a stage's part, looked up lazily: core imports no stage).
        from kiln.features._base import open_online_store

        url = getattr(settings, "online_store_url", "") or f"sqlite:///{settings.home / 'online.db'}"
        store = open_online_store(url)
        try:
            store.read("kiln-doctor", ["probe"], now=time.time())  # a real round trip; writes nothing
        finally:
            store.close()
        return _mask_password(url)  # never a password

    db_backend = settings.database_url.split(":", 1)[0]
    checks.append(_check("metadata", db_backend, database))
    checks.append(_check("objects", "s3" if settings.storage_url.startswith("s3://") else "folder", storage))
    checks.append(_check("sql", "duckdb", sql))
    checks.append(_check("executor", settings.executor, executor))
    online_url = getattr(settings, "online_store_url", "") or "sqlite://"
    checks.append(_check("online features", online_url.split(":", 1)[0].split("+", 1)[0], online))
    if settings.url:
        checks.append(_check("server", "http", server))
    checks.append(_check("auth", "tokens" if settings.auth else "none", auth))
    if "ws" in state:
        state["ws"].close()
    return {"settings": settings.public(), "checks": checks}
