"""``kiln.sagemaker.AutoML``: the SageMaker Python SDK's ``sagemaker.automl.automl.AutoML``
over Kiln's AutoML jobs, with its argument names."""

from __future__ import annotations

from typing import Any

from kiln.core.errors import InvalidArgument

__all__ = ["AutoML"]


class AutoML:
    """An Autopilot job: ``AutoML(target_attribute_name="y", ...).fit("dataset@1")``.

    ``total_job_runtime_in_seconds`` is the time budget (default 600 s);
    ``job_objective={"MetricName": "F1"}`` the metric; ``mode`` ENSEMBLING,
    HYPERPARAMETER_TUNING or AUTO. ``role``, ``output_path``, ``sagemaker_session``, KMS and
    VPC settings are accepted and ignored; ``max_runtime_per_training_job_in_seconds`` is
    accepted (candidates here share one budget, each cut by the scheduler).
    """

    def __init__(
        self,
        role: str | None = None,
        target_attribute_name: str | None = None,
        *,
        problem_type: str | None = None,
        job_objective: dict[str, str] | None = None,
        max_candidates: int | None = None,
        max_runtime_per_training_job_in_seconds: int | None = None,
        total_job_runtime_in_seconds: int | None = None,
        mode: str | None = None,
        base_job_name: str | None = None,
        model_name: str | None = None,
        client: Any = None,
        **_ignored: Any,
    ) -> None:
        if not target_attribute_name:
            raise InvalidArgument("AutoML needs target_attribute_name: the column to predict")
        if job_objective is not None and not (isinstance(job_objective, dict) and "MetricName" in job_objective):
            raise InvalidArgument('job_objective is {"MetricName": "F1"} (or Accuracy, MSE, AUC, ...)')
        self.target_attribute_name = target_attribute_name
        self.problem_type = problem_type
        self.job_objective = job_objective
        self.max_candidates = max_candidates
        self.max_runtime_per_training_job_in_seconds = max_runtime_per_training_job_in_seconds
        self.total_job_runtime_in_seconds = total_job_runtime_in_seconds
        self.mode = mode
        self.base_job_name = base_job_name
        self.model_name = model_name
        self._client = client
        self.latest_auto_ml_job: Any = None

    def _c(self) -> Any:
        from kiln.sagemaker import _client

        self._client = _client(self._client)
        return self._client

    def fit(self, inputs: Any, wait: bool = True, logs: bool = True, job_name: str | None = None) -> Any:
        """Run the job on ``inputs`` (a dataset ``name@version``; a path locally)."""
        source = getattr(inputs, "source", None) or getattr(inputs, "s3_data", None) or inputs
        self.latest_auto_ml_job = self._c().automl(
            str(source), target=self.target_attribute_name, problem_type=self.problem_type,
            metric=(self.job_objective or {}).get("MetricName"), time_budget_s=float(self.total_job_runtime_in_seconds or 600),
            mode=self.mode, model_name=self.model_name, name=job_name, max_candidates=self.max_candidates, wait=wait,
            logs=bool(logs and wait),
        )
        return self.latest_auto_ml_job

    def _job(self, job_name: str | None) -> Any:
        name = job_name or (self.latest_auto_ml_job.name if self.latest_auto_ml_job is not None else None)
        if name is None:
            raise InvalidArgument("no AutoML job yet: call fit() first or pass job_name")
        return self._c().automl.describe(name)

    def describe_auto_ml_job(self, job_name: str | None = None) -> dict[str, Any]:
        """The job in DescribeAutoMLJob's shape (the fields Kiln has)."""
        info = self._job(job_name)
        job = info.job
        out = {"AutoMLJobName": job.name, "AutoMLJobStatus": job.state, "ProblemType": info.problem_type,
               "AutoMLJobObjective": {"MetricName": info.metric}, "FailureReason": job.failure_reason}
        if info.best:
            out["BestCandidate"] = self.best_candidate(job.name)
        return {k: v for k, v in out.items() if v is not None}

    def best_candidate(self, job_name: str | None = None) -> dict[str, Any]:
        info = self._job(job_name)
        if not info.best:
            raise InvalidArgument(f"AutoML job {info.job.name} has no best candidate ({info.job.state})")
        return {"CandidateName": info.best["name"], "ModelName": info.model,
                "FinalAutoMLJobObjectiveMetric": {"MetricName": info.metric, "Value": info.best["score"]}}

    def list_candidates(self, job_name: str | None = None) -> list[dict[str, Any]]:
        info = self._job(job_name)
        return [{"CandidateName": r["id"], "CandidateStatus": "Completed" if r["status"] == "ok" else r["status"].capitalize(),
                 "FinalAutoMLJobObjectiveMetric": {"MetricName": info.metric, "Value": r.get("score")}} for r in info.leaderboard]
