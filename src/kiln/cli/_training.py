"""The estimator options of ``kiln train``, declared once: ``kiln tune`` takes the same flags
for the training job its trials run (SageMaker's tuner wraps an estimator).

:func:`training_options` adds the flags to a command that ends in ``**training``;
:func:`training_args` turns what they parsed into the SDK's keyword arguments (JSON parsed,
NAME=VALUE pairs split), for ``client.training.run`` and ``client.tuning.create`` alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import typer

__all__ = ["json_arg", "training_args", "training_options"]

F = TypeVar("F", bound=Callable[..., Any])

_METRICS_EXAMPLE = '[{"Name": "loss", "Regex": "loss=([0-9.]+)"}]'

# (parameter, type, default, flag, help): the order is the order of `--help`.
_FLAGS: tuple[tuple[str, Any, Any, str, str], ...] = (
    ("entry_point", str, None, "--entry-point", "The training script (a path inside --source-dir, or a file)."),
    ("source_dir", str, None, "--source-dir", "Folder uploaded with the script (SageMaker's source_dir)."),
    ("dependencies", list[str], None, "--dependencies", "A folder to make importable (repeatable; SageMaker's dependencies=)."),
    ("algorithm", str, None, "--algorithm",
     "A built-in algorithm instead of a script: xgboost, lightgbm, linear-learner, random-forest, kmeans, knn."),
    ("target", str, None, "--target", "Built-ins: the label column of a dataset channel (default: headerless CSV, label first)."),
    ("hyperparameters", str, None, "--hyperparameters", 'JSON object, e.g. \'{"max_depth": 5, "eta": 0.2}\'.'),
    ("channel", list[str], None, "--channel", "NAME=SOURCE: a dataset (name@v[:csv|csv-noheader|parquet]), a path or s3://; repeatable."),
    ("metric_definitions", str, None, "--metric-definitions",
     'JSON list, e.g. \'[{"Name": "val:auc", "Regex": "auc=([0-9.]+)"}]\' (built-ins have theirs).'),
    ("instance_count", int, 1, "--instance-count", "Hosts (algo-1 … algo-N) running the script at once."),
    ("instance_type", str, "local", "--instance-type", "Accepted for SageMaker scripts; only sizes the job."),
    ("framework", str, None, "--framework", "sklearn, xgboost, lightgbm, pytorch… (how the model is served without model_fn)."),
    ("framework_version", str, None, "--framework-version", "The framework's version, recorded with the model."),
    ("model_name", str, None, "--model-name", "Register model/ as a version of this model (default: the job's base name)."),
    ("env", list[str], None, "--env", "KEY=VALUE for the job's environment; repeatable."),
    ("max_run", float, None, "--max-run", "Time limit in seconds (SageMaker's max_run)."),
    ("max_retries", int, 0, "--max-retries", "Retry a failed run this many times, with backoff; checkpoints/ is restored."),
    ("experiment", str, None, "--experiment", "Experiment of the job's run (default training-jobs)."),
)
NAMES = tuple(flag[0] for flag in _FLAGS)


def training_options(**help_for: str) -> Callable[[F], F]:
    """Add the training flags to a Typer command whose function ends in ``**training``; the
    command gets them, by parameter name, in ``training``. ``help_for`` rewords a flag's help
    for this command (``instance_count="Hosts per trial."``)."""
    unknown = set(help_for) - set(NAMES)
    if unknown:
        raise TypeError(f"no training flag {min(unknown)!r}")

    def wrap(func: F) -> F:
        sig = inspect.signature(func)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind,
                              default=typer.Option(default, flag, help=help_for.get(name, text)))
            for name, kind, default, flag, text in _FLAGS
        ]
        at = next((i for i, p in enumerate(own) if p.name in ("name", "detach", "json")), len(own))

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            training = {name: kwargs.pop(name, None) for name in NAMES}
            return func(*args, **kwargs, **training)

        wrapper.__signature__ = sig.replace(parameters=[*own[:at], *added, *own[at:]])  # type: ignore[attr-defined]
        annotations = {k: v for k, v in func.__annotations__.items() if k != "training"}
        wrapper.__annotations__ = {**annotations, **{name: kind for name, kind, *_ in _FLAGS}}
        return wrapper  # type: ignore[return-value]

    return wrap


def training_args(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's keyword arguments for what the training flags parsed.

    Raises:
        InvalidArgument: --hyperparameters, --metric-definitions, --channel or --env malformed.
    """
    from kiln.cli._common import parse_pairs
    from kiln.training._contract import parse_hyperparameters

    return {
        "entry_point": flags["entry_point"], "source_dir": flags["source_dir"], "dependencies": flags["dependencies"] or (),
        "algorithm": flags["algorithm"], "target": flags["target"],
        "hyperparameters": parse_hyperparameters(flags["hyperparameters"] or ""),
        "channels": parse_pairs(flags["channel"], option="--channel", example="train=cancer@1", shape="NAME=SOURCE"),
        "metric_definitions": json_arg(flags["metric_definitions"], option="--metric-definitions", example=_METRICS_EXAMPLE),
        "instance_count": flags["instance_count"], "instance_type": flags["instance_type"], "framework": flags["framework"],
        "framework_version": flags["framework_version"], "model_name": flags["model_name"],
        "environment": parse_pairs(flags["env"], option="--env", example="MODE=fast", shape="KEY=VALUE"),
        "max_run_s": flags["max_run"], "max_retries": flags["max_retries"], "experiment": flags["experiment"],
    }


def json_arg(text: str | None, *, option: str, example: str) -> Any:
    """``text`` parsed as JSON (None stays None).

    Raises:
        InvalidArgument: not JSON, naming the option and an example.
    """
    if text is None:
        return None
    import orjson

    from kiln.core.errors import InvalidArgument

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"{option} is not valid JSON ({exc}); e.g. {option} '{example}'") from None
