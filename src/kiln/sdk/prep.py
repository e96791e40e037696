"""SDK: ``client.recipes`` and the profile calls behind ``client.datasets.profile*``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from kiln.core.errors import InvalidArgument
from kiln.core.names import parse_ref
from kiln.prep._models import ApplyResult, FitInfo, ProfileInfo, RecipeInfo, RecipePreview, RecipeVersion
from kiln.prep import _ops as ops
from kiln.sdk._base import Namespace
from kiln.sdk._base import seg as _seg

__all__ = ["Recipes", "profile", "profile_report", "profiles"]


def _part(ref: str, kind: str) -> str:
    """A checked name or ref as a URL path segment: a '/' in it would reach the router,
    not the name check, so remote callers get the same error as local ones."""
    parse_ref(ref, kind=kind)
    return _seg(ref)


# -- profiles (reached through client.datasets) ------------------------------------------


def profile(ns: Namespace, ref: str, *, target: str | None = None) -> ProfileInfo:
    """Profile a dataset version and store the HTML and JSON reports with it."""
    return ns._call(ops.PROFILE, ref=ref, target=target)  # type: ignore[no-any-return]


def profile_report(ns: Namespace, ref: str, *, format: Literal["html", "json"] = "html") -> bytes | dict[str, Any]:
    """The latest profile of a version: the HTML page as bytes, or the JSON document as a dict."""
    if format not in ("html", "json"):
        raise InvalidArgument(f"unknown report format {format!r}: use html or json")
    if format == "json":
        return ns._call(ops.PROFILE_GET, ref=ref).profile  # type: ignore[no-any-return]
    # The HTML page is a document, not JSON: the one hand-written route of profiles.
    if ns._local:
        from kiln.prep.profiles import ProfileService

        return ns._svc(ProfileService).report(ref, format="html")  # type: ignore[no-any-return]
    return ns._http("GET", f"/v1/datasets/{_part(ref, 'dataset')}/profile.html")  # type: ignore[no-any-return]


def profiles(ns: Namespace, name: str) -> list[ProfileInfo]:
    """Every stored profile of a dataset's current versions, newest first."""
    return ns._call(ops.PROFILES, name=name)  # type: ignore[no-any-return]


# -- recipes -----------------------------------------------------------------------------


def _recipe_arg(recipe: Any) -> Any:
    """What the SDK sends for a recipe: a file's text (a path is read here, where the file
    is), an engine ``Recipe`` as its document; text, mappings and lists as they are."""
    from kiln.prep.recipes import Recipe

    recipe = _read_recipe(recipe)
    if isinstance(recipe, Recipe):
        return recipe.to_dict()
    if isinstance(recipe, bytes):
        return recipe.decode("utf-8", "replace")
    if isinstance(recipe, tuple):
        return list(recipe)
    return recipe


def _read_recipe(recipe: Any) -> Any:
    """A path (Path, or a str naming an existing file) becomes its text."""
    if isinstance(recipe, os.PathLike) or (isinstance(recipe, str) and "\n" not in recipe and not recipe.lstrip().startswith(("{", "[")) and len(recipe) < 4096):
        path = Path(recipe)
        if not path.is_file():
            if isinstance(recipe, os.PathLike) or path.suffix.lower() in (".json", ".yaml", ".yml"):
                raise InvalidArgument(f"recipe file {str(recipe)!r} does not exist")
            return recipe
        if path.stat().st_size > (1 << 20):
            raise InvalidArgument(f"recipe file {str(recipe)!r} is larger than 1 MB")
        return path.read_text(encoding="utf-8", errors="replace")
    return recipe


class Recipes(Namespace):
    """Recipes: versioned, validated data-prep steps that fit, apply, preview and export."""

    def create(self, name: str, recipe: Any, *, description: str | None = None) -> RecipeVersion:
        """Store a recipe as the next version of ``name`` (unchanged content makes no new version).

        Args:
            name: recipe name.
            recipe: a ``kiln.prep.recipes.Recipe``, ``{"steps": [...]}``, a list of steps,
                JSON or YAML text, or the path of a ``.json``/``.yaml`` file.
            description: replaces the recipe's own description.

        Raises:
            InvalidArgument: unknown op, unknown param, wrong param type... naming the step.
        """
        return self._call(ops.CREATE, name=name, recipe=_recipe_arg(recipe), description=description)  # type: ignore[no-any-return]

    def list(self) -> list[RecipeInfo]:
        """Every recipe with its latest version."""
        return self._call(ops.LIST)  # type: ignore[no-any-return]

    def get(self, ref: str) -> RecipeVersion:
        """A version: ``name`` (latest) or ``name@2``; ``.to_recipe()`` gives the engine's Recipe."""
        return self._call(ops.GET, ref=ref)  # type: ignore[no-any-return]

    def versions(self, name: str) -> list[RecipeVersion]:
        """Every version of a recipe, oldest first."""
        return self._call(ops.VERSIONS, name=name)  # type: ignore[no-any-return]

    def preview(self, ref: str, dataset: str, *, n: int = 20, sample_rows: int = 10_000) -> RecipePreview:
        """Run the recipe on the first ``sample_rows`` rows of ``dataset``; fast on large data."""
        return self._call(ops.PREVIEW, ref=ref, dataset=dataset, n=n, sample_rows=sample_rows)  # type: ignore[no-any-return]

    def apply(self, ref: str, dataset: str, *, output: str, description: str | None = None) -> ApplyResult:
        """Fit on ``dataset``, apply, and write a new version of dataset ``output`` whose lineage
        names the input and the recipe version."""
        return self._call(ops.APPLY, ref=ref, dataset=dataset, output_dataset=output, description=description)  # type: ignore[no-any-return]

    def export(self, ref: str, *, to: str = "python", engine: str = "polars", dataset: str | None = None) -> str:
        """A standalone Python script (polars or pandas) that reproduces ``apply``.

        Recipes with fitted steps need ``dataset`` (the state of an earlier apply on it is reused).
        """
        # The script is a document (text/x-python), not JSON: the one hand-written recipe route.
        if self._local:
            from kiln.prep.recipes_service import RecipeService

            return self._svc(RecipeService).export(ref, to=to, engine=engine, dataset=dataset)
        params = {"to": to, "engine": engine, "dataset": dataset}
        data = self._http("GET", f"/v1/recipes/{_part(ref, 'recipe')}/export", params=params)
        return data.decode() if isinstance(data, bytes) else str(data)

    def fitted(self, ref: str, dataset: str) -> Any:
        """The recipe fitted on ``dataset`` as a ``kiln.prep.recipes.FittedRecipe``, to apply elsewhere."""
        from kiln.prep.recipes import FittedRecipe

        return FittedRecipe.from_dict(self._call(ops.FITTED, ref=ref, dataset=dataset))

    def fits(self, ref: str) -> list[FitInfo]:
        """Stored fitted states (one per apply), newest first."""
        return self._call(ops.FITS, ref=ref)  # type: ignore[no-any-return]

    def ops(self) -> list[Any]:
        """Every op a step may use, with its params (``kiln.prep.recipes.OpInfo``)."""
        from kiln.prep.recipes import list_ops

        return list_ops()
