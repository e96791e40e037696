"""Feature store resources as the faces see them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BatchGetResult",
    "CompactResult",
    "FeatureDefinition",
    "FeatureGroup",
    "FeatureRecord",
    "IngestResult",
    "RecordIdentifier",
    "StreamIngestResult",
    "WriteResult",
]


class FeatureDefinition(BaseModel):
    """One feature: its name and type (integral, fractional, string, boolean, timestamp, vector).

    A derived feature has an ``expression``: SQL over the group's stored features
    (``rate * trips``, ``CASE WHEN temp < 32 THEN 1 ELSE 0 END``), or a ``function``: a
    registered Kiln function (``kiln functions create``; ``name`` or ``name@3``) called with
    ``{"records": [{feature: value, ...}, ...]}`` (timestamps as Unix seconds) that returns one
    value per record. Either is computed when read, the same way offline (training sets) and
    online (GetRecord); it is never stored. A function runs in Kiln's function workers, never
    in the process that reads.
    """

    name: str
    type: str
    description: str = ""
    expression: str | None = None
    function: str | None = None


class FeatureGroup(BaseModel):
    """A feature group at one version: its record identifier, event time and features."""

    name: str
    version: int
    latest_version: int
    record_id: str
    event_time: str
    features: list[FeatureDefinition]
    description: str
    tags: dict[str, str]
    ttl_s: float | None
    online: bool
    created_at: float
    created_by: str
    updated_at: float
    offline_files: int
    offline_rows: int
    source: dict[str, Any] = Field(default_factory=dict)


class WriteResult(BaseModel):
    """What PutRecord or DeleteRecord did: records appended offline, records that changed
    the online store (an older event time goes offline only)."""

    records: int
    offline: int
    online: int


class IngestResult(BaseModel):
    group: str
    version: int
    rows: int
    files: int
    online: int
    source: str


class StreamIngestResult(BaseModel):
    """What one pass over a stream did: records read, written, skipped as bad (the first
    errors), and already written before (a batch read again after a crash)."""

    group: str
    stream: str
    consumer: str
    records: int = 0
    written: int = 0
    online: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[str] = Field(default_factory=list)
    last_sequence_number: int | None = None


class CompactResult(BaseModel):
    group: str
    partitions: int
    files_before: int
    files_after: int
    rows: int


class RebuildResult(BaseModel):
    """What rebuilding a group's online store from its offline one changed."""

    group: str
    ids: int  # ids whose latest offline record was read
    online: int  # online rows that changed (written, or replaced by a later record)
    deleted: int  # ids whose latest offline record is a delete
    purged: int  # expired online rows removed (stores without native expiry)


class FeatureRecord(BaseModel):
    """The latest record of one id in the online store (GetRecord)."""

    feature_group: str
    record_id: str
    event_time: float
    expires_at: float | None = None
    features: dict[str, Any]


class RecordIdentifier(BaseModel):
    """Which records of one group BatchGetRecord reads, and which of their features."""

    feature_group: str
    record_ids: list[str | int] = Field(min_length=1)
    features: list[str] | None = None


class BatchGetResult(BaseModel):
    records: list[FeatureRecord]
    missing: list[RecordIdentifier]
