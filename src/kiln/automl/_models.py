"""Pydantic models of AutoML: what the service returns and every face shows."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kiln.jobs._models import Job
from kiln.tracking._base import KilnModel

__all__ = ["AutoMLJob", "AutoMLReport", "CandidateScript"]


class AutoMLJob(KilnModel):
    """An AutoML job: the job itself, and, once it has run, its leaderboard and best model."""

    job: Job
    problem_type: str | None = None
    metric: str | None = None
    best: dict[str, Any] | None = None
    model: str | None = None
    leaderboard: list[dict[str, Any]] = Field(default_factory=list)


class AutoMLReport(KilnModel):
    """The report of a finished AutoML job: the JSON report, and the HTML page when asked."""

    job: str
    report: dict[str, Any]
    html: str | None = None


class CandidateScript(KilnModel):
    """One candidate's definition as a runnable Python script."""

    job: str
    candidate: str
    script: str
