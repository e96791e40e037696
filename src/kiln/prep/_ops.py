"""The prep stage's operations (profiles and recipes), declared once (see :mod:`kiln.core.ops`).

The special cases stay hand-written routes in ``kiln.server.routes.prep``: a
profile's HTML page and a recipe's exported script are documents, not JSON.
"""

from __future__ import annotations

from typing import Any

from kiln.core.ops import Operation, declare
from kiln.prep._models import ApplyResult, FitInfo, ProfileInfo, ProfileReport, RecipeInfo, RecipePreview, RecipeVersion

_PROFILES = "kiln.prep.profiles:ProfileService"
_RECIPES = "kiln.prep.recipes_service:RecipeService"


def _profile(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"profiles.{name}", method=method, path=path, role=role, service=_PROFILES, call=call, response=response, kind="dataset", **kw)  # type: ignore[arg-type]


def _recipe(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"recipes.{name}", method=method, path=path, role=role, service=_RECIPES, call=call, response=response, kind="recipe", **kw)  # type: ignore[arg-type]


ALL = declare(
    _profile("create", "POST", "/v1/datasets/{ref}/profile", "editor", "create", ProfileInfo, body=("target",), status=201),
    _profile("get", "GET", "/v1/datasets/{ref}/profile", "viewer", "get_report", ProfileReport),
    _profile("list", "GET", "/v1/datasets/{name}/profiles", "viewer", "list", list[ProfileInfo]),
    _recipe("list", "GET", "/v1/recipes", "viewer", "list", list[RecipeInfo]),
    _recipe("create", "POST", "/v1/recipes/{name}/versions", "editor", "create", RecipeVersion, body=("recipe", "steps", "description", "format"), status=201),
    _recipe("versions", "GET", "/v1/recipes/{name}/versions", "viewer", "versions", list[RecipeVersion]),
    _recipe("get", "GET", "/v1/recipes/{ref}", "viewer", "get", RecipeVersion),
    _recipe("preview", "GET", "/v1/recipes/{ref}/preview", "viewer", "preview", RecipePreview),
    _recipe("apply", "POST", "/v1/recipes/{ref}/apply", "editor", "apply", ApplyResult, body=("dataset", "output_dataset", "description"), status=201),
    _recipe("fitted", "GET", "/v1/recipes/{ref}/fitted", "viewer", "fitted_state", dict[str, Any]),
    _recipe("fits", "GET", "/v1/recipes/{ref}/fits", "viewer", "fits", list[FitInfo]),
)
PROFILE, PROFILE_GET, PROFILES, LIST, CREATE, VERSIONS, GET, PREVIEW, APPLY, FITTED, FITS = ALL
