"""REST: dataset profiles under /v1/datasets/{ref}/profile, and /v1/recipes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import HTMLResponse, PlainTextResponse

from kiln.prep._models import (
    ApplyRequest,
    ApplyResult,
    FitInfo,
    ProfileInfo,
    ProfileReport,
    ProfileRequest,
    RecipeDocument,
    RecipeInfo,
    RecipePreview,
    RecipeVersion,
)
from kiln.prep.profiles import ProfileService
from kiln.prep.recipes_service import RecipeService
from kiln.server._roles import KilnRoute
from kiln.server.deps import service

router = APIRouter(route_class=KilnRoute)
profiles = APIRouter(prefix="/v1/datasets", tags=["profiles"], route_class=KilnRoute)
recipes = APIRouter(prefix="/v1/recipes", tags=["recipes"], route_class=KilnRoute)


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


# -- profiles ------------------------------------------------------------------------------


@profiles.post("/{ref}/profile", response_model=ProfileInfo, status_code=201)
async def create_profile(ref: str, body: ProfileRequest = Body(default_factory=ProfileRequest), svc: ProfileService = service(ProfileService)) -> ProfileInfo:
    """Profile a version (one streaming pass) and store the HTML and JSON reports with it."""
    return await _in_thread(svc.create, ref, target=body.target)


@profiles.get("/{ref}/profile", response_model=ProfileReport)
def get_profile(ref: str, svc: ProfileService = service(ProfileService)) -> ProfileReport:
    """The latest profile of a version: its metadata and JSON document."""
    info = svc.get(ref)
    return ProfileReport(info=info, profile=svc.read(info, format="json"))


@profiles.get("/{ref}/profile.html", response_class=HTMLResponse, responses={200: {"content": {"text/html": {}}}})
def get_profile_html(ref: str, svc: ProfileService = service(ProfileService)) -> HTMLResponse:
    """The latest profile of a version as one self-contained HTML page."""
    return HTMLResponse(svc.report(ref, format="html"))


@profiles.get("/{name}/profiles", response_model=list[ProfileInfo])
def list_profiles(name: str, svc: ProfileService = service(ProfileService)) -> list[ProfileInfo]:
    return svc.list(name)


# -- recipes -------------------------------------------------------------------------------


@recipes.get("", response_model=list[RecipeInfo])
def list_recipes(svc: RecipeService = service(RecipeService)) -> list[RecipeInfo]:
    return svc.list()


@recipes.post("/{name}/versions", response_model=RecipeVersion, status_code=201)
def create_recipe(name: str, body: RecipeDocument, svc: RecipeService = service(RecipeService)) -> RecipeVersion:
    """Store a recipe as the next version (checked first: the error names the step).
    Content equal to the latest version makes no new version (``created`` is false)."""
    return svc.create(name, body.model_dump(exclude_none=True))


@recipes.get("/{name}/versions", response_model=list[RecipeVersion])
def recipe_versions(name: str, svc: RecipeService = service(RecipeService)) -> list[RecipeVersion]:
    return svc.versions(name)


@recipes.get("/{ref}", response_model=RecipeVersion)
def get_recipe(ref: str, svc: RecipeService = service(RecipeService)) -> RecipeVersion:
    return svc.get(ref)


@recipes.get("/{ref}/preview", response_model=RecipePreview)
async def preview(ref: str, dataset: str = Query(..., max_length=200), n: int = Query(20, ge=0, le=1000), sample_rows: int = Query(10_000, ge=1, le=100_000), svc: RecipeService = service(RecipeService)) -> RecipePreview:
    """Run the recipe on the first ``sample_rows`` rows of ``dataset``."""
    return await _in_thread(svc.preview, ref, dataset, n=n, sample_rows=sample_rows)


@recipes.post("/{ref}/apply", response_model=ApplyResult, status_code=201)
async def apply(ref: str, body: ApplyRequest, svc: RecipeService = service(RecipeService)) -> ApplyResult:
    """Fit on a dataset version, apply, and write the result as a new version of ``output_dataset``."""
    return await _in_thread(svc.apply, ref, body.dataset, output=body.output_dataset, description=body.description)


@recipes.get("/{ref}/export", response_class=PlainTextResponse, responses={200: {"content": {"text/x-python": {}}}})
async def export(ref: str, to: str = Query("python", pattern="^python$"), engine: str = Query("polars", pattern="^(polars|pandas)$"), dataset: str | None = Query(None, max_length=200), svc: RecipeService = service(RecipeService)) -> PlainTextResponse:
    """A standalone Python script reproducing ``apply`` (fitted on ``dataset`` when the recipe learns from data)."""
    script = await _in_thread(svc.export, ref, to=to, engine=engine, dataset=dataset)
    return PlainTextResponse(script, media_type="text/x-python")


@recipes.get("/{ref}/fitted", response_model=dict[str, Any])
async def fitted(ref: str, dataset: str = Query(..., max_length=200), svc: RecipeService = service(RecipeService)) -> dict[str, Any]:
    """The recipe fitted on ``dataset``: steps, learned state and schemas, as JSON."""
    result = await _in_thread(svc.fitted, ref, dataset)
    return result.to_dict()  # type: ignore[no-any-return]


@recipes.get("/{ref}/fits", response_model=list[FitInfo])
def fits(ref: str, svc: RecipeService = service(RecipeService)) -> list[FitInfo]:
    return svc.fits(ref)


router.include_router(profiles)
router.include_router(recipes)
