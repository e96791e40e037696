"""Stream resources as the faces see them."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "Consumer",
    "FlushResult",
    "Position",
    "PullResult",
    "PutResult",
    "ReadResult",
    "Stream",
    "StreamRecord",
    "TrimResult",
]


class Position(str, Enum):
    """Where a read starts (Kinesis' shard iterator types)."""

    TRIM_HORIZON = "TRIM_HORIZON"
    LATEST = "LATEST"
    AT_SEQUENCE_NUMBER = "AT_SEQUENCE_NUMBER"
    AFTER_SEQUENCE_NUMBER = "AFTER_SEQUENCE_NUMBER"


class Stream(BaseModel):
    name: str
    description: str
    dataset: str = Field(description="dataset the stream flushes into")
    dead_letter_dataset: str = Field(description="dataset that receives records that do not fit the schema, with the reason")
    columns: dict[str, str] | None = Field(None, description="declared schema (column: type); None takes the dataset's")
    source: str | None = Field(None, description="upstream source pulled into the stream (nats://host:port/subject)")
    flush_rows: int
    flush_interval_s: float
    created_at: float
    created_by: str
    last_sequence_number: int = Field(description="highest sequence number acknowledged (0 when empty)")
    flushed_sequence_number: int = Field(description="every record up to here is in a dataset version")
    pending: int = Field(description="records not yet flushed")
    last_flush_at: float | None = None
    follow: bool = Field(False, description="the server's worker pulls the source continuously")
    last_pull_at: float | None = Field(None, description="when the source was last pulled (by the worker or by hand)")
    last_pull_error: str | None = Field(None, description="why the last pull failed (None: it worked)")
    pull_failures: int = Field(0, description="pulls failed in a row; the worker backs off meanwhile")
    retention_s: float = Field(7 * 86_400.0, description="records older than this are trimmed once flushed and committed by every consumer")
    retention_bytes: int = Field(0, description="the oldest records are trimmed (once flushed and committed) while the log is bigger than this; 0: no size bound")
    trimmed_sequence_number: int = Field(0, description="every record up to here is trimmed; TRIM_HORIZON reads start after it")
    records: int = Field(0, description="records kept in the log")
    bytes: int = Field(0, description="size of the records kept in the log (their JSON text)")
    last_trim_at: float | None = None


class StreamRecord(BaseModel):
    sequence_number: int
    time: float = Field(description="when the record was acknowledged (epoch seconds)")
    data: dict[str, Any]


class PutResult(BaseModel):
    """Sequence numbers of one acknowledged (committed) batch; they are contiguous."""

    stream: str
    count: int
    first_sequence_number: int
    last_sequence_number: int

    @property
    def sequence_numbers(self) -> list[int]:
        return list(range(self.first_sequence_number, self.last_sequence_number + 1))


class ReadResult(BaseModel):
    """Records handed to a reader. For a consumer read, ``lease`` is what to commit."""

    stream: str
    consumer: str | None = None
    records: list[StreamRecord]
    lease: str | None = Field(None, description="commit this once the records are processed")
    lease_expires_at: float | None = None
    next_sequence_number: int = Field(description="AT_SEQUENCE_NUMBER position that continues after this batch")
    behind: int = Field(description="records after this batch that are not read yet")


class Consumer(BaseModel):
    stream: str
    name: str
    checkpoint: int = Field(description="every record up to here is committed")
    claimed: int = Field(description="highest sequence number handed out")
    in_flight: int = Field(description="leases handed out and not committed")
    lag: int = Field(description="records after the checkpoint")
    created_at: float
    updated_at: float


class FlushResult(BaseModel):
    stream: str
    dataset: str
    version: int | None = Field(None, description="dataset version written (None: nothing fitted)")
    rows: int
    dead_letter_dataset: str
    dead_letter_version: int | None = None
    dead_letter_rows: int
    first_sequence_number: int | None = None
    last_sequence_number: int | None = None
    flushed_sequence_number: int
    pending: int


class PullResult(BaseModel):
    stream: str
    source: str
    fetched: int = Field(description="messages taken from the source")
    added: int = Field(description="records appended to the stream")
    duplicates: int = Field(description="redelivered messages already in the stream (skipped)")
    invalid: int = Field(description="messages that were not JSON objects (kept, flushed to the dead-letter dataset)")
    first_sequence_number: int | None = None
    last_sequence_number: int | None = None


class TrimResult(BaseModel):
    """What a trim removed, and what holds back records that are past retention."""

    stream: str
    trimmed: int = Field(description="records removed by this trim")
    trimmed_bytes: int
    trimmed_sequence_number: int = Field(description="every record up to here is trimmed")
    records: int = Field(description="records kept")
    bytes: int = Field(description="size of the records kept")
    held_by: list[str] = Field(default_factory=list, description="what keeps records past retention: 'flush' (not in the dataset yet) or 'consumer NAME' (not committed)")
