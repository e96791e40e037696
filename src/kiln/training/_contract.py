"""The SageMaker script-mode contract (CONTRACTS.md §1), as pure functions.

A job folder is laid out like ``/opt/ml``; the user's script runs as
``python <entry_point> <args>`` with the ``SM_*`` environment that
``sagemaker-training``'s ``Environment().to_env_vars()`` builds. Every rule here
was checked against that toolkit (``environment.py``, ``mapping.py``,
``params.py``, ``files.py``, ``process.py``); ``SAGEMAKER_BASE_DIR`` points at
the job folder, so the toolkit itself, imported by a user's script, reads the
same layout and agrees.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.training._layout import TrainingLayout, check_channel, make_layout
from kiln.training._outcome import FAILURE_CHARS, failure_reason, metric_matcher
from kiln.training._source import (
    MAX_SOURCE_BYTES,
    model_package,
    pack_source,
    requirements_command,
    requirements_env,
    unpack_source,
)

__all__ = [
    "FAILURE_CHARS",
    "MAX_SOURCE_BYTES",
    "RESERVED_HYPERPARAMETERS",
    "TrainingLayout",
    "check_channel",
    "check_hyperparameters",
    "decode_hyperparameters",
    "failure_reason",
    "hyperparameter_args",
    "input_data_config",
    "is_reserved",
    "make_layout",
    "metric_matcher",
    "model_package",
    "pack_source",
    "parse_hyperparameters",
    "requirements_command",
    "requirements_env",
    "resource_config",
    "training_argv",
    "training_env",
    "unpack_source",
    "write_configs",
]

# sagemaker_training.params.SAGEMAKER_HYPERPARAMETERS: set by the SDK or the tuner, never
# passed to the script. Any other key starting with "sagemaker_" is reserved too and
# becomes a framework parameter (SM_FRAMEWORK_PARAMS).
RESERVED_HYPERPARAMETERS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "default_user_module_name",
    "_tuning_objective_metric",
    "sagemaker_s3_output",
)
_DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)
_GROUP = "homogeneousCluster"  # the toolkit's name for the one instance group of a plain job

# SageMaker's API limits (CreateTrainingJob) on hyperparameters.
_MAX_HPS = 100
_MAX_HP_KEY = 256
_MAX_HP_VALUE = 2500


def is_reserved(key: str) -> bool:
    """Whether a hyperparameter is SageMaker's own, not the script's (as the toolkit splits them)."""
    return key in RESERVED_HYPERPARAMETERS or key.startswith("sagemaker_")


# -- hyperparameters ----------------------------------------------------------------------


def check_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters as a dict, after SageMaker's limits (100 keys, 256-char keys,
    2500-char JSON values) and a check that each value is JSON.

    Raises:
        InvalidArgument: naming the first bad key or value.
    """
    if not isinstance(hyperparameters, Mapping):
        raise InvalidArgument(f"hyperparameters must be a JSON object of name: value, not {type(hyperparameters).__name__}")
    if len(hyperparameters) > _MAX_HPS:
        raise InvalidArgument(f"at most {_MAX_HPS} hyperparameters are allowed (SageMaker's limit); got {len(hyperparameters)}")
    out: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_HP_KEY or "\x00" in key:
            raise InvalidArgument(f"invalid hyperparameter name {str(key)[:80]!r}: use 1-{_MAX_HP_KEY} characters")
        if "=" in key:
            raise InvalidArgument(f"hyperparameter name {key[:80]!r} cannot hold '=': it becomes the environment variable SM_HP_<NAME>")
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidArgument(f"hyperparameter {key!r} must be a JSON value (number, string, bool, list or object), not {type(value).__name__}") from None
        if len(encoded) > _MAX_HP_VALUE:
            raise InvalidArgument(f"hyperparameter {key!r} is {len(encoded)} characters as JSON; SageMaker allows at most {_MAX_HP_VALUE}")
        out[key] = value
    return out


def parse_hyperparameters(text: str) -> dict[str, Any]:
    """Hyperparameters from the JSON text a user gives (``'{"epochs": 5, "lr": 0.1}'``).

    Empty text is no hyperparameters.

    Raises:
        InvalidArgument: the text is not JSON, not an object, or breaks SageMaker's limits.
    """
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"hyperparameters are not valid JSON ({exc}); give an object such as '{{\"epochs\": 5, \"lr\": 0.1}}'") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"hyperparameters must be a JSON object such as '{{\"epochs\": 5}}', not a JSON {type(value).__name__}")
    return check_hyperparameters(value)


def decode_hyperparameters(raw: Mapping[str, str]) -> dict[str, Any]:
    """Values as the toolkit reads them from ``hyperparameters.json``: JSON when it parses, else the text."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (ValueError, TypeError):
            out[key] = value
    return out


def _split(hyperparameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(user, framework, sagemaker): the toolkit's split_by_criteria, then its framework params."""
    user = {k: v for k, v in hyperparameters.items() if not is_reserved(k)}
    sagemaker = {k: v for k, v in hyperparameters.items() if is_reserved(k)}
    framework = {k: v for k, v in sagemaker.items() if k not in RESERVED_HYPERPARAMETERS}
    return user, framework, sagemaker


# -- config files -------------------------------------------------------------------------


def _channel_types(channels: Mapping[str, str | None] | Sequence[str]) -> dict[str, str | None]:
    pairs = dict(channels) if isinstance(channels, Mapping) else {c: None for c in channels}
    return {check_channel(name): pairs[name] for name in sorted(pairs)}


def input_data_config(channels: Mapping[str, str | None] | Sequence[str]) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: one entry per channel, File mode, with its content type if known."""
    out = {}
    for name, content_type in _channel_types(channels).items():
        entry = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        if content_type:
            entry["ContentType"] = str(content_type)
        out[name] = entry
    return out


def resource_config(hosts: Sequence[str], current_host: str, instance_type: str = "local", network_interface_name: str = "eth0") -> dict[str, Any]:
    """``resourceconfig.json`` as SageMaker writes it for a job of one instance group.

    Raises:
        InvalidArgument: no hosts, or ``current_host`` is not one of them.
    """
    host_list = [str(h) for h in hosts]
    if not host_list:
        raise InvalidArgument("a training job needs at least one host (e.g. ['algo-1'])")
    if current_host not in host_list:
        raise InvalidArgument(f"current host {current_host!r} is not one of the hosts {host_list}")
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": _GROUP,
        "hosts": host_list,
        "instance_groups": [{"instance_group_name": _GROUP, "instance_type": instance_type, "hosts": host_list}],
        "network_interface_name": network_interface_name,
    }


def write_configs(
    layout: TrainingLayout,
    *,
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, str | None],
    hosts: Sequence[str],
    current_host: str,
    instance_type: str = "local",
) -> None:
    """Write ``input/config/``: hyperparameters.json, inputdataconfig.json, resourceconfig.json.

    Args:
        layout: the job's folders.
        hyperparameters: decoded values; each is written as a JSON-encoded string, as the
            SageMaker SDK sends them (``5`` -> ``"5"``, ``"gbtree"`` -> ``"\\"gbtree\\""``).
            Reserved keys (``sagemaker_*``) are written too: the toolkit reads them.
        channels: channel name -> content type (None: not given).
        hosts: every host of the job (``["algo-1"]``).
        current_host: this process's host.
        instance_type: written as ``current_instance_type``.

    Raises:
        InvalidArgument: a hyperparameter, channel or host is invalid.
    """
    hps = check_hyperparameters(hyperparameters)
    files = {
        "hyperparameters.json": {k: json.dumps(v) for k, v in hps.items()},
        "inputdataconfig.json": input_data_config(channels),
        "resourceconfig.json": resource_config(hosts, current_host, instance_type),
    }
    layout.config.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (layout.config / name).write_text(json.dumps(content, indent=2))


# -- command line -------------------------------------------------------------------------


def _arg_value(value: Any) -> str:
    # mapping.to_cmd_args: a mapping becomes k=v pairs by sorted key; anything else str().
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return "" if value is None else str(value)


def hyperparameter_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The script's arguments: user hyperparameters by sorted key, ``--key value`` (``-k value`` for one letter)."""
    user, _, _ = _split(hyperparameters)
    args: list[str] = []
    for key in sorted(user):
        args += [f"-{key}" if len(key) == 1 else f"--{key}", _arg_value(user[key])]
    return args


def _shebang(script: Path) -> list[str] | None:
    try:
        with open(script, "rb") as fh:
            first = fh.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = shlex.split(first[2:].decode("utf-8", "replace").strip())
    return words or None


def training_argv(
    entry_point: str,
    hyperparameters: Mapping[str, Any],
    *,
    python: str = sys.executable,
    code_dir: Path | None = None,
) -> list[str]:
    """The command that runs the user's entry point, run in the code folder, never through a shell.

    A ``.py`` file runs as ``python <entry_point> <args>``; a ``.sh`` file as a shell
    script: by its ``#!`` line when ``code_dir`` is given and it has one (the toolkit
    execs ``./<entry_point>``, so the kernel reads that line), else ``/bin/sh``. Each
    argument is one argv item, so a value with spaces stays one argument.

    Raises:
        InvalidArgument: the entry point is neither a .py nor a .sh file.
    """
    if not isinstance(entry_point, str) or not entry_point.endswith((".py", ".sh")):
        raise InvalidArgument(f"entry point {str(entry_point)[:80]!r} must be a Python (.py) or shell (.sh) script")
    args = hyperparameter_args(hyperparameters)
    if entry_point.endswith(".py"):
        return [python, entry_point, *args]
    interpreter = _shebang(Path(code_dir) / entry_point) if code_dir is not None else None
    return [*(interpreter or ["/bin/sh"]), entry_point, *args]


# -- environment --------------------------------------------------------------------------


def _env_value(value: Any) -> str:
    # mapping.to_env_vars: text as it is, None as "", anything else compact sorted JSON.
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def training_env(
    layout: TrainingLayout,
    *,
    entry_point: str,
    hyperparameters: Mapping[str, Any],
    channels: Mapping[str, str | None] | Sequence[str],
    hosts: Sequence[str],
    current_host: str,
    job_name: str,
    num_cpus: int,
    num_gpus: int,
    instance_type: str = "local",
    log_level: int = 20,
    framework_params: Mapping[str, Any] | None = None,
    pythonpath: str | None = None,
) -> dict[str, str]:
    """The environment the script runs with (to lay over the runner's own).

    Every ``SM_*`` variable ``Environment().to_env_vars()`` makes, with the same
    values (``SM_TRAINING_ENV`` holds the toolkit's dictionary, key for key), plus
    ``SAGEMAKER_BASE_DIR`` (so the toolkit reads this layout), ``SAGEMAKER_PROGRAM``,
    ``TRAINING_JOB_NAME``, ``SAGEMAKER_JOB_NAME``, ``CURRENT_HOST``,
    ``PYTHONUNBUFFERED=1`` (logs arrive line by line) and ``PYTHONPATH`` with the
    code folder first, then ``pythonpath`` (the caller's, if any).

    Args:
        channels: the channel names, or channel -> content type as given to :func:`write_configs`
            (``SM_INPUT_DATA_CONFIG`` repeats that file).
        hyperparameters: decoded values, reserved keys included (they are split off as the
            toolkit does: ``sagemaker_container_log_level`` sets the log level, other
            ``sagemaker_*`` keys become ``SM_FRAMEWORK_PARAMS``).
        framework_params: more framework parameters, over those from the hyperparameters.

    Raises:
        InvalidArgument: a channel or host is invalid.
    """
    user, framework, sagemaker = _split(hyperparameters)
    framework.update(framework_params or {})
    resources = resource_config(hosts, current_host, instance_type)
    data_config = input_data_config(channels)
    channel_dirs = {name: str(layout.channel(name)) for name in data_config}
    hosts_list = resources["hosts"]
    distributed = [_GROUP] if any(framework.get(flag) for flag in _DISTRIBUTION_FLAGS) else []
    distribution_groups = framework.get("sagemaker_distribution_instance_groups", distributed)
    distribution_hosts = list(hosts_list) if _GROUP in distribution_groups else []
    master = distribution_hosts[0] if distribution_hosts else hosts_list[0]
    mp = _env_value(user["mp_parameters"]) if "mp_parameters" in user else None
    module_name = entry_point.removesuffix(".py")
    props: dict[str, Any] = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": channel_dirs,
        "current_host": current_host,
        "current_instance_group": _GROUP,
        "current_instance_group_hosts": list(hosts_list),
        "current_instance_type": instance_type,
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": None,
        "hosts": hosts_list,
        "hyperparameters": user,
        "input_config_dir": str(layout.config),
        "input_data_config": data_config,
        "input_dir": str(layout.input),
        "instance_groups": [_GROUP],
        "instance_groups_dict": {_GROUP: resources["instance_groups"][0]},
        "is_hetero": False,
        "is_master": current_host == master,
        "is_modelparallel_enabled": (mp and mp != "{}") if mp is not None else None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": job_name,
        "log_level": sagemaker.get("sagemaker_container_log_level", log_level),
        "master_hostname": master,
        "model_dir": str(layout.model),
        "module_dir": str(sagemaker.get("sagemaker_submit_directory", layout.code)),
        "module_name": module_name,
        "network_interface_name": resources["network_interface_name"],
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": 0,
        "output_data_dir": str(layout.output_data),
        "output_dir": str(layout.output),
        "output_intermediate_dir": str(layout.intermediate),
        "resource_config": resources,
        "topology": [],
        "user_entry_point": entry_point,
    }
    env: dict[str, Any] = {
        "hosts": props["hosts"],
        "network_interface_name": props["network_interface_name"],
        "hps": user,
        "user_entry_point": entry_point,
        "framework_params": framework,
        "resource_config": resources,
        "input_data_config": data_config,
        "output_data_dir": props["output_data_dir"],
        "channels": sorted(channel_dirs),
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_instance_group": _GROUP,
        "current_instance_group_hosts": props["current_instance_group_hosts"],
        "instance_groups": props["instance_groups"],
        "instance_groups_dict": props["instance_groups_dict"],
        "distribution_instance_groups": distribution_groups,
        "is_hetero": False,
        "module_name": module_name,
        "log_level": props["log_level"],
        "framework_module": None,
        "input_dir": props["input_dir"],
        "input_config_dir": props["input_config_dir"],
        "output_dir": props["output_dir"],
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": 0,
        "model_dir": props["model_dir"],
        "module_dir": props["module_dir"],
        "training_env": props,
        "user_args": hyperparameter_args(user),
        "output_intermediate_dir": props["output_intermediate_dir"],
    }
    env.update({f"channel_{name}": path for name, path in channel_dirs.items()})
    env.update({f"hp_{key}": value for key, value in user.items()})
    out = {f"SM_{key.upper()}": _env_value(value) for key, value in env.items()}
    code = str(layout.code)
    out.update(
        {
            "SAGEMAKER_BASE_DIR": str(layout.base),
            "SAGEMAKER_PROGRAM": entry_point,
            "TRAINING_JOB_NAME": job_name,
            "SAGEMAKER_JOB_NAME": str(sagemaker.get("sagemaker_job_name", job_name)),
            "CURRENT_HOST": current_host,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": f"{code}:{pythonpath}" if pythonpath else code,
        }
    )
    return out
