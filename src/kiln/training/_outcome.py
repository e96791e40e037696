"""What a finished script leaves behind, read as SageMaker reads it: metric values from
its log by the job's metric definitions (``[{"Name", "Regex"}]``), and the failure reason
(``output/failure``, else the end of the log)."""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Callable, Mapping, Sequence

from kiln.core.errors import InvalidArgument
from kiln.training._layout import TrainingLayout

__all__ = ["FAILURE_CHARS", "failure_reason", "metric_matcher"]

# SageMaker's limits: 40 metric definitions; FailureReason holds 1024 characters.
_MAX_METRICS = 40
_MAX_METRIC_LINE = 64 << 10  # characters of one log line a metric regex looks at
FAILURE_CHARS = 1024


def metric_matcher(definitions: Sequence[Mapping[str, str]], *, limit: int | None = _MAX_METRICS) -> Callable[[str], list[tuple[str, float]]]:
    """A function from one log line to the ``(name, value)`` pairs the definitions find in it.

    Each definition is ``{"Name": ..., "Regex": ...}``; the first capture group of each
    match is the value; a match that is not a finite number is skipped.

    ``limit`` is SageMaker's cap on a user's definitions; the built-in algorithms' own
    definitions (one per metric they can print) are not held to it.

    Raises:
        InvalidArgument: naming the first definition with a bad Name or Regex.
    """
    if not isinstance(definitions, Sequence) or isinstance(definitions, (str, bytes)):
        raise InvalidArgument('metric definitions must be a list of {"Name": ..., "Regex": ...}')
    if limit is not None and len(definitions) > limit:
        raise InvalidArgument(f"at most {_MAX_METRICS} metric definitions are allowed (SageMaker's limit); got {len(definitions)}")
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for i, item in enumerate(definitions):
        if not isinstance(item, Mapping):
            raise InvalidArgument(f'metric definition {i} must be {{"Name": ..., "Regex": ...}}, not {type(item).__name__}')
        name, regex = item.get("Name"), item.get("Regex")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise InvalidArgument(f"metric definition {i} needs a Name of 1-255 characters")
        if not isinstance(regex, str) or not 1 <= len(regex) <= 500:
            raise InvalidArgument(f"metric {name!r} needs a Regex of 1-500 characters")
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise InvalidArgument(f"metric {name!r} has an invalid Regex {regex!r}: {exc}") from None
        if pattern.groups < 1:
            raise InvalidArgument(f"metric {name!r}: Regex {regex!r} has no capture group; put the value in one, e.g. 'loss=([0-9.]+)'")
        compiled.append((name, pattern))

    def match(line: str) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        text = line[:_MAX_METRIC_LINE]
        for name, pattern in compiled:
            for m in pattern.finditer(text):
                try:
                    value = float(m.group(1))
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    found.append((name, value))
        return found

    return match


def failure_reason(layout: TrainingLayout, log_tail: str, exit_code: int | None) -> str:
    """Why a job failed, at most 1024 characters (SageMaker's FailureReason).

    The first 1024 characters of ``output/failure`` when the script wrote it;
    else how the process ended (exit code or signal) and the end of its log.
    """
    try:
        with open(layout.failure_file, encoding="utf-8", errors="replace") as fh:
            written = fh.read(FAILURE_CHARS)
    except OSError:
        written = ""
    if written.strip():
        return written
    if exit_code is None:
        head = "the training process ended without an exit status"
    elif exit_code < 0:
        try:
            head = f"the training process was killed by signal {signal.Signals(-exit_code).name}"
        except ValueError:
            head = f"the training process was killed by signal {-exit_code}"
    else:
        head = f"the training script exited with code {exit_code}"
    tail = log_tail.strip()
    if not tail:
        return head[:FAILURE_CHARS]
    head += "; end of its log:\n"
    room = FAILURE_CHARS - len(head)
    return head + (tail if len(tail) <= room else "..." + tail[-(room - 3):])
