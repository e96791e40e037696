"""``deploy()`` as SageMaker's SDK has it: an endpoint for a model, and a ``Predictor`` for it.

    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large")
    predictor.predict([[5.1, 3.5, 1.4, 0.2]])
    predictor.delete_endpoint()

An endpoint here is a Kiln endpoint (``client.endpoints``): ``initial_instance_count`` is
its number of worker processes, ``instance_type`` is accepted and ignored, data capture
maps onto the endpoint's capture settings. ``ServerlessInferenceConfig`` makes a serverless
endpoint (scaled to zero when idle, ``memory_size_in_mb`` caps its worker, requests beyond
``max_concurrency`` get 429).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument, NotFound
from kiln.sagemaker.deserializers import BaseDeserializer, BytesDeserializer, CSVDeserializer, JSONDeserializer, NumpyDeserializer
from kiln.sagemaker.serializers import BaseSerializer, CSVSerializer, IdentitySerializer, JSONSerializer, NumpySerializer

__all__ = ["DataCaptureConfig", "Model", "Predictor", "ServerlessInferenceConfig", "deploy_model"]


class DataCaptureConfig:
    """SageMaker's ``sagemaker.model_monitor.DataCaptureConfig``: sampling percentage and
    what is captured (``REQUEST``, ``RESPONSE``). Captured files go to Kiln's store under
    ``capture/<endpoint>/`` whatever ``destination_s3_uri`` says."""

    def __init__(
        self, enable_capture: bool = True, sampling_percentage: float = 20, destination_s3_uri: str | None = None,
        kms_key_id: str | None = None, capture_options: Sequence[str] | None = None, csv_content_types: Sequence[str] | None = None,
        json_content_types: Sequence[str] | None = None, **_: Any,
    ) -> None:
        self.enable_capture = enable_capture
        self.sampling_percentage = sampling_percentage
        self.destination_s3_uri = destination_s3_uri
        self.capture_options = list(capture_options or ["REQUEST", "RESPONSE"])
        self.csv_content_types = csv_content_types
        self.json_content_types = json_content_types

    def modes(self) -> list[str]:
        names = {"REQUEST": "Input", "INPUT": "Input", "RESPONSE": "Output", "OUTPUT": "Output"}
        out = []
        for option in self.capture_options:
            mode = names.get(str(option).upper())
            if mode is None:
                raise InvalidArgument(f"capture option {option!r} is not REQUEST or RESPONSE")
            if mode not in out:
                out.append(mode)
        return out

    def percent(self) -> float:
        return float(self.sampling_percentage) if self.enable_capture else 0.0


class ServerlessInferenceConfig:
    """SageMaker's serverless settings: the endpoint scales to zero when idle, its worker's
    memory is capped at ``memory_size_in_mb`` and requests beyond ``max_concurrency`` get 429."""

    def __init__(self, memory_size_in_mb: int = 2048, max_concurrency: int = 5, **_: Any) -> None:
        self.memory_size_in_mb = memory_size_in_mb
        self.max_concurrency = max_concurrency


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from kiln.sdk.client import Client

    return Client()


class Predictor:
    """SageMaker's ``sagemaker.predictor.Predictor`` over a Kiln endpoint."""

    def __init__(
        self, endpoint_name: str, sagemaker_session: Any = None, serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None, *, client: Any = None, **_: Any,
    ) -> None:
        self.endpoint_name = endpoint_name
        self.sagemaker_session = sagemaker_session
        self.serializer = serializer if serializer is not None else IdentitySerializer()
        self.deserializer = deserializer if deserializer is not None else BytesDeserializer()
        self._client = _client(client)

    @property
    def endpoint(self) -> str:
        return self.endpoint_name

    @property
    def content_type(self) -> str:
        return self.serializer.CONTENT_TYPE

    @property
    def accept(self) -> tuple[str, ...]:
        return tuple(self.deserializer.ACCEPT)

    def predict(
        self, data: Any, initial_args: Mapping[str, Any] | None = None, target_model: str | None = None, target_variant: str | None = None,
        inference_id: str | None = None, custom_attributes: str | None = None, component_name: str | None = None,
    ) -> Any:
        """Serialize ``data``, invoke the endpoint, deserialize its answer."""
        args = dict(initial_args or {})
        body = self.serializer.serialize(data)
        got = self._client.endpoints.invoke(
            self.endpoint_name, body if isinstance(body, bytes) else str(body).encode(),
            content_type=args.get("ContentType", self.content_type), accept=args.get("Accept", self.accept[0] if self.accept else None),
            target_model=args.get("TargetModel", target_model), target_variant=args.get("TargetVariant", target_variant),
            inference_id=args.get("InferenceId", inference_id), custom_attributes=args.get("CustomAttributes", custom_attributes),
        )
        return self.deserializer.deserialize(io.BytesIO(got.body), got.content_type)

    def describe_endpoint(self) -> Any:
        return self._client.endpoints.get(self.endpoint_name)

    def update_endpoint(
        self, initial_instance_count: int | None = None, instance_type: str | None = None, model_name: str | None = None,
        data_capture_config: DataCaptureConfig | None = None, wait: bool = True, **_: Any,
    ) -> Any:
        """Serve another model (``model_name``: a Kiln model reference) or more workers, blue/green."""
        capture = data_capture_config
        return self._client.endpoints.update(
            self.endpoint_name, model=model_name, workers=initial_instance_count,
            capture_percent=capture.percent() if capture else None, capture_modes=capture.modes() if capture else None, wait=wait,
        )

    def update_data_capture_config(self, data_capture_config: DataCaptureConfig) -> Any:
        return self.update_endpoint(data_capture_config=data_capture_config)

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        self._client.endpoints.delete(self.endpoint_name)

    def delete_model(self) -> None:
        """SageMaker deletes its Model resource here; Kiln's registry keeps the version."""


# What SageMaker's framework predictors serialize with.
_DEFAULTS: dict[str | None, tuple[type[BaseSerializer], type[BaseDeserializer]]] = {
    "sklearn": (NumpySerializer, NumpyDeserializer),
    "pytorch": (NumpySerializer, NumpyDeserializer),
    "tensorflow": (JSONSerializer, JSONDeserializer),
    "xgboost": (CSVSerializer, CSVDeserializer),
    "lightgbm": (CSVSerializer, CSVDeserializer),
}


def _endpoint_name(base: str) -> str:
    from kiln.jobs._service import job_name

    return job_name(base)


def deploy_model(
    client: Any, model_ref: str, *, framework: str | None = None, initial_instance_count: int = 1, endpoint_name: str | None = None,
    serializer: BaseSerializer | None = None, deserializer: BaseDeserializer | None = None,
    data_capture_config: DataCaptureConfig | None = None, serverless_inference_config: ServerlessInferenceConfig | None = None,
    wait: bool = True, endpoint_name_default: str | None = None, port: int = 0,
) -> Predictor:
    """Create an endpoint for ``model_ref`` and return its :class:`Predictor`."""
    from kiln.core.names import parse_ref

    if not isinstance(initial_instance_count, int) or not 1 <= initial_instance_count <= 64:
        raise InvalidArgument(f"initial_instance_count must be between 1 and 64 (worker processes here), not {initial_instance_count!r}")
    ref = parse_ref(model_ref, kind="model")
    name = endpoint_name or endpoint_name_default or _endpoint_name(ref.name)
    capture = data_capture_config
    serverless = None
    if serverless_inference_config is not None:
        sc = serverless_inference_config
        serverless = {"memory_mb": int(sc.memory_size_in_mb), "max_concurrency": int(sc.max_concurrency)}
        initial_instance_count = 1  # SageMaker ignores the instance count of a serverless endpoint
    ep = client.endpoints.create(
        name, model=model_ref, workers=initial_instance_count, port=port, serverless=serverless,
        capture_percent=capture.percent() if capture else 0.0, capture_modes=capture.modes() if capture else None, wait=wait,
    )
    if wait and ep.state == "Failed":
        from kiln.core.errors import KilnError

        raise KilnError(f"endpoint {name} failed to start: {ep.failure_reason}")
    ser, de = _DEFAULTS.get(framework, (IdentitySerializer, BytesDeserializer))
    return Predictor(name, serializer=serializer or ser(), deserializer=deserializer or de(), client=client)


class Model:
    """SageMaker's ``sagemaker.model.Model``: ``model_data`` is a Kiln model reference
    (``churn@3``), or a local ``model.tar.gz`` / folder registered (with ``entry_point``
    as ``code/inference.py`` and the rest of ``source_dir`` beside it) on ``deploy()``.

    A package that brings code runs only once an admin trusted its version
    (``kiln models trust NAME@V``): the endpoint refuses it otherwise.
    """

    def __init__(
        self, model_data: str | os.PathLike[str] | None = None, image_uri: str | None = None, role: str | None = None,
        entry_point: str | None = None, source_dir: str | None = None, name: str | None = None, env: Mapping[str, str] | None = None,
        predictor_cls: type[Predictor] | None = None, sagemaker_session: Any = None, *, framework: str | None = None, client: Any = None, **_: Any,
    ) -> None:
        if model_data is None:
            raise InvalidArgument("Model needs model_data: a Kiln model reference (name@version) or a model.tar.gz / folder")
        self.model_data = model_data
        self.image_uri = image_uri
        self.role = role
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.name = name
        self.env = dict(env or {})
        self.predictor_cls = predictor_cls
        self.framework = framework
        self._client = client
        self.endpoint_name: str | None = None

    def _ref(self, client: Any) -> str:
        data = os.fspath(self.model_data)
        if not os.path.exists(data):
            from kiln.core.names import parse_ref

            try:
                parse_ref(data, kind="model")
            except InvalidArgument:
                raise NotFound(f"model_data {data!r} is neither a Kiln model reference (name@version) nor a local file or folder") from None
            return data
        with tempfile.TemporaryDirectory(prefix="kiln-model-") as tmp:
            folder = Path(tmp) / "package"
            if os.path.isdir(data):
                shutil.copytree(data, folder)
            else:
                folder.mkdir()
                with tarfile.open(data) as tar:
                    tar.extractall(folder, filter="data")
            if self.entry_point:
                code = folder / "code"
                if self.source_dir:
                    shutil.copytree(self.source_dir, code, dirs_exist_ok=True)
                    entry = code / self.entry_point
                else:
                    code.mkdir(exist_ok=True)
                    entry = code / Path(self.entry_point).name
                    shutil.copyfile(self.entry_point, entry)
                if entry.name != "inference.py":
                    shutil.copyfile(entry, code / "inference.py")
            name = self.name or "model"
            version = client.models.register(name, path=folder)
            return f"{version.name}@{version.version}"

    def deploy(
        self, initial_instance_count: int = 1, instance_type: str | None = None, serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None, endpoint_name: str | None = None, data_capture_config: DataCaptureConfig | None = None,
        serverless_inference_config: ServerlessInferenceConfig | None = None, wait: bool = True, **_: Any,
    ) -> Predictor:
        """Register ``model_data`` if it is a local file, create the endpoint, return its Predictor."""
        client = _client(self._client)
        self._client = client
        ref = self._ref(client)
        predictor = deploy_model(
            client, ref, framework=self.framework, initial_instance_count=initial_instance_count, endpoint_name=endpoint_name,
            serializer=serializer, deserializer=deserializer, data_capture_config=data_capture_config,
            serverless_inference_config=serverless_inference_config, wait=wait,
        )
        if self.predictor_cls is not None:
            predictor = self.predictor_cls(predictor.endpoint_name, serializer=predictor.serializer, deserializer=predictor.deserializer, client=client)
        self.endpoint_name = predictor.endpoint_name
        return predictor


def estimator_deploy(
    estimator: Any, initial_instance_count: int = 1, instance_type: str | None = None, serializer: BaseSerializer | None = None,
    deserializer: BaseDeserializer | None = None, endpoint_name: str | None = None, data_capture_config: DataCaptureConfig | None = None,
    serverless_inference_config: ServerlessInferenceConfig | None = None, wait: bool = True, **_: Any,
) -> Predictor:
    """``Estimator.deploy``: an endpoint for the model the last ``fit()`` registered."""
    ref = estimator.model_data
    if ref is None:
        raise InvalidArgument("deploy() needs a trained model: call fit() first (or use kiln.sagemaker.Model(model_data='name@version'))")
    client = _client(estimator._client)
    job = estimator.latest_training_job.name if estimator.latest_training_job is not None else None
    return deploy_model(
        client, ref, framework=estimator._framework, initial_instance_count=initial_instance_count, endpoint_name=endpoint_name,
        serializer=serializer, deserializer=deserializer, data_capture_config=data_capture_config,
        serverless_inference_config=serverless_inference_config, wait=wait,
        # SageMaker names the endpoint after the training job (a valid, time-stamped name here too).
        endpoint_name_default=job,
    )

