"""Prep & EDA: profiles (data quality and insights reports) and recipes (versioned,
fitted data-prep steps), stored as resources beside the datasets they describe.

The engines live in :mod:`kiln.prep.report`, :mod:`kiln.prep.recipes` and
:mod:`kiln.prep.stats`; the names here are the services and models the faces use.
They load on first use, so importing a subpackage (``kiln.prep.stats``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kiln.core.gc_roots import register_gc_root

if TYPE_CHECKING:
    from kiln.prep._models import (
        ApplyResult,
        FitInfo,
        PreviewStep,
        ProfileInfo,
        ProfileReport,
        RecipeInfo,
        RecipePreview,
        RecipeVersion,
    )
    from kiln.prep.profiles import ProfileService
    from kiln.prep.recipes_service import RecipeService

__all__ = [
    "ApplyResult",
    "FitInfo",
    "PreviewStep",
    "ProfileInfo",
    "ProfileReport",
    "ProfileService",
    "RecipeInfo",
    "RecipePreview",
    "RecipeService",
    "RecipeVersion",
]

_WHERE = {
    "ProfileService": "kiln.prep.profiles",
    "RecipeService": "kiln.prep.recipes_service",
    **{name: "kiln.prep._models" for name in ("ApplyResult", "FitInfo", "PreviewStep", "ProfileInfo", "ProfileReport", "RecipeInfo", "RecipePreview", "RecipeVersion")},
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.prep' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _profile_keys(conn: Any) -> set[str]:
    from kiln.prep.profiles import referenced_keys

    return referenced_keys(conn)


def _fit_keys(conn: Any) -> set[str]:
    from kiln.prep.recipes_service import referenced_keys

    return referenced_keys(conn)


register_gc_root("profiles/", _profile_keys)
register_gc_root("recipes/", _fit_keys)
