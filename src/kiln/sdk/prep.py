"""SDK: ``client.recipes`` and the profile calls behind ``client.datasets.profile*``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from kiln.core.errors import InvalidArgument
from kiln.core.names import parse_ref
from kiln.prep._models import ApplyResult, FitInfo, ProfileInfo, RecipeInfo, RecipePreview, RecipeVersion
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
    if ns._local:
        from kiln.prep.profiles import ProfileService

        return ns._svc(ProfileService).create(ref, target=target)
    return ProfileInfo.model_validate(ns._http("POST", f"/v1/datasets/{_part(ref, 'dataset')}/profile", json={"target": target}))


def profile_report(ns: Namespace, ref: str, *, format: Literal["html", "json"] = "html") -> bytes | dict[str, Any]:
    """The latest profile of a version: the HTML page as bytes, or the JSON document as a dict."""
    if format not in ("html", "json"):
        raise InvalidArgument(f"unknown report format {format!r}: use html or json")
    if ns._local:
        from kiln.prep.profiles import ProfileService

        return ns._svc(ProfileService).report(ref, format=format)  # type: ignore[no-any-return]
    if format == "html":
        return ns._http("GET", f"/v1/datasets/{_part(ref, 'dataset')}/profile.html")  # type: ignore[no-any-return]
    return ns._http("GET", f"/v1/datasets/{_part(ref, 'dataset')}/profile")["profile"]  # type: ignore[no-any-return]


def profiles(ns: Namespace, name: str) -> list[ProfileInfo]:
    """Every stored profile of a dataset's current versions, newest first."""
    if ns._local:
        from kiln.prep.profiles import ProfileService

        return ns._svc(ProfileService).list(name)
    return [ProfileInfo.model_validate(p) for p in ns._http("GET", f"/v1/datasets/{_part(name, 'dataset')}/profiles")]


# -- recipes -----------------------------------------------------------------------------


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
        recipe = _read_recipe(recipe)
        if self._local:
            from kiln.prep.recipes_service import RecipeService

            return self._svc(RecipeService).create(name, recipe, description=description)
        from kiln.prep.recipes_service import parse_recipe

        body = parse_recipe(recipe, description=description).to_dict()
        return RecipeVersion.model_validate(self._http("POST", f"/v1/recipes/{_part(name, 'recipe')}/versions", json=body))

    def list(self) -> list[RecipeInfo]:
        if self._local:
            return self._service().list()
        return [RecipeInfo.model_validate(r) for r in self._http("GET", "/v1/recipes")]

    def get(self, ref: str) -> RecipeVersion:
        """A version: ``name`` (latest) or ``name@2``; ``.to_recipe()`` gives the engine's Recipe."""
        if self._local:
            return self._service().get(ref)
        return RecipeVersion.model_validate(self._http("GET", f"/v1/recipes/{_part(ref, 'recipe')}"))

    def versions(self, name: str) -> list[RecipeVersion]:
        if self._local:
            return self._service().versions(name)
        return [RecipeVersion.model_validate(v) for v in self._http("GET", f"/v1/recipes/{_part(name, 'recipe')}/versions")]

    def preview(self, ref: str, dataset: str, *, n: int = 20, sample_rows: int = 10_000) -> RecipePreview:
        """Run the recipe on the first ``sample_rows`` rows of ``dataset``; fast on large data."""
        if self._local:
            return self._service().preview(ref, dataset, n=n, sample_rows=sample_rows)
        params = {"dataset": dataset, "n": n, "sample_rows": sample_rows}
        return RecipePreview.model_validate(self._http("GET", f"/v1/recipes/{_part(ref, 'recipe')}/preview", params=params))

    def apply(self, ref: str, dataset: str, *, output: str, description: str | None = None) -> ApplyResult:
        """Fit on ``dataset``, apply, and write a new version of dataset ``output`` whose lineage
        names the input and the recipe version."""
        if self._local:
            return self._service().apply(ref, dataset, output=output, description=description)
        body = {"dataset": dataset, "output_dataset": output, "description": description}
        return ApplyResult.model_validate(self._http("POST", f"/v1/recipes/{_part(ref, 'recipe')}/apply", json=body))

    def export(self, ref: str, *, to: str = "python", engine: str = "polars", dataset: str | None = None) -> str:
        """A standalone Python script (polars or pandas) that reproduces ``apply``.

        Recipes with fitted steps need ``dataset`` (the state of an earlier apply on it is reused).
        """
        if self._local:
            return self._service().export(ref, to=to, engine=engine, dataset=dataset)
        params = {"to": to, "engine": engine, "dataset": dataset}
        data = self._http("GET", f"/v1/recipes/{_part(ref, 'recipe')}/export", params=params)
        return data.decode() if isinstance(data, bytes) else str(data)

    def fitted(self, ref: str, dataset: str) -> Any:
        """The recipe fitted on ``dataset`` as a ``kiln.prep.recipes.FittedRecipe``, to apply elsewhere."""
        if self._local:
            return self._service().fitted(ref, dataset)
        from kiln.prep.recipes import FittedRecipe

        return FittedRecipe.from_dict(self._http("GET", f"/v1/recipes/{_part(ref, 'recipe')}/fitted", params={"dataset": dataset}))

    def fits(self, ref: str) -> list[FitInfo]:
        """Stored fitted states (one per apply), newest first."""
        if self._local:
            return self._service().fits(ref)
        return [FitInfo.model_validate(f) for f in self._http("GET", f"/v1/recipes/{_part(ref, 'recipe')}/fits")]

    def ops(self) -> list[Any]:
        """Every op a step may use, with its params (``kiln.prep.recipes.OpInfo``)."""
        from kiln.prep.recipes import list_ops

        return list_ops()

    def _service(self) -> Any:
        from kiln.prep.recipes_service import RecipeService

        return self._svc(RecipeService)
