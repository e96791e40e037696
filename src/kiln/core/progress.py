"""Progress of long service calls, as a fraction from 0 to 1, for whoever listens.

A face that can show progress (the CLI's bar on a terminal) listens around a call with
:func:`reporting`. A service that knows its total (rows, batches, files, bytes) makes a
:class:`Progress` and advances it; the listener then sees increasing fractions, the last
one 1.0 when the work is done. Where nobody listens, or the total is unknown, nothing is
reported and the face keeps its spinner. Services run in the caller's context, so an
in-process call reports; a call that runs on a server does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["Listener", "Progress", "reporting"]

Listener = Callable[[float], None]

_listener: ContextVar[Listener | None] = ContextVar("kiln_progress", default=None)

# Fractions closer than this to the last one reported are not reported (1.0 always is).
STEP = 0.005
_NOBODY = object()  # a Progress that reports to nobody, whatever the context says


@contextmanager
def reporting(listener: Listener | None) -> Iterator[None]:
    """Send the progress of the service calls made in this block to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


class Progress:
    """Work done toward a known ``total``, reported as increasing fractions.

    Made in the calling thread (it picks up the listener of :func:`reporting` there, or
    takes ``listener``); :meth:`advance` and :meth:`update` may then be called from any
    thread. :meth:`part` gives a child for one stage, whose own 0..1 fills a span of
    this one. Call :meth:`finish` when the work is done: it reports 1.0 (once).

    Args:
        total: units of work (rows, batches, files, bytes); 0 or less: report only the end.
        listener: where fractions go; default the one set by :func:`reporting`.
    """

    __slots__ = ("_done", "_last", "_listener", "_lock", "total")

    def __init__(self, total: float = 1.0, *, listener: Listener | None = None) -> None:
        self.total = float(total)
        self._listener: Listener | None = _listener.get() if listener is None else None if listener is _NOBODY else listener
        self._done = 0.0
        self._last = 0.0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether anybody listens (a service may skip work done only to measure progress)."""
        return self._listener is not None

    def advance(self, amount: float = 1.0) -> None:
        """``amount`` more units are done."""
        if self._listener is None:
            return
        with self._lock:
            self._done += amount
            done = self._done
        if self.total > 0:
            self.update(done / self.total)

    def update(self, fraction: float) -> None:
        """The work is ``fraction`` done (clamped below 1: only :meth:`finish` reports 1.0;
        a fraction not above the last reported is dropped)."""
        if self._listener is None:
            return
        fraction = min(max(float(fraction), 0.0), 1.0 - STEP / 10)
        with self._lock:  # the listener too, so threads cannot deliver out of order
            if fraction < self._last + STEP:
                return
            self._last = fraction
            self._listener(fraction)

    def finish(self) -> None:
        """The work is done: report 1.0, once."""
        if self._listener is None:
            return
        with self._lock:
            if self._last >= 1.0:
                return
            self._last = 1.0
            self._listener(1.0)

    @property
    def listener(self) -> Listener | None:
        """This progress as a listener, for a service called inside the work: ``with
        reporting(stage.listener): other_service()`` makes the other service's fractions
        fill this one, rather than reach the outer listener out of order. None when
        nobody listens (so the inner service reports to nobody either)."""
        if self._listener is None:
            return None
        return lambda fraction: self.finish() if fraction >= 1.0 else self.update(fraction)

    def part(self, start: float, end: float, total: float = 1.0) -> Progress:
        """A child for one stage of ``total`` units, filling this one's span [start, end]
        (its :meth:`finish` reports ``end`` here)."""
        if self._listener is None:
            return Progress(total, listener=_NOBODY)  # type: ignore[arg-type]
        width = end - start

        def relay(fraction: float) -> None:
            if fraction >= 1.0 and end >= 1.0:
                self.finish()
            else:
                self.update(start + fraction * width)

        return Progress(total, listener=relay)
