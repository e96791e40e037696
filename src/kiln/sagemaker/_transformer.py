"""``sagemaker.transformer.Transformer`` over Kiln's batch transform.

    t = Transformer(model_name="churn@2", instance_count=2, instance_type="ml.m5.large",
                    strategy="MultiRecord", assemble_with="Line", output_path="./predictions")
    t.transform("churn-test@1", content_type="text/csv", split_type="Line", input_filter="$[1:]", join_source="Input")
    t.output_path                       # where <file>.out went (or the dataset version)

``instance_count`` is the number of worker processes; ``instance_type`` is accepted and
ignored, as are ``sagemaker_session``, ``volume_kms_key`` and the like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiln.core.errors import InvalidArgument, KilnError

__all__ = ["Transformer"]


class Transformer:
    """A batch transform's definition; :meth:`transform` runs it (SageMaker's ``Transformer``)."""

    def __init__(
        self,
        model_name: str,
        instance_count: int = 1,
        instance_type: str = "local",
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: float | None = None,
        env: Mapping[str, str] | None = None,
        base_transform_job_name: str | None = None,
        client: Any = None,
        **ignored: Any,
    ) -> None:
        self.model_name = model_name
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.env = dict(env or {})
        self.base_transform_job_name = base_transform_job_name
        self._client = client
        self._ignored = ignored
        self.latest_transform_job: Any = None

    def transform(
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        wait: bool = True,
        logs: bool = False,
        **_: Any,
    ) -> None:
        """Run the transform over ``data`` (a dataset ``name@v``, a path or ``s3://``); by
        default wait for it. Raises when it fails."""
        from kiln.sagemaker import _client

        if self.output_path is None:
            raise InvalidArgument("Transformer needs output_path: a folder, s3://bucket/prefix, or a dataset name")
        if compression_type not in (None, "None"):
            raise InvalidArgument("compressed transform input is not supported; give the files uncompressed")
        client = _client(self._client)
        self._client = client
        job = client.transform(
            self.model_name, input=str(data), output=self.output_path, content_type=content_type, accept=self.accept,
            split_type=split_type or "None", strategy=self.strategy or "MultiRecord",
            max_payload_mb=float(self.max_payload) if self.max_payload is not None else 6.0,
            assemble_with=self.assemble_with or "None", input_filter=input_filter, output_filter=output_filter,
            join_source=join_source or "None", workers=int(self.instance_count), environment=self.env,
            name=job_name, wait=wait, logs=logs,
        )
        self.latest_transform_job = _TransformJob(client, job.name)
        if wait and job.state != "Completed":
            raise KilnError(f"transform job {job.name} {job.state.lower()}: {job.failure_reason}")

    def wait(self, logs: bool = False) -> Any:
        if self.latest_transform_job is None:
            raise InvalidArgument("no transform has been started; call transform() first")
        return self.latest_transform_job.wait(logs=logs)


class _TransformJob:
    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self.name = self.job_name = name

    def describe(self) -> Any:
        return self._client.jobs.get(self.name)

    def wait(self, logs: bool = False) -> Any:
        return self._client.transform.wait(self.name, logs=logs)
