"""The SageMaker Python SDK's shape over Kiln, so a notebook changes only its import.

    from kiln.sagemaker import SKLearn
    est = SKLearn(entry_point="train.py", source_dir="src", role=role, instance_type="ml.m5.large",
                  framework_version="1.2-1", hyperparameters={"n-estimators": 100})
    est.fit({"train": "cancer@1"})         # a Kiln dataset, a path, or s3://
    est.model_data                          # the registered model version, "train@1"

``role``, ``sagemaker_session``, ``image_uri``, ``output_path`` and the like are accepted and
ignored; ``instance_type`` only sizes the job. Built-in algorithms run with
``Estimator(image_uri=image_uris.retrieve("xgboost", region))`` as on SageMaker, or
``Estimator(algorithm="xgboost")``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.sagemaker import deserializers, serializers
from kiln.sagemaker._automl import AutoML
from kiln.sagemaker._deploy import DataCaptureConfig, Model, Predictor, ServerlessInferenceConfig, estimator_deploy

__all__ = [
    "AutoML", "CategoricalParameter", "ContinuousParameter", "DataCaptureConfig", "Estimator", "Framework", "HyperparameterTuner",
    "HyperparameterTuningJobAnalytics", "IntegerParameter", "LightGBM", "Model", "Predictor", "PyTorch", "SKLearn",
    "ServerlessInferenceConfig", "TensorFlow", "TrainingInput", "Transformer", "WarmStartConfig", "WarmStartTypes", "XGBoost",
    "deserializers", "image_uris", "serializers", "tuner",
]


class TrainingInput:
    """A channel's source (SageMaker's ``sagemaker.inputs.TrainingInput``): a dataset, a path or s3://."""

    def __init__(self, s3_data: str, *, content_type: str | None = None, distribution: str | None = None, **_: Any) -> None:
        self.s3_data = s3_data
        self.content_type = content_type
        self.distribution = distribution

    @property
    def source(self) -> str:
        fmt = {"application/x-parquet": "parquet"}.get(self.content_type or "")
        return f"{self.s3_data}:{fmt}" if fmt and "/" not in self.s3_data and ":" not in self.s3_data else self.s3_data


class _ImageUris:
    """``image_uris.retrieve("xgboost", region, version)``: names a built-in algorithm."""

    def retrieve(self, framework: str, region: str | None = None, version: str | None = None, **_: Any) -> str:
        from kiln.training._service import ALGORITHMS

        name = {"linear-learner": "linear-learner", "randomforest": "random-forest", "knn": "knn", "kmeans": "kmeans"}.get(framework, framework)
        if name not in ALGORITHMS:
            raise InvalidArgument(f"no built-in algorithm {framework!r} in Kiln; built-ins: {', '.join(ALGORITHMS)}")
        return f"kiln-builtin/{name}:{version or 'latest'}"


image_uris = _ImageUris()


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from kiln.sdk.client import Client

    return Client()


def _channels(inputs: Any) -> dict[str, str]:
    if inputs is None:
        raise InvalidArgument('fit() needs inputs: {"train": "dataset@v or path"}')
    if isinstance(inputs, (str, os.PathLike, TrainingInput)):
        inputs = {"training": inputs}  # as SageMaker: a lone input is channel "training"
    if not isinstance(inputs, Mapping):
        raise InvalidArgument("fit() takes a source, or a dict of channel name -> source")
    out = {}
    for name, value in inputs.items():
        out[str(name)] = value.source if isinstance(value, TrainingInput) else os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return out


class Estimator:
    """A training job's definition; ``fit`` runs it (SageMaker's ``sagemaker.estimator.Estimator``)."""

    _framework: str | None = None

    def __init__(
        self,
        entry_point: str | None = None,
        source_dir: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        dependencies: Sequence[str] | None = None,
        role: str | None = None,
        instance_count: int = 1,
        instance_type: str = "local",
        framework_version: str | None = None,
        py_version: str | None = None,
        image_uri: str | None = None,
        algorithm: str | None = None,
        metric_definitions: Sequence[Mapping[str, str]] | None = None,
        max_run: float | None = None,
        max_retry_attempts: int | None = None,
        base_job_name: str | None = None,
        environment: Mapping[str, str] | None = None,
        model_name: str | None = None,
        experiment: str | None = None,
        client: Any = None,
        **ignored: Any,
    ) -> None:
        self.entry_point = entry_point
        self.source_dir = source_dir
        self._hyperparameters = dict(hyperparameters or {})
        self.dependencies = list(dependencies or [])
        self.role = role
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.framework_version = framework_version
        self.py_version = py_version
        self.image_uri = image_uri
        self.algorithm = algorithm or _algorithm_of(image_uri)
        self.metric_definitions = list(metric_definitions or [])
        self.max_run = max_run
        self.max_retry_attempts = max_retry_attempts
        self.base_job_name = base_job_name
        self.environment = dict(environment or {})
        self.model_name = model_name
        self.experiment = experiment
        self._client = client
        self._ignored = ignored  # output_path, sagemaker_session, volume_size...: meaningless here
        self.latest_training_job: Any = None

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._hyperparameters)

    def set_hyperparameters(self, **kwargs: Any) -> None:
        self._hyperparameters.update(kwargs)

    def fit(self, inputs: Any = None, wait: bool = True, logs: bool | str = True, job_name: str | None = None, experiment_config: Mapping[str, str] | None = None) -> None:
        """Run the training job; by default wait and stream its log. Raises when it fails."""
        client = _client(self._client)
        self._client = client
        experiment = (experiment_config or {}).get("ExperimentName") or self.experiment
        job = client.training.run(
            entry_point=self.entry_point, source_dir=self.source_dir, dependencies=self.dependencies, algorithm=self.algorithm,
            hyperparameters=self._hyperparameters, channels=_channels(inputs), metric_definitions=self.metric_definitions or None,
            instance_count=self.instance_count, instance_type=self.instance_type, framework=self._framework,
            framework_version=self.framework_version, model_name=self.model_name, environment=self.environment, name=job_name,
            base_job_name=self.base_job_name, max_run_s=self.max_run, max_retries=max(0, (self.max_retry_attempts or 1) - 1),
            experiment=experiment, wait=wait, logs=bool(logs) and logs != "None",
        )
        self.latest_training_job = _TrainingJob(client, job.name)
        if wait and job.state != "Completed":
            from kiln.core.errors import KilnError

            raise KilnError(f"training job {job.name} {job.state.lower()}: {job.failure_reason}")

    @property
    def model_data(self) -> str | None:
        """The registered model version the job made (``name@version``)."""
        if self.latest_training_job is None:
            return None
        return self.latest_training_job.describe().outputs.get("model")

    def transformer(self, instance_count: int = 1, instance_type: str = "local", **kwargs: Any) -> Transformer:
        """A :class:`Transformer` over the model this estimator trained."""
        if self.model_data is None:
            raise InvalidArgument("transformer() needs a trained model; call fit() first")
        return Transformer(self.model_data, instance_count, instance_type, client=self._client, **kwargs)

    def deploy(self, initial_instance_count: int = 1, instance_type: str | None = None, serializer: Any = None, deserializer: Any = None,
               endpoint_name: str | None = None, data_capture_config: Any = None, serverless_inference_config: Any = None,
               wait: bool = True, **kwargs: Any) -> Predictor:
        """Create an endpoint serving the model ``fit()`` registered; returns its :class:`Predictor`."""
        return estimator_deploy(
            self, initial_instance_count=initial_instance_count, instance_type=instance_type, serializer=serializer, deserializer=deserializer,
            endpoint_name=endpoint_name, data_capture_config=data_capture_config, serverless_inference_config=serverless_inference_config,
            wait=wait, **kwargs,
        )


class _TrainingJob:
    """``estimator.latest_training_job``: the job's name, its description, its wait."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = self.job_name = name

    def describe(self) -> Any:
        return self._client.jobs.get(self.name)

    def wait(self, logs: bool = True) -> Any:
        return self._client.jobs.wait(self.name, logs=logs)


def _algorithm_of(image_uri: str | None) -> str | None:
    if not image_uri:
        return None
    from kiln.training._service import ALGORITHMS

    text = image_uri.lower()
    for name in ALGORITHMS:
        if name in text:
            return name
    raise InvalidArgument(f"image_uri {image_uri!r} names no built-in algorithm Kiln has ({', '.join(ALGORITHMS)}); use entry_point for your own code")


class Framework(Estimator):
    """A framework estimator: the same, with the framework recorded for serving."""


class SKLearn(Framework):
    _framework = "sklearn"


class XGBoost(Framework):
    _framework = "xgboost"


class LightGBM(Framework):
    _framework = "lightgbm"


class PyTorch(Framework):
    _framework = "pytorch"


class TensorFlow(Framework):
    _framework = "tensorflow"


from kiln.sagemaker._transformer import Transformer  # noqa: E402 - it imports _client from here
from kiln.sagemaker import tuner  # noqa: E402 - it imports _client from here
from kiln.sagemaker.tuner import (  # noqa: E402
    CategoricalParameter, ContinuousParameter, HyperparameterTuner, HyperparameterTuningJobAnalytics, IntegerParameter, WarmStartConfig,
    WarmStartTypes,
)
