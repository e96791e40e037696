"""Pydantic models of jobs: what the service returns and every face shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kiln.tracking._base import KilnModel

__all__ = ["DRIVER_KINDS", "JOB_KINDS", "JOB_STATES", "RESUMABLE_KINDS", "TERMINAL_STATES", "CodeArchive", "Function", "Job", "JobLogs", "JobState"]

JobState = Literal["Pending", "Running", "Completed", "Failed", "Stopped"]
JOB_STATES: tuple[str, ...] = ("Pending", "Running", "Completed", "Failed", "Stopped")
TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})
# Every kind of job shares one record and state machine (DESIGN.md §4); later stages add
# theirs (tuning, automl, transform, monitoring) here and a program in _runner.PROGRAMS.
JOB_KINDS: tuple[str, ...] = ("training", "processing", "function-map", "transform", "tuning", "automl")
# Kinds whose program keeps its progress in the metadata database and picks it up again: a
# runner of theirs found dead is relaunched (Running → Pending), not failed.
RESUMABLE_KINDS = frozenset({"tuning"})
# Kinds whose runner only drives other jobs (it runs no users' code): it takes no job slot,
# or a tuning job with two parallel trials would hold one of a 2-core machine's two slots.
DRIVER_KINDS = frozenset({"tuning"})


class Job(KilnModel):
    """One job: what was asked (``spec``), where it stands, and what it produced."""

    name: str
    kind: str
    state: JobState
    failure_reason: str | None = None
    executor: str
    spec: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    created_by: str
    role: str
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    max_attempts: int = 1
    time_limit_s: float | None = None
    stop_requested: bool = False
    run_id: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    host: str | None = None
    heartbeat_at: float | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or self.heartbeat_at or self.started_at) - self.started_at


class JobLogs(KilnModel):
    """A slice of a job's log: lines after ``after`` (a sequence number), and where to go on."""

    job: str
    lines: list[str] = Field(default_factory=list)
    next: int = 0
    state: JobState
    done: bool = False


class CodeArchive(KilnModel):
    """A user's source, packed and stored once by its sha256 (jobs name it by that)."""

    sha256: str
    size: int


class Function(KilnModel):
    """One version of a function (AWS Lambda's): the code it runs, its handler and limits.

    A version never changes what it runs; an update that does makes the next version.
    """

    name: str
    version: int
    latest_version: int
    handler: str
    code_sha256: str
    timeout_s: float
    memory_mb: int
    environment: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"
