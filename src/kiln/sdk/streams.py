"""SDK: ``client.streams``, and a batching producer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kiln.core.errors import InvalidArgument, KilnError
from kiln.lake.streams import DEFAULT_RETENTION_S, Consumer, FlushResult, Position, PullResult, PutResult, ReadResult, Stream, TrimResult
from kiln.lake.streams import _ops as ops
from kiln.sdk._base import Namespace

__all__ = ["PendingRecord", "Producer", "Streams"]


class Streams(Namespace):
    """Streams: a durable append log per stream, named consumers, flushes into datasets."""

    def create(self, name: str, *, dataset: str | None = None, columns: dict[str, str] | None = None, source: str | None = None, follow: bool = False, flush_rows: int = 10_000, flush_interval_s: float = 60.0, retention_s: float = DEFAULT_RETENTION_S, retention_bytes: int = 0, description: str = "") -> Stream:
        """Create a stream; see :meth:`kiln.lake.streams.StreamService.create`."""
        return self._call(ops.CREATE, name=name, dataset=dataset, columns=columns, source=source, follow=follow, flush_rows=flush_rows, flush_interval_s=flush_interval_s, retention_s=retention_s, retention_bytes=retention_bytes, description=description)  # type: ignore[no-any-return]

    def update(self, name: str, *, follow: bool | None = None, flush_rows: int | None = None, flush_interval_s: float | None = None, retention_s: float | None = None, retention_bytes: int | None = None, description: str | None = None) -> Stream:
        """Change a stream's settings; those left None stay as they are."""
        return self._call(ops.UPDATE, name=name, follow=follow, flush_rows=flush_rows, flush_interval_s=flush_interval_s, retention_s=retention_s, retention_bytes=retention_bytes, description=description)  # type: ignore[no-any-return]

    def follow(self, name: str) -> Stream:
        """Have the server's worker pull the stream's source continuously (with backoff on errors)."""
        return self._call(ops.FOLLOW, name=name)  # type: ignore[no-any-return]

    def unfollow(self, name: str) -> Stream:
        """Stop the server's continuous pull of the stream's source."""
        return self._call(ops.UNFOLLOW, name=name)  # type: ignore[no-any-return]

    def trim(self, name: str) -> TrimResult:
        """Trim now the records past retention that are flushed and committed by every consumer."""
        return self._call(ops.TRIM, name=name)  # type: ignore[no-any-return]

    def list(self) -> list[Stream]:
        """Every stream."""
        return self._call(ops.LIST)  # type: ignore[no-any-return]

    def get(self, name: str) -> Stream:
        """One stream with its counts."""
        return self._call(ops.GET, name=name)  # type: ignore[no-any-return]

    def delete(self, name: str) -> Stream:
        """Delete a stream with its records and consumers; the datasets it wrote stay."""
        return self._call(ops.DELETE, name=name)  # type: ignore[no-any-return]

    def put(self, name: str, records: list[dict[str, Any]]) -> PutResult:
        """Append one batch of JSON objects; returns once it is committed (acknowledged)."""
        return self._call(ops.PUT, name=name, records=records)  # type: ignore[no-any-return]

    def producer(self, name: str, *, max_batch: int = 500, linger_ms: float = 50.0, max_pending: int = 100_000) -> Producer:
        """A producer that batches :meth:`Producer.put` calls in a background thread."""
        return Producer(self, name, max_batch=max_batch, linger_ms=linger_ms, max_pending=max_pending)

    def read(self, name: str, *, consumer: str | None = None, limit: int = 1000, position: Position | str = Position.TRIM_HORIZON, sequence_number: int | None = None, lease_s: float = 60.0, commit: bool = False) -> ReadResult:
        """Read records. With ``consumer``, claim the next batch for that named consumer
        and commit it with :meth:`commit` — or at once with ``commit=True`` (at-most-once:
        a crash after the commit loses the batch); without, read from ``position`` and
        claim nothing.
        """
        pos = position.value if isinstance(position, Position) else position
        if consumer is None:
            if commit:
                raise InvalidArgument("commit=True goes with consumer=...: only a named consumer's read can be committed")
            return self._call(ops.READ, name=name, position=pos, sequence_number=sequence_number, limit=limit)  # type: ignore[no-any-return]
        batch: ReadResult = self._call(ops.READ_CONSUMER, name=name, consumer=consumer, limit=limit, position=pos, sequence_number=sequence_number, lease_s=lease_s)
        if commit and batch.lease:
            self.commit(batch)
        return batch

    def peek(self, name: str, consumer: str, *, limit: int = 1000, position: Position | str = Position.TRIM_HORIZON, sequence_number: int | None = None) -> ReadResult:
        """The records a named consumer would read next, claiming nothing (its checkpoint
        and leases stay as they are); a consumer that does not exist yet would start at ``position``."""
        from kiln.core.errors import NotFound

        try:
            state = self.get_consumer(name, consumer)
        except NotFound:
            return self.read(name, position=position, sequence_number=sequence_number, limit=limit)
        return self.read(name, position=Position.AFTER_SEQUENCE_NUMBER, sequence_number=state.checkpoint, limit=limit)

    def commit(self, batch: ReadResult | str, *, consumer: str | None = None, lease: str | None = None) -> Consumer:
        """Commit a consumer read: ``commit(batch)``, or ``commit(name, consumer=..., lease=...)``."""
        if isinstance(batch, ReadResult):
            if batch.consumer is None or batch.lease is None:
                raise InvalidArgument("this batch holds no lease: only a read with consumer=... that returned records can be committed")
            name, consumer, lease = batch.stream, batch.consumer, batch.lease
        else:
            name = batch
            if consumer is None or lease is None:
                raise InvalidArgument("commit(name, consumer=..., lease=...) needs the consumer and the lease a read returned")
        return self._call(ops.COMMIT, name=name, consumer=consumer, lease=lease)  # type: ignore[no-any-return]

    def create_consumer(self, name: str, consumer: str, *, position: Position | str = Position.TRIM_HORIZON, sequence_number: int | None = None) -> Consumer:
        """A named consumer that starts at ``position`` (it is also made on its first read)."""
        pos = position.value if isinstance(position, Position) else position
        return self._call(ops.CREATE_CONSUMER, name=name, consumer=consumer, position=pos, sequence_number=sequence_number)  # type: ignore[no-any-return]

    def consumers(self, name: str) -> list[Consumer]:
        """A stream's named consumers and how far each has committed."""
        return self._call(ops.CONSUMERS, name=name)  # type: ignore[no-any-return]

    def get_consumer(self, name: str, consumer: str) -> Consumer:
        """One named consumer."""
        return self._call(ops.GET_CONSUMER, name=name, consumer=consumer)  # type: ignore[no-any-return]

    def delete_consumer(self, name: str, consumer: str) -> Consumer:
        """Forget a named consumer and its leases."""
        return self._call(ops.DELETE_CONSUMER, name=name, consumer=consumer)  # type: ignore[no-any-return]

    def flush(self, name: str) -> FlushResult:
        """Write pending records into the stream's dataset now (misfits into ``<dataset>-dlq``)."""
        return self._call(ops.FLUSH, name=name)  # type: ignore[no-any-return]

    def pull(self, name: str, *, max_messages: int = 1000, timeout_s: float = 1.0) -> PullResult:
        """Pull once from the stream's NATS source."""
        return self._call(ops.PULL, name=name, max_messages=max_messages, timeout_s=timeout_s)  # type: ignore[no-any-return]


class _Batch:
    __slots__ = ("done", "error", "first", "records")

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.first: int | None = None
        self.error: BaseException | None = None


class PendingRecord:
    """A record handed to :meth:`Producer.put`; :meth:`result` waits for its acknowledgement."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.done.is_set()

    def result(self, timeout: float | None = None) -> int:
        """The record's sequence number, once it is committed; raises what the write raised."""
        if not self._batch.done.wait(timeout):
            raise TimeoutError("the record is not acknowledged yet")
        if self._batch.error is not None:
            raise self._batch.error
        assert self._batch.first is not None
        return self._batch.first + self._index


class Producer:
    """Batches records: a batch goes when it has ``max_batch`` records or its first
    record is ``linger_ms`` old. A record is acknowledged only once its batch is
    committed; :meth:`PendingRecord.result` gives its sequence number. Batches are
    sent in the order they filled, so sequence numbers follow ``put`` order.

    In-process, the thread whose ``put`` fills a batch writes it (two CPU-bound
    threads would only fight over the GIL); against a server a background thread
    sends, so ``put`` returns at once. Either way a background thread sends
    batches whose linger time is up. Use it as a context manager, or call
    :meth:`close`, so the last batch is sent.

    Args:
        max_batch: records per request (at most 10,000).
        linger_ms: how long the first record of a batch may wait for company.
        max_pending: ``put`` blocks while this many records wait to be sent.
        on_ack: called with each committed :class:`PutResult` (from the sending thread).
    """

    def __init__(self, streams: Streams, name: str, *, max_batch: int = 500, linger_ms: float = 50.0, max_pending: int = 100_000, on_ack: Callable[[PutResult], None] | None = None) -> None:
        from kiln.lake.streams import MAX_BATCH_RECORDS

        if not 1 <= max_batch <= MAX_BATCH_RECORDS:
            raise InvalidArgument(f"max_batch must be between 1 and {MAX_BATCH_RECORDS}")
        if not 0 <= linger_ms <= 60_000:
            raise InvalidArgument("linger_ms must be between 0 and 60000")
        self._streams = streams
        self.name = name
        self.max_batch = max_batch
        self.linger_s = linger_ms / 1000.0
        self.max_pending = max(max_pending, max_batch)
        self.on_ack = on_ack
        self.callback_errors: list[Exception] = []
        self._caller_sends = streams._local
        # put() takes the condition's lock directly: a plain Lock's `with` runs in C, the
        # Condition's in Python, and put runs once per record.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._current = _Batch()
        self._current_since = 0.0
        self._ready: list[_Batch] = []
        self._queued = 0
        self._closed = False
        self._idle = False
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=f"kiln-producer-{name}", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> PendingRecord:
        """Queue one JSON object (a full batch is sent before this returns, in-process)."""
        if type(record) is not dict and not isinstance(record, dict):
            raise InvalidArgument(f"a record is a JSON object (dict), not {type(record).__name__}")
        cond = self._cond
        with self._lock:
            if self._closed:
                raise InvalidArgument("the producer is closed")
            while self._queued >= self.max_pending:
                cond.wait()
            batch = self._current
            records = batch.records
            records.append(record)
            self._queued += 1
            n = len(records)
            handle = PendingRecord(batch, n - 1)
            full = n >= self.max_batch
            if full:
                self._seal()
                if not self._caller_sends:
                    cond.notify_all()  # waking a thread that has nothing to do costs a GIL switch
            elif n == 1:
                self._current_since = time.monotonic()
                if self._idle:  # the linger thread sleeps without a deadline: give it one
                    cond.notify_all()
        if full and self._caller_sends:
            self._drain()
        return handle

    def _seal(self) -> None:
        self._ready.append(self._current)
        self._current = _Batch()

    def _drain(self) -> None:
        """Send ready batches in order; one sender at a time."""
        with self._send_lock:
            while True:
                with self._cond:
                    if not self._ready:
                        return
                    batch = self._ready.pop(0)
                self._send(batch)
                with self._cond:
                    self._queued -= len(batch.records)
                    self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._ready and not self._caller_sends:
                        break
                    if self._current.records:
                        wait = self._current_since + self.linger_s - time.monotonic()
                        if wait <= 0 or self._closed:
                            self._seal()
                            break
                        self._cond.wait(wait)
                    elif self._closed:
                        return
                    else:
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
            self._drain()

    def _send(self, batch: _Batch) -> None:
        try:
            result = self._streams.put(self.name, batch.records)
            batch.first = result.first_sequence_number
        except Exception as exc:  # noqa: BLE001 - surfaced through result() and errors
            batch.error = exc
            self.errors.append(exc)
            batch.done.set()
            return
        batch.done.set()
        if self.on_ack is not None:
            # The batch is committed whatever the callback does: a failing callback must
            # not report it as failed (a retry would write it twice).
            try:
                self.on_ack(result)
            except Exception as exc:  # noqa: BLE001 - the caller's own code
                self.callback_errors.append(exc)

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued now and wait until every record put so far is acknowledged or failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._current.records:
                self._seal()
                self._cond.notify_all()
        self._drain()
        with self._cond:
            while self._queued:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{self._queued} records are still not acknowledged")
                self._cond.wait(left)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the background thread.

        Raises:
            KilnError: some records were not acknowledged (see :attr:`errors`, and each
                record's :meth:`PendingRecord.result`); they may be put again.
        """
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout)
        if self.errors:
            first = self.errors[0]
            message = first.message if isinstance(first, KilnError) else f"{type(first).__name__}: {first}"
            raise type(first)(f"{len(self.errors)} batches were not acknowledged; the first failed with: {message}") if isinstance(first, KilnError) else KilnError(f"{len(self.errors)} batches were not acknowledged: {message}")

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.close()
            except KilnError:
                pass  # the exception already in flight is the one to see
