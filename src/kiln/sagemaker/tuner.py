"""SageMaker's ``sagemaker.tuner`` over Kiln's tuning jobs, so a tuning notebook changes only
its import::

    from kiln.sagemaker import Estimator, image_uris
    from kiln.sagemaker.tuner import HyperparameterTuner, ContinuousParameter, IntegerParameter

    xgb = Estimator(image_uris.retrieve("xgboost", "us-east-1", "1.7-1"), role, instance_count=1,
                    instance_type="ml.m5.xlarge", hyperparameters={"objective": "binary:logistic", "num_round": 50})
    tuner = HyperparameterTuner(xgb, "validation:auc", {"eta": ContinuousParameter(0.05, 0.5),
                                "max_depth": IntegerParameter(2, 8)}, max_jobs=8, max_parallel_jobs=2)
    tuner.fit({"train": "train@1", "validation": "validation@1"})
    tuner.best_training_job()
    tuner.analytics().dataframe()
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kiln.core.errors import InvalidArgument, KilnError

__all__ = [
    "CategoricalParameter", "ContinuousParameter", "HyperparameterTuner", "HyperparameterTuningJobAnalytics", "IntegerParameter",
    "WarmStartConfig", "WarmStartTypes",
]


class _Range:
    __name__: str = "Range"

    def __init__(self, min_value: Any, max_value: Any, scaling_type: str = "Auto") -> None:
        self.min_value = min_value
        self.max_value = max_value
        self.scaling_type = scaling_type

    def as_tuning_range(self, name: str) -> dict[str, str]:
        return {"Name": name, "MinValue": str(self.min_value), "MaxValue": str(self.max_value), "ScalingType": self.scaling_type}


class ContinuousParameter(_Range):
    """A continuous range (``ContinuousParameterRanges``)."""

    __name__ = "Continuous"


class IntegerParameter(_Range):
    """An integer range (``IntegerParameterRanges``)."""

    __name__ = "Integer"


class CategoricalParameter:
    """A categorical range (``CategoricalParameterRanges``): the values, sent as strings."""

    __name__ = "Categorical"

    def __init__(self, values: Any) -> None:
        self.values = [str(v) for v in values] if isinstance(values, (list, tuple, set)) else [str(values)]

    def as_tuning_range(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Values": list(self.values)}


class WarmStartTypes(enum.Enum):
    IDENTICAL_DATA_AND_ALGORITHM = "IdenticalDataAndAlgorithm"
    TRANSFER_LEARNING = "TransferLearning"


class WarmStartConfig:
    """Parent tuning jobs whose trials seed a new one."""

    def __init__(self, warm_start_type: WarmStartTypes | str, parents: Iterable[str]) -> None:
        self.type = WarmStartTypes(warm_start_type) if not isinstance(warm_start_type, WarmStartTypes) else warm_start_type
        self.parents = set(parents)


def _parameter_ranges(ranges: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(ranges, Mapping) or not ranges:
        raise InvalidArgument("hyperparameter_ranges is a dict of name -> ContinuousParameter / IntegerParameter / CategoricalParameter")
    out: dict[str, list[dict[str, Any]]] = {"ContinuousParameterRanges": [], "IntegerParameterRanges": [], "CategoricalParameterRanges": []}
    for name, rng in ranges.items():
        if isinstance(rng, ContinuousParameter):
            out["ContinuousParameterRanges"].append(rng.as_tuning_range(name))
        elif isinstance(rng, IntegerParameter):
            out["IntegerParameterRanges"].append(rng.as_tuning_range(name))
        elif isinstance(rng, CategoricalParameter):
            out["CategoricalParameterRanges"].append(rng.as_tuning_range(name))
        else:
            raise InvalidArgument(f"range {name!r} must be a ContinuousParameter, IntegerParameter or CategoricalParameter, not {type(rng).__name__}")
    return out


class HyperparameterTuner:
    """A tuning job's definition; ``fit`` runs it (SageMaker's ``sagemaker.tuner.HyperparameterTuner``).

    ``max_runtime_in_seconds``, ``tags``, ``strategy_config``, ``completion_criteria_config`` and
    the like are accepted and ignored.
    """

    def __init__(
        self,
        estimator: Any,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, Any],
        metric_definitions: Sequence[Mapping[str, str]] | None = None,
        strategy: str = "Bayesian",
        objective_type: str = "Maximize",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        base_tuning_job_name: str | None = None,
        warm_start_config: WarmStartConfig | None = None,
        early_stopping_type: str = "Off",
        random_seed: int | None = None,
        **ignored: Any,
    ) -> None:
        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self._hyperparameter_ranges = dict(hyperparameter_ranges or {})
        self.metric_definitions = list(metric_definitions) if metric_definitions else None
        self.strategy = strategy
        self.objective_type = objective_type
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.base_tuning_job_name = base_tuning_job_name
        self.warm_start_config = warm_start_config
        self.early_stopping_type = early_stopping_type
        self.random_seed = random_seed
        self._ignored = ignored
        self._client = getattr(estimator, "_client", None)
        self.latest_tuning_job: _TuningJob | None = None
        self._current_job_name: str | None = None

    def hyperparameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """The ranges as SageMaker's ParameterRanges."""
        return _parameter_ranges(self._hyperparameter_ranges)

    def fit(self, inputs: Any = None, job_name: str | None = None, include_cls_metadata: bool = False,
            estimator_kwargs: Any = None, wait: bool = True, **kwargs: Any) -> None:
        """Start the tuning job; by default wait until it ends. Raises when it fails."""
        from kiln.sagemaker import _channels, _client

        est = self.estimator
        client = _client(self._client)
        self._client = client
        if est is not None and getattr(est, "_client", None) is None:
            est._client = client
        ranges = self.hyperparameter_ranges()
        static = {k: v for k, v in est.hyperparameters().items() if k not in self._hyperparameter_ranges}
        warm = self.warm_start_config
        job = client.tuning.create(
            objective_metric_name=self.objective_metric_name, hyperparameter_ranges=ranges, name=job_name,
            base_tuning_job_name=self.base_tuning_job_name or est.base_job_name, objective_type=self.objective_type,
            strategy=self.strategy, max_jobs=self.max_jobs, max_parallel_jobs=self.max_parallel_jobs,
            early_stopping_type=self.early_stopping_type, warm_start_parents=sorted(warm.parents) if warm else None,
            warm_start_type=warm.type.value if warm else None, random_seed=self.random_seed,
            entry_point=est.entry_point, source_dir=est.source_dir, dependencies=est.dependencies, algorithm=est.algorithm,
            hyperparameters=static, channels=_channels(inputs) if inputs is not None else {}, metric_definitions=self.metric_definitions or est.metric_definitions or None,
            instance_count=est.instance_count, instance_type=est.instance_type, framework=est._framework,
            framework_version=est.framework_version, model_name=est.model_name, environment=est.environment, max_run_s=est.max_run,
            max_retries=max(0, (est.max_retry_attempts or 1) - 1), experiment=est.experiment,
        )
        self._current_job_name = job.name
        self.latest_tuning_job = _TuningJob(client, job.name)
        if wait:
            self.wait()

    def wait(self) -> Any:
        """Wait until the tuning job ends; raises when it failed."""
        job = self._job().wait()
        if job.state == "Failed":
            raise KilnError(f"tuning job {job.name} failed: {job.failure_reason}")
        return job

    def _job(self) -> _TuningJob:
        if self.latest_tuning_job is None:
            raise InvalidArgument("no tuning job yet: call fit() first, or HyperparameterTuner.attach(name)")
        return self.latest_tuning_job

    def describe(self) -> dict[str, Any]:
        """The tuning job as SageMaker's DescribeHyperParameterTuningJob answers (the fields Kiln has)."""
        job = self._job().describe()
        best = job.best_training_job
        counts = job.counts
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": job.name,
            "HyperParameterTuningJobStatus": {"Running": "InProgress", "Pending": "InProgress"}.get(job.state, job.state),
            "HyperParameterTuningJobConfig": {
                "Strategy": job.strategy,
                "HyperParameterTuningJobObjective": {"Type": job.objective_type, "MetricName": job.objective_metric_name},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": job.max_jobs, "MaxParallelTrainingJobs": job.max_parallel_jobs},
                "ParameterRanges": job.hyperparameter_ranges,
                "TrainingJobEarlyStoppingType": job.early_stopping_type,
            },
            "TrainingJobStatusCounters": {
                "Completed": counts.get("Completed", 0), "InProgress": counts.get("Running", 0) + counts.get("Pending", 0),
                "Stopped": counts.get("Stopped", 0), "NonRetryableError": counts.get("Failed", 0), "RetryableError": 0,
            },
            "FailureReason": job.failure_reason,
        }
        if best is not None:
            out["BestTrainingJob"] = {
                "TrainingJobName": best.training_job, "TrainingJobStatus": best.state,
                "TunedHyperParameters": {k: str(v) for k, v in best.hyperparameters.items()},
                "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": job.objective_metric_name, "Value": best.objective},
            }
        if job.warm_start_parents:
            out["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p} for p in job.warm_start_parents],
                                      "WarmStartType": job.warm_start_type}
        return out

    def best_training_job(self) -> str:
        """The name of the best training job."""
        job = self._job().describe()
        if job.best_training_job is None:
            raise KilnError(f"tuning job {job.name} has no completed training job with objective {job.objective_metric_name!r} yet ({job.state})")
        return job.best_training_job.training_job

    def best_estimator(self) -> Any:
        """An estimator attached to the best training job (``deploy()`` serves its model)."""
        from kiln.sagemaker import Estimator, _TrainingJob

        name = self.best_training_job()
        est = copy.copy(self.estimator) if self.estimator is not None else Estimator(algorithm="xgboost", client=self._client)
        est._client = self._client
        est.latest_training_job = _TrainingJob(self._client, name)
        return est

    def stop_tuning_job(self) -> None:
        self._client.tuning.stop(self._job().name)

    def analytics(self) -> HyperparameterTuningJobAnalytics:
        return HyperparameterTuningJobAnalytics(self._job().name, client=self._client)

    @classmethod
    def attach(cls, tuning_job_name: str, sagemaker_session: Any = None, job_details: Any = None, estimator_cls: Any = None,
               client: Any = None) -> HyperparameterTuner:
        """A tuner for an existing tuning job, with an estimator rebuilt from its training definition."""
        from kiln.sagemaker import Estimator, _client

        client = _client(client)
        job = client.tuning.get(tuning_job_name)
        spec = client.jobs.get(tuning_job_name).spec.get("training", {})
        est = (estimator_cls or Estimator)(
            entry_point=spec.get("entry_point"), algorithm=spec.get("algorithm"), hyperparameters=job.static_hyperparameters,
            metric_definitions=spec.get("metric_definitions"), instance_count=spec.get("instance_count", 1),
            instance_type=spec.get("instance_type", "local"), model_name=spec.get("model_name"), client=client,
        )
        ranges: dict[str, Any] = {}
        for r in job.hyperparameter_ranges.get("ContinuousParameterRanges", []):
            ranges[r["Name"]] = ContinuousParameter(r["MinValue"], r["MaxValue"], r.get("ScalingType", "Auto"))
        for r in job.hyperparameter_ranges.get("IntegerParameterRanges", []):
            ranges[r["Name"]] = IntegerParameter(r["MinValue"], r["MaxValue"], r.get("ScalingType", "Auto"))
        for r in job.hyperparameter_ranges.get("CategoricalParameterRanges", []):
            ranges[r["Name"]] = CategoricalParameter(r["Values"])
        warm = WarmStartConfig(job.warm_start_type, job.warm_start_parents) if job.warm_start_parents and job.warm_start_type else None
        tuner = cls(est, job.objective_metric_name, ranges, strategy=job.strategy, objective_type=job.objective_type,
                    max_jobs=job.max_jobs, max_parallel_jobs=job.max_parallel_jobs, early_stopping_type=job.early_stopping_type,
                    warm_start_config=warm, random_seed=job.random_seed)
        tuner._client = client
        tuner._current_job_name = job.name
        tuner.latest_tuning_job = _TuningJob(client, job.name)
        return tuner


class _TuningJob:
    """``tuner.latest_tuning_job``: the tuning job's name, its description, its wait."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = self.job_name = name

    def describe(self) -> Any:
        return self._client.tuning.get(self.name)

    def wait(self) -> Any:
        return self._client.tuning.wait(self.name)


class HyperparameterTuningJobAnalytics:
    """A tuning job's trials as a pandas DataFrame (SageMaker's analytics columns)."""

    def __init__(self, hyperparameter_tuning_job_name: str, sagemaker_session: Any = None, client: Any = None) -> None:
        from kiln.sagemaker import _client

        self.name = hyperparameter_tuning_job_name
        self._client = _client(client)

    def description(self, force_refresh: bool = False) -> Any:
        return self._client.tuning.get(self.name)

    def dataframe(self, force_refresh: bool = False) -> Any:
        import pandas as pd

        job = self._client.tuning.get(self.name)
        rows = []
        for t in job.trials:
            row: dict[str, Any] = dict(t.hyperparameters)
            started = t.created_at
            row.update({
                "TrainingJobName": t.training_job, "TrainingJobStatus": t.state, "FinalObjectiveValue": t.objective,
                "TrainingStartTime": pd.Timestamp(started, unit="s", tz="UTC"),
                "TrainingEndTime": pd.Timestamp(t.ended_at, unit="s", tz="UTC") if t.ended_at else None,
                "TrainingElapsedTimeSeconds": (t.ended_at - started) if t.ended_at else None,
            })
            rows.append(row)
        return pd.DataFrame(rows)
