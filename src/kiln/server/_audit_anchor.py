"""Keeps the audit trail's anchor fresh while the server runs, and writes it when the server stops.

Commits already anchor when the last anchor is over a minute old; this also anchors
the last events of a burst that is followed by silence, instead of at shutdown only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from kiln.core.audit import ANCHOR_EVERY_S

__all__ = ["lifespan"]


async def _every_minute(trail: Any) -> None:
    while True:
        await asyncio.sleep(ANCHOR_EVERY_S)
        await asyncio.to_thread(trail.flush)


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Flush the anchor every minute (when events were written) and once at the end."""
    trail = app.state.workspace.audit
    task = asyncio.create_task(_every_minute(trail))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(trail.flush)
