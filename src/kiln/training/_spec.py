"""A training job's estimator options, declared once.

``training.create`` takes them, and ``tuning.create`` takes the same ones for the training
job its trials run (SageMaker's tuner wraps an estimator): both services, both SDK calls and
the REST bodies get their parameters from :class:`TrainingOptions` through
:func:`training_options`, so an option added here reaches ``kiln train`` and ``kiln tune``
alike (the CLI's flags are declared once too, in :mod:`kiln.cli._training`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, Field

__all__ = ["TRAINING_OPTIONS", "TrainingOptions", "training_options"]

F = TypeVar("F", bound=Callable[..., Any])


class TrainingOptions(BaseModel):
    """The options of a training job that a tuning job's trials share (all but its name)."""

    code: str | None = Field(None, description="Hash of the uploaded source archive (POST /v1/jobs/code); the SDK and CLI upload source_dir.")
    entry_point: str | None = Field(None, description="The training script, a path inside the code (SageMaker script mode).")
    algorithm: str | None = Field(None, description="A built-in algorithm instead of a script.")
    target: str | None = Field(None, description="Built-ins: the label column of a dataset channel.")
    hyperparameters: Mapping[str, Any] | None = Field(None, description="Hyperparameters passed to the script or algorithm.")
    channels: Mapping[str, str] | None = Field(None, description="Channel name to source: a dataset (name@v), a path or s3://.")
    metric_definitions: Sequence[Mapping[str, str]] | None = Field(None, description='Metrics read from the log: [{"Name", "Regex"}].')
    instance_count: int = Field(1, description="Hosts running the script at once.")
    instance_type: str = Field("local", description="Accepted for SageMaker scripts; only sizes the job.")
    framework: str | None = Field(None, description="How the model is served without model_fn: sklearn, xgboost, pytorch…")
    framework_version: str | None = Field(None, description="The framework's version, as recorded with the model.")
    model_name: str | None = Field(None, description="Register model/ as a version of this model.")
    environment: Mapping[str, Any] | None = Field(None, description="Variables of the job's environment.")
    max_run_s: float | None = Field(None, description="Time limit in seconds (SageMaker's max_run).")
    max_retries: int = Field(0, description="Retry a failed run this many times, with backoff.")
    experiment: str | None = Field(None, description="Experiment of the job's run.")


TRAINING_OPTIONS: tuple[str, ...] = tuple(TrainingOptions.model_fields)


def training_options(*, exclude: Sequence[str] = ()) -> Callable[[F], F]:
    """Give a function that ends in ``**training`` the training options as keyword arguments.

    The function's signature (what ``inspect``, ``help()``, the REST route and OpenAPI read)
    gains one keyword-only parameter per option of :class:`TrainingOptions`, less ``exclude``,
    with its type and default; a call gets ``training`` with every one of them, defaults filled
    in, and an unknown keyword is a ``TypeError`` as for any function.
    """
    fields = {n: f for n, f in TrainingOptions.model_fields.items() if n not in exclude}
    hints = _hints()

    def wrap(func: F) -> F:
        sig = inspect.signature(func)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        clash = {p.name for p in own} & set(fields)
        if clash:
            raise TypeError(f"{func.__qualname__} declares training options itself: {sorted(clash)}")
        added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[n]) for n, f in fields.items()]
        own_names = {p.name for p in own}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            unknown = sorted(set(kwargs) - own_names - set(fields))
            if unknown:
                raise TypeError(f"{func.__qualname__}() got an unexpected keyword argument {unknown[0]!r}")
            training = {n: kwargs.pop(n, f.default) for n, f in fields.items()}
            return func(*args, **kwargs, **training)

        wrapper.__signature__ = sig.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        annotations = {k: v for k, v in func.__annotations__.items() if k != "training"}
        wrapper.__annotations__ = {**annotations, **{n: hints[n] for n in fields}}
        return wrapper  # type: ignore[return-value]

    return wrap


@functools.cache
def _hints() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(TrainingOptions)
