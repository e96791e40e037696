"""Garbage collection: remove stored files that no committed resource references.

Files are written before the metadata transaction that makes them visible, so a
crash can leave files behind but never a broken resource. Each stage registers
the key prefix it owns and a function returning the keys its committed rows use.
"""

from __future__ import annotations

from pydantic import BaseModel

from kiln.core.context import Context
from kiln.core.gc_roots import register_gc_root, roots
from kiln.core.workspace import Workspace

__all__ = ["GcReport", "collect_garbage", "register_gc_root"]


class GcReport(BaseModel):
    removed: list[str]
    bytes_freed: int
    kept_recent: int
    dry_run: bool


def _stage_modules() -> None:
    # Importing the stages registers their roots; core itself names none of them.
    import importlib

    for name in ("kiln.lake", "kiln.tracking", "kiln.registry", "kiln.prep", "kiln.jobs", "kiln.features", "kiln.monitoring"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def collect_garbage(ws: Workspace, ctx: Context, *, grace_s: float, dry_run: bool, now: float) -> GcReport:
    """Delete unreferenced objects older than ``grace_s`` seconds (in-flight writes are younger)."""
    ctx.require("admin")
    _stage_modules()
    removed: list[str] = []
    freed = 0
    recent = 0
    with ws.db.read() as conn:
        live = [(root, root.referenced(conn)) for root in roots()]
    for root, keys in live:
        prefixes = tuple(k for k in keys if k.endswith("/"))
        for key, size, mtime in ws.store.list(root.prefix.rstrip("/")):
            if key in keys or (prefixes and key.startswith(prefixes)):
                continue
            if now - mtime < grace_s:
                recent += 1
                continue
            removed.append(key)
            freed += size
    if removed and not dry_run:
        with ws.mutation(ctx, action="gc.run", resource="objects", role="admin", details={"removed": len(removed), "bytes": freed}):
            pass
        for key in removed:
            ws.store.delete(key)
    return GcReport(removed=removed, bytes_freed=freed, kept_recent=recent, dry_run=dry_run)
