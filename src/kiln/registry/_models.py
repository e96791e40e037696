"""Pydantic models of the registry: models, versions, files, and the package manifest."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kiln.tracking._base import KilnModel

__all__ = [
    "APPROVAL_STATUSES",
    "ApprovalStatus",
    "ColumnSpec",
    "Lineage",
    "Manifest",
    "Model",
    "ModelFile",
    "ModelVersion",
    "Signature",
]

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES: tuple[str, ...] = ("PendingManualApproval", "Approved", "Rejected")
MANIFEST_NAME = "kiln-model.json"


class ColumnSpec(KilnModel):
    """One input or output column: a name (None for positional arrays) and a dtype."""

    name: str | None = None
    type: str


class Signature(KilnModel):
    """What a model takes and returns, taken from sample data at registration."""

    inputs: list[ColumnSpec] = Field(default_factory=list)
    outputs: list[ColumnSpec] = Field(default_factory=list)


class Lineage(KilnModel):
    """Where a model came from: the job and run that made it and the data it saw."""

    job: str | None = None
    run_id: str | None = None
    datasets: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


class FileDigest(KilnModel):
    sha256: str
    size: int


class Manifest(KilnModel):
    """``kiln-model.json``: flavor, signature, versions, file hashes and lineage."""

    format_version: int = 1
    flavor: str
    flavor_options: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] | None = None
    classes: list[Any] | None = None
    signature: Signature | None = None
    framework_versions: dict[str, str] = Field(default_factory=dict)
    files: dict[str, FileDigest]
    lineage: Lineage = Field(default_factory=Lineage)
    origin: Literal["kiln", "folder", "mlflow"] = "kiln"
    created_at: float | None = None


class ModelFile(KilnModel):
    path: str
    size: int
    sha256: str


class ModelVersion(KilnModel):
    """One immutable version of a registered model."""

    name: str
    version: int
    flavor: str
    status: ApprovalStatus
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    task: str | None = None
    classes: list[Any] | None = None
    signature: Signature | None = None
    framework_versions: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    origin: str = "kiln"
    files: list[ModelFile] = Field(default_factory=list)
    size: int
    created_at: float
    created_by: str
    status_updated_at: float | None = None
    status_updated_by: str | None = None
    status_comment: str | None = None
    # Whether loading runs code from the package (a pickle, code/inference.py), and which
    # admin trusted that code to run on the server (provenance, never a request flag).
    runs_code: bool = False
    trusted_by: str | None = None
    trusted_at: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Model(KilnModel):
    """A registered model: a name over numbered versions, with aliases."""

    name: str
    description: str = ""
    created_at: float
    created_by: str
    updated_at: float
    latest_version: int | None = None
    version_count: int = 0
    aliases: dict[str, int] = Field(default_factory=dict)
