"""Lake resources as the faces see them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Column", "Dataset", "DatasetFile", "DatasetVersion", "IngestOptions", "SqlHistoryEntry"]


class Column(BaseModel):
    name: str
    type: str
    nullable: bool = True


class DatasetFile(BaseModel):
    key: str
    rows: int
    bytes: int
    sha256: str


class DatasetVersion(BaseModel):
    """One immutable version: Parquet files plus what describes them."""

    name: str
    version: int
    created_at: float
    created_by: str
    row_count: int
    byte_size: int
    columns: list[Column]
    files: list[DatasetFile]
    source: dict[str, Any]
    lineage: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Dataset(BaseModel):
    name: str
    description: str
    created_at: float
    created_by: str
    latest_version: int
    versions: int
    row_count: int
    byte_size: int


class IngestOptions(BaseModel):
    """How to read a source. Every field is optional; formats ignore what they don't use."""

    format: Literal["csv", "json", "jsonl", "parquet", "excel", "sql", "arrow"] | None = None
    delimiter: str | None = Field(None, max_length=4)
    header: bool = True
    quote: str | None = Field(None, max_length=1)
    escape: str | None = Field(None, max_length=1)
    encoding: str = "utf-8"
    null_values: list[str] | None = None
    skip_rows: int = Field(0, ge=0)
    sheet: str | int | None = None
    query: str | None = None
    types: dict[str, str] = Field(default_factory=dict)
    description: str | None = None


class SqlHistoryEntry(BaseModel):
    id: int
    time: float
    actor: str
    query: str
    status: str
    rows: int
    elapsed_ms: float
    error: str
