"""Prep resources as the faces see them: profiles, recipes, versions, previews, fits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kiln.lake._models import DatasetVersion

__all__ = [
    "ApplyResult",
    "FitInfo",
    "PreviewStep",
    "ProfileInfo",
    "ProfileReport",
    "RecipeInfo",
    "RecipePreview",
    "RecipeVersion",
]


class ProfileInfo(BaseModel):
    """A stored profile of one dataset version: where its HTML and JSON reports are."""

    id: str
    dataset: str
    version: int
    target: str | None
    rows: int
    columns: int
    alerts: int
    html_key: str
    json_key: str
    created_at: float
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


class ProfileReport(BaseModel):
    """A profile's metadata with its JSON document (overview, columns, alerts, insights...)."""

    info: ProfileInfo
    profile: dict[str, Any]






class RecipeInfo(BaseModel):
    name: str
    description: str
    latest_version: int
    created_at: float
    created_by: str
    updated_at: float


class RecipeVersion(BaseModel):
    """One immutable recipe version.

    ``created`` is False when ``create`` found this very content already stored as
    the latest version and made no new one.
    """

    name: str
    version: int
    description: str
    steps: list[dict[str, Any]]
    sha256: str
    fitted: bool = Field(description="Some steps learn state from data (export needs a dataset to fit on).")
    created_at: float
    created_by: str
    created: bool = True

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_recipe(self) -> Any:
        """The engine's :class:`kiln.prep.recipes.Recipe` for this version."""
        from kiln.prep.recipes import Recipe

        return Recipe.from_dict({"steps": self.steps, "description": self.description})


class PreviewStep(BaseModel):
    index: int
    op: str
    rows: int
    columns: dict[str, str]


class RecipePreview(BaseModel):
    """What a recipe does to the first ``sample_rows`` rows of a dataset version."""

    recipe: str
    dataset: str
    sample_rows: int
    steps: list[PreviewStep]
    columns: list[str]
    rows: list[dict[str, Any]]




class FitInfo(BaseModel):
    """The state a recipe version learned from one dataset version (stored, reusable)."""

    id: str
    recipe: str
    recipe_version: int
    dataset: str
    dataset_version: int
    output: str | None
    rows_in: int
    rows_out: int
    fitted_key: str
    created_at: float
    created_by: str


class ApplyResult(BaseModel):
    recipe: str
    input: str
    output: DatasetVersion
    fit: FitInfo


ExportEngine = Literal["polars", "pandas"]
