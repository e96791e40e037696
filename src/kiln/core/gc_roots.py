"""Which stored objects each stage owns: the registry ``kiln gc`` reads.

Kept apart from :mod:`kiln.core.gc` so a stage can register its roots on
import without loading the database layer (``kiln.prep.stats`` stays light).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["GcRoot", "register_gc_root", "roots"]


@dataclass(frozen=True)
class GcRoot:
    prefix: str
    referenced: Callable[[Any], set[str]]  # a SQLAlchemy Connection -> keys or prefixes


_ROOTS: list[GcRoot] = []


def register_gc_root(prefix: str, referenced: Callable[[Any], set[str]]) -> None:
    """Declare that objects under ``prefix`` are live only when ``referenced`` lists them.

    ``referenced`` takes a SQLAlchemy connection and may return exact keys or
    folder prefixes ending in '/'.
    """
    _ROOTS.append(GcRoot(prefix.rstrip("/") + "/", referenced))


def roots() -> list[GcRoot]:
    """Every registered root, in registration order."""
    return list(_ROOTS)
