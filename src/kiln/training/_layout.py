"""A training job's folder, laid out like SageMaker's ``/opt/ml`` (CONTRACTS.md §1)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.core.errors import InvalidArgument

__all__ = ["TrainingLayout", "check_channel", "make_layout"]

# SageMaker's ChannelName: 1-64 of these characters.
_CHANNEL_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_channel(name: str) -> str:
    """A SageMaker channel name (it names a folder and ``SM_CHANNEL_<NAME>``)."""
    if not isinstance(name, str) or not _CHANNEL_RE.fullmatch(name) or name in (".", ".."):
        raise InvalidArgument(f"invalid channel name {str(name)[:80]!r}: use 1-64 letters, digits, '.', '-' or '_' (as SageMaker)")
    return name


@dataclass(frozen=True)
class TrainingLayout:
    """The folders of one job, laid out like SageMaker's ``/opt/ml`` under ``base``."""

    base: Path

    @property
    def code(self) -> Path:
        return self.base / "code"

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def config(self) -> Path:
        return self.input / "config"

    @property
    def data(self) -> Path:
        return self.input / "data"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def intermediate(self) -> Path:
        return self.output / "intermediate"

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"

    @property
    def failure_file(self) -> Path:
        return self.output / "failure"

    @property
    def success_file(self) -> Path:
        return self.output / "success"

    def channel(self, name: str) -> Path:
        """``input/data/<name>``.

        Raises:
            InvalidArgument: the name is not a SageMaker channel name.
        """
        return self.data / check_channel(name)


def make_layout(base: Path, channels: Sequence[str]) -> TrainingLayout:
    """Create every folder of a job under ``base`` (made absolute), one per channel.

    Existing folders are kept (``checkpoints/`` persists across retries).

    Raises:
        InvalidArgument: a channel name is invalid or given twice.
    """
    names = list(channels)
    for name in names:
        check_channel(name)
    if len(set(names)) != len(names):
        raise InvalidArgument(f"channel names must be unique; got {names}")
    layout = TrainingLayout(Path(base).absolute())
    for folder in (layout.code, layout.config, layout.model, layout.output_data, layout.intermediate, layout.checkpoints):
        folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        layout.channel(name).mkdir(parents=True, exist_ok=True)
    return layout
