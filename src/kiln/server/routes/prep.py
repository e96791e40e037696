"""REST: dataset profiles under /v1/datasets/{ref}/profile, and /v1/recipes.

The declared operations (:mod:`kiln.prep._ops`) become routes by themselves; written
here are only the two answers that are documents, not JSON: a profile's HTML page
and a recipe's exported Python script.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from kiln.prep import _ops as ops
from kiln.prep.profiles import ProfileService
from kiln.prep.recipes_service import RecipeService
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import service

router = APIRouter(route_class=KilnRoute)
router.include_router(operations_router(ops.ALL, tags=[]))


@router.get(
    "/v1/datasets/{ref}/profile.html", tags=["profiles"], response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}}, openapi_extra=role("viewer", action="profiles.html"),
)
def get_profile_html(ref: str, svc: ProfileService = service(ProfileService)) -> HTMLResponse:
    """The latest profile of a version as one self-contained HTML page."""
    return HTMLResponse(svc.report(ref, format="html"))


@router.get(
    "/v1/recipes/{ref}/export", tags=["recipes"], response_class=PlainTextResponse,
    responses={200: {"content": {"text/x-python": {}}}}, openapi_extra=role("viewer", action="recipes.export"),
)
async def export(ref: str, to: str = "python", engine: str = "polars", dataset: str | None = None, svc: RecipeService = service(RecipeService)) -> PlainTextResponse:
    """A standalone Python script reproducing ``apply`` (fitted on ``dataset`` when the recipe learns from data)."""
    script = await run_in_threadpool(svc.export, ref, to=to, engine=engine, dataset=dataset)
    return PlainTextResponse(script, media_type="text/x-python")
