"""The recipe engine's error type."""

from __future__ import annotations

from typing import Any

from kiln.core.errors import InvalidArgument


class RecipeError(InvalidArgument, ValueError):
    """A recipe is invalid, or a step failed on the data it was given.

    The message names the step (numbered from 1, as a person reads the list)
    and its op, e.g. ``step 3 (fill_missing): column "agee" not found; ...``.
    It is an ``InvalidArgument`` (HTTP 400, CLI exit 2) and a ``ValueError``.

    Attributes:
        reason: the message without the step prefix.
        step_index: 0-based position of the failing step in ``recipe.steps``,
            or None when the problem is not tied to one step.
        op: the failing step's op name, or None.
        details: machine-readable extras (``column``, ``param``, ``step_index``, ``op``...).
    """

    def __init__(
        self,
        message: str,
        *,
        step_index: int | None = None,
        op: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.reason = message
        self.step_index = step_index
        self.op = op
        extra = dict(details or {})
        if step_index is not None:
            extra.update(step_index=step_index, op=op)
        super().__init__(_format(message, step_index, op), details=extra)

    def at(self, step_index: int, op: str) -> RecipeError:
        """Return a copy of this error attached to a step."""
        details = {k: v for k, v in self.details.items() if k not in ("step_index", "op")}
        return RecipeError(self.reason, step_index=step_index, op=op, details=details)


def _format(message: str, step_index: int | None, op: str | None) -> str:
    if step_index is None:
        return message
    return f"step {step_index + 1} ({op or '?'}): {message}"
