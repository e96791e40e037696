"""What a built-in algorithm reads from SageMaker's training contract (CONTRACTS.md §1).

The ``SM_*`` variables come first; the files under ``SAGEMAKER_BASE_DIR`` (``input/config/*.json``,
``input/data/<channel>/``) fill in what is not set, so a job folder alone is enough too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.training.builtin._base import BuiltinError

__all__ = ["TrainingEnv"]


@dataclass(frozen=True)
class TrainingEnv:
    """The training job as the algorithm sees it."""

    hyperparameters: dict[str, Any]
    channels: dict[str, Path]
    content_types: dict[str, str | None]
    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    num_cpus: int
    hosts: list[str] = field(default_factory=lambda: ["algo-1"])
    current_host: str = "algo-1"

    @property
    def host_index(self) -> int:
        return self.hosts.index(self.current_host) if self.current_host in self.hosts else 0

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TrainingEnv:
        """Read the environment (``os.environ`` by default).

        Raises:
            BuiltinError: a variable or config file that is not what the contract says.
        """
        env = os.environ if environ is None else environ
        base = Path(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", base / "input" / "config"))
        hps = _json_env(env, "SM_HPS")
        if hps is None:
            hps = {k: _decode(v) for k, v in (_json_file(config_dir / "hyperparameters.json") or {}).items()}
        if not isinstance(hps, dict):
            raise BuiltinError("SM_HPS must be a JSON object of hyperparameters")
        data_config = _json_env(env, "SM_INPUT_DATA_CONFIG")
        if data_config is None:
            data_config = _json_file(config_dir / "inputdataconfig.json") or {}
        channels = _channels(env, base, data_config)
        content_types = {name: (data_config.get(name) or {}).get("ContentType") for name in channels}
        resource = _json_env(env, "SM_RESOURCE_CONFIG") or _json_file(config_dir / "resourceconfig.json") or {}
        hosts = _json_env(env, "SM_HOSTS") or resource.get("hosts") or ["algo-1"]
        current = env.get("SM_CURRENT_HOST") or resource.get("current_host") or hosts[0]
        output_dir = Path(env.get("SM_OUTPUT_DIR", base / "output"))
        return cls(
            hyperparameters=hps,
            channels=channels,
            content_types=content_types,
            model_dir=Path(env.get("SM_MODEL_DIR", base / "model")),
            output_dir=output_dir,
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", output_dir / "data")),
            num_cpus=_num_cpus(env.get("SM_NUM_CPUS")),
            hosts=[str(h) for h in hosts],
            current_host=str(current),
        )


def _channels(env: Mapping[str, str], base: Path, data_config: Mapping[str, Any]) -> dict[str, Path]:
    names = _json_env(env, "SM_CHANNELS")
    if names is None:
        data_dir = base / "input" / "data"
        names = sorted(set(data_config) | ({p.name for p in data_dir.iterdir() if p.is_dir()} if data_dir.is_dir() else set()))
    out: dict[str, Path] = {}
    for name in names:
        path = env.get(f"SM_CHANNEL_{str(name).upper()}")
        out[str(name)] = Path(path) if path else base / "input" / "data" / str(name)
    return out


def _num_cpus(value: str | None) -> int:
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise BuiltinError(f"SM_NUM_CPUS must be a whole number, got {value!r}") from None
    return os.cpu_count() or 1


def _json_env(env: Mapping[str, str], name: str) -> Any:
    raw = env.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise BuiltinError(f"{name} must hold JSON, got {raw[:80]!r}") from None


def _json_file(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BuiltinError(f"{path.name} is not valid JSON: {exc}") from None


def _decode(value: Any) -> Any:
    # hyperparameters.json holds JSON-encoded strings; a bare word (SageMaker's API sends those) stays a string.
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
