"""Opt-in adaptive micro-batching (``BatchingSpec``): concurrent requests share one predict.

In a serving worker, a request to a variant served by the default handlers (no
``input_fn``/``predict_fn``/``output_fn``/``transform_fn`` of the package's own) whose
body decodes to plain numeric rows waits in its variant's :class:`Batcher`. Once
``max_batch`` rows wait, or ``max_delay_ms`` passed since the first of them, their rows
are stacked into one :meth:`~kiln.serving._runtime.Servable.predict_array` call and the
predictions are split back, each request's encoded as it would have been alone. A
request that cannot be batched (MLflow's JSON, a package with handlers, a large body,
rows of another width) goes the normal way; so does each request of a batch whose
predict failed, so one bad request never fails the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from kiln.serving import _codecs

__all__ = ["FALLBACK", "Batcher", "batchable", "rows_of"]

# What a waiting request gets when it should be answered the normal way instead.
FALLBACK = object()


def batchable(servable: Any) -> bool:
    """Whether a servable answers through the default handlers (and so may be batched)."""
    return getattr(servable, "_handlers", True) is False and getattr(servable, "columns", None) is not None


def rows_of(servable: Any, body: bytes, content_type: str | None) -> Any:
    """The request's rows as a 2-D float array, or None when it is not plain rows
    (MLflow's JSON answers another shape; a DataFrame keeps its column names)."""
    decoded = _codecs.decode(body, content_type, servable.columns)
    if decoded.mlflow:
        return None
    rows = _codecs.conform(decoded.rows, servable.columns)
    if type(rows) is not np.ndarray or rows.ndim != 2 or rows.dtype.kind not in "fiub" or not len(rows):
        return None
    return rows


class Batcher:
    """One variant's queue of waiting rows, flushed into one predict.

    Args:
        predict: runs ``predict_array`` on stacked rows (inline or on a thread, under
            the request timeout); returns ``(predictions, model_ns)``.
        max_batch: flush once this many rows wait.
        max_delay_ms: flush this long after the first waiting request at the latest.
        counters: the variant's counters (``batches``, ``batched``).
    """

    def __init__(self, predict: Callable[[Any], Awaitable[tuple[Any, int]]], *, max_batch: int, max_delay_ms: float, counters: Any) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.delay_s = max_delay_ms / 1000.0
        self.counters = counters
        self._rows: list[Any] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, rows: Any) -> tuple[Any, int]:
        """Wait for this request's predictions (``FALLBACK``: answer it the normal way)."""
        loop = asyncio.get_running_loop()
        if self._rows and self._rows[0].shape[1] != rows.shape[1]:
            self._flush()  # another width cannot share a predict: the waiting ones go first
        future: asyncio.Future[Any] = loop.create_future()
        self._rows.append(rows)
        self._futures.append(future)
        self._count += len(rows)
        if self._count >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.delay_s, self._flush)
        result: tuple[Any, int] = await future
        return result

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, futures = self._rows, self._futures
        self._rows, self._futures, self._count = [], [], 0
        if futures:
            asyncio.get_running_loop().create_task(self._run(rows, futures))

    async def _run(self, rows: list[Any], futures: list[asyncio.Future[Any]]) -> None:
        try:
            stacked = rows[0] if len(rows) == 1 else np.concatenate(rows)
            predictions, model_ns = await self.predict(stacked)
            predictions = np.asarray(predictions)
            if predictions.ndim == 0 or len(predictions) != len(stacked):
                raise ValueError("the predictions do not match the rows one to one")
        except Exception as exc:  # noqa: BLE001 - alone, the request gets its error; in a batch, each is retried alone
            for future in futures:
                if not future.done():
                    if len(futures) == 1:
                        future.set_exception(exc)
                    else:
                        future.set_result(FALLBACK)
            return
        if len(futures) > 1:
            self.counters.batches += 1
            self.counters.batched += len(futures)
        start = 0
        for part, future in zip(rows, futures, strict=True):
            end = start + len(part)
            if not future.done():
                future.set_result((predictions[start:end], model_ns))
            start = end
