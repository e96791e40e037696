"""Recipes: ordered, typed data-prep steps with fitted state, previews and export.

A recipe is a list of steps ``{op, params, when?}`` stored as JSON or YAML::

    steps:
      - op: fill_missing
        params: {columns: [age], strategy: median}
      - op: one_hot
        params: {columns: [city], handle_unknown: ignore}
      - op: clip
        params: {columns: [income], upper: 1.0e6}
        when: "country = 'FR'"

``Recipe.validate(schema)`` checks it before any data is read;
``Recipe.fit(data)`` learns each step's state (means, categories, bin
edges...) into a JSON-serialisable ``FittedRecipe``, whose ``apply`` is
deterministic; ``export_python`` writes a standalone polars (or pandas)
script that reproduces ``apply``. ``when`` is a SQL row condition: the step
changes only the rows where it holds and learns its state from them.
"""

from . import (  # noqa: F401
    ops_columns,
    ops_combine,
    ops_dates,
    ops_encode,
    ops_missing,
    ops_outliers,
    ops_rows,
    ops_scale,
    ops_strings,
)
from ._engine import Frame, Resolver, Step
from ._errors import RecipeError
from ._export import export_python
from ._recipe import FittedRecipe, OpInfo, Preview, Recipe, list_ops
from ._schema import SchemaLike

__all__ = [
    "FittedRecipe",
    "Frame",
    "OpInfo",
    "Preview",
    "Recipe",
    "RecipeError",
    "Resolver",
    "SchemaLike",
    "Step",
    "export_python",
    "list_ops",
]
