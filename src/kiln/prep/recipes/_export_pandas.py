"""Placeholder: replaced below."""

from __future__ import annotations

from ._errors import RecipeError
from ._recipe import FittedRecipe


def export_pandas(fitted: FittedRecipe) -> str:
    raise RecipeError("pandas export is not available yet")
