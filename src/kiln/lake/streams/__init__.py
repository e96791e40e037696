"""Streams (Kinesis): a durable append log per stream, consumers, flushes into datasets.

Only the metadata database is needed; NATS (``kiln[nats]``) is imported when a
stream with a NATS source is pulled.
"""

from kiln.lake.streams._models import Consumer, FlushResult, Position, PullResult, PutResult, ReadResult, Stream, StreamRecord, TrimResult
from kiln.lake.streams._schema import TYPES as COLUMN_TYPES
from kiln.lake.streams._service import DEFAULT_RETENTION_S, MAX_BATCH_RECORDS, MAX_RECORD_BYTES, StreamService

__all__ = [
    "COLUMN_TYPES",
    "DEFAULT_RETENTION_S",
    "MAX_BATCH_RECORDS",
    "MAX_RECORD_BYTES",
    "Consumer",
    "FlushResult",
    "Position",
    "PullResult",
    "PutResult",
    "ReadResult",
    "Stream",
    "StreamRecord",
    "StreamService",
    "TrimResult",
]
