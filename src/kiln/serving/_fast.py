"""Fast paths: a model's predictions without the framework's per-call overhead, checked at load.

``attach_fast_path`` is called by :meth:`Servable.load` (unless ``fast_path=False``); a fast
path serves only after it gave the framework's own outputs on sample rows.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attach_fast_path"]


def attach_fast_path(servable: Any) -> None:
    """Give ``servable`` a fast path where one reproduces its framework's predictions (none yet)."""
    return None
