"""Pydantic models of tuning jobs: what the service returns and every face shows."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kiln.jobs._models import JobState
from kiln.tracking._base import KilnModel

__all__ = ["ObjectivePoint", "Trial", "TuningJob"]


class Trial(KilnModel):
    """One trial: a training job run with the hyperparameters the strategy chose."""

    number: int
    training_job: str
    state: JobState
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    objective: float | None = None
    steps: int = 0
    early_stopped: bool = False
    failure_reason: str | None = None
    created_at: float
    ended_at: float | None = None


class ObjectivePoint(KilnModel):
    """The best objective so far when a trial ended (``describe``'s objective over time)."""

    ended_at: float
    trial: int
    objective: float
    best: float


class TuningJob(KilnModel):
    """A tuning job (SageMaker's HyperParameterTuningJob): its request, where it stands,
    its best training job and (from ``describe``) every trial."""

    name: str
    state: JobState
    failure_reason: str | None = None
    strategy: str
    objective_metric_name: str
    objective_type: str
    hyperparameter_ranges: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    static_hyperparameters: dict[str, Any] = Field(default_factory=dict)
    max_jobs: int
    max_parallel_jobs: int
    early_stopping_type: str = "Off"
    warm_start_parents: list[str] = Field(default_factory=list)
    warm_start_type: str | None = None
    random_seed: int = 0
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    run_id: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    best_training_job: Trial | None = None
    trials: list[Trial] = Field(default_factory=list)
    objective_over_time: list[ObjectivePoint] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in ("Completed", "Failed", "Stopped")
