"""Work a server repeats in the background (watchers that reconcile records with processes):
one daemon thread per watcher, started and stopped by the app's lifespan, where a failing
round is logged and the next one runs anyway (a database hiccup must not end a watcher)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

__all__ = ["every", "watcher_lifespan"]

Task = tuple[str, Callable[[Any], Any]]


def every(ws: Any, stop: threading.Event, interval_s: float, tasks: Sequence[Task], log: logging.Logger) -> None:
    """Run each ``(label, task)`` on ``ws`` now and every ``interval_s`` until ``stop`` is set."""
    while True:
        for label, task in tasks:
            try:
                task(ws)
            except Exception:  # noqa: BLE001 - a failing round must not end the watcher
                log.warning("%s failed", label, exc_info=True)
        if stop.wait(interval_s):
            return


def watcher_lifespan(name: str, loop: Callable[[Any, threading.Event], None]) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """An app lifespan running ``loop(app.state.workspace, stop)`` on a thread named ``name``."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=loop, args=(app.state.workspace, stop), name=name, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    return lifespan
