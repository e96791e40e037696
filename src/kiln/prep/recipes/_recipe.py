"""Recipes, fitted recipes and previews: the public face of the engine."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import yaml

from kiln.core.progress import Progress

from ._base import REGISTRY
from ._engine import (
    Datasets,
    Frame,
    Planned,
    Resolver,
    Step,
    execute,
    like_input,
    plan,
    step_from,
    to_polars,
)
from ._errors import RecipeError
from ._schema import SchemaLike, SchemaState

FORMAT = 1  # version of the stored recipe / fitted-recipe layout


class Recipe:
    """An ordered list of steps ``{op, params, when?}``; immutable.

    Stored as ``{"steps": [...], "description": "..."}`` in JSON or YAML.
    ``validate`` checks it against a schema before any data is read; ``fit``
    learns each step's state and returns a ``FittedRecipe`` that applies it.
    """

    def __init__(self, steps: Sequence[Step | Mapping[str, Any]], *, description: str = "") -> None:
        self.steps: tuple[Step, ...] = tuple(step_from(s, i) for i, s in enumerate(steps))
        self.description = description

    def __repr__(self) -> str:
        ops = ", ".join(s.op for s in self.steps)
        return f"Recipe([{ops}])"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    def __len__(self) -> int:
        return len(self.steps)

    # -- storage ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Recipe:
        """Build from ``{"steps": [...]}`` (or a bare list of steps).

        Raises:
            RecipeError: the data is not shaped like a recipe.
        """
        if isinstance(data, Mapping):
            extra = set(data) - {"steps", "description", "format"}
            if extra:
                raise RecipeError(
                    f"unknown recipe key(s) {', '.join(sorted(map(str, extra)))}; "
                    'a recipe has "steps" and "description"'
                )
            steps, description = data.get("steps"), data.get("description") or ""
        else:
            steps, description = data, ""
        if not isinstance(steps, Sequence) or isinstance(steps, (str, bytes)):
            raise RecipeError('a recipe needs "steps": a list of {op, params, when}')
        if not isinstance(description, str):
            raise RecipeError('"description" must be a string')
        return cls(list(steps), description=description)

    @classmethod
    def from_json(cls, text: str | bytes) -> Recipe:
        """Parse a recipe from JSON text."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise RecipeError(f"invalid recipe JSON: {exc}") from None

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Recipe:
        """Parse a recipe from YAML text (safe loader)."""
        try:
            return cls.from_dict(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise RecipeError(f"invalid recipe YAML: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON-able data."""
        out: dict[str, Any] = {"format": FORMAT, "steps": [s.to_dict() for s in self.steps]}
        if self.description:
            out["description"] = self.description
        return out

    def to_json(self, *, indent: int | None = 2) -> str:
        """The recipe as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        """The recipe as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # -- checking and running --------------------------------------------------------------

    def validate(
        self, schema: SchemaLike, *, dataset_schemas: Mapping[str, SchemaLike] | None = None
    ) -> dict[str, str]:
        """Check every step against the input schema, propagated step by step.

        Args:
            schema: the input's schema (pyarrow or polars schema, or column -> dtype).
            dataset_schemas: schemas of the datasets that ``join``/``union`` steps read.

        Returns:
            The output schema as ``{column: dtype name}``; columns whose names or
            types only data can tell (one-hot outputs, pivots) are left out or
            marked ``"unknown"``.

        Raises:
            RecipeError: unknown op, unknown column, missing or mistyped param...
                naming the step, e.g. ``step 3 (fill_missing): column "agee" not found``.
        """
        planned = plan(
            self.steps,
            SchemaState.of(schema),
            datasets=Datasets(schemas=dataset_schemas, validating=True),
        )
        return (planned[-1].schema if planned else SchemaState.of(schema)).names()

    def fit(self, data: Frame, *, resolver: Resolver | None = None) -> FittedRecipe:
        """Learn each step's state from ``data``.

        Args:
            data: a pyarrow Table or polars DataFrame.
            resolver: gives other datasets by name (a callable or a mapping).

        Returns:
            The fitted recipe.

        Raises:
            RecipeError: the recipe does not fit the data, or a step failed.
        """
        return self.fit_apply(data, resolver=resolver)[0]

    def fit_apply(
        self, data: Frame, *, resolver: Resolver | None = None
    ) -> tuple[FittedRecipe, Frame]:
        """Fit, and return the fitted recipe with the transformed data (same type as ``data``)."""
        df = to_polars(data)
        datasets = Datasets(resolver)
        planned = plan(self.steps, SchemaState(dict(df.schema)), datasets=datasets)
        steps = Progress(len(planned))  # reported to whoever listens (kiln.core.progress)
        out, states = execute(planned, df, states=None, datasets=datasets, on_step=lambda i, df: steps.advance())
        steps.finish()
        fitted = FittedRecipe(
            self,
            states,
            input_schema=SchemaState(dict(df.schema)).names(),
            output_schema=SchemaState(dict(out.schema)).names(),
        )
        return fitted, like_input(out, data)

    def preview(
        self,
        data: Frame,
        *,
        n: int = 20,
        sample_rows: int = 10_000,
        resolver: Resolver | None = None,
    ) -> Preview:
        """Fit on the first ``sample_rows`` rows and show the result (fast on large data).

        Args:
            data: a pyarrow Table or polars DataFrame.
            n: output rows to return.
            sample_rows: input rows to fit and apply on.
            resolver: gives other datasets by name.

        Returns:
            The output head and each step's schema and row count.
        """
        sample = to_polars(data).head(sample_rows)
        datasets = Datasets(resolver)
        planned = plan(self.steps, SchemaState(dict(sample.schema)), datasets=datasets)
        seen: list[tuple[dict[str, str], int]] = []
        out, states = execute(
            planned,
            sample,
            states=None,
            datasets=datasets,
            on_step=lambda i, df: seen.append(_shape(df)),
        )
        fitted = FittedRecipe(
            self,
            states,
            input_schema=SchemaState(dict(sample.schema)).names(),
            output_schema=SchemaState(dict(out.schema)).names(),
        )
        return _preview(out, data, sample.height, n, seen, fitted)


class FittedRecipe:
    """A recipe with the state each step learned at fit.

    ``state`` is a list aligned with ``recipe.steps`` (None for steps that
    learn nothing), made only of JSON values, so ``to_json``/``from_json``
    round-trips it exactly and applying is deterministic.
    """

    def __init__(
        self,
        recipe: Recipe,
        state: Sequence[Any],
        *,
        input_schema: Mapping[str, str],
        output_schema: Mapping[str, str],
    ) -> None:
        if len(state) != len(recipe.steps):
            raise RecipeError(f"state has {len(state)} entries for {len(recipe.steps)} steps")
        self.recipe = recipe
        self.state: list[Any] = list(state)
        self.input_schema: dict[str, str] = dict(input_schema)
        self.output_schema: dict[str, str] = dict(output_schema)

    def __repr__(self) -> str:
        return f"FittedRecipe({self.recipe!r})"

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.recipe.steps

    def validate(
        self, schema: SchemaLike, *, dataset_schemas: Mapping[str, SchemaLike] | None = None
    ) -> dict[str, str]:
        """Check new data's schema before applying; return the exact output schema.

        Raises:
            RecipeError: naming the first step the schema does not fit.
        """
        planned = plan(
            self.steps,
            SchemaState.of(schema),
            states=self.state,
            datasets=Datasets(schemas=dataset_schemas, validating=True),
        )
        return (planned[-1].schema if planned else SchemaState.of(schema)).names()

    def apply(self, data: Frame, *, resolver: Resolver | None = None) -> Frame:
        """Apply the fitted steps to new data (same type out as in).

        Raises:
            RecipeError: the data does not fit the recipe (checked before running),
                or a step failed (e.g. unseen categories with ``handle_unknown: error``).
        """
        df = to_polars(data)
        datasets = Datasets(resolver)
        planned = self._plan(df, datasets)
        out, _ = execute(planned, df, states=self.state, datasets=datasets)
        return like_input(out, data)

    def preview(
        self,
        data: Frame,
        *,
        n: int = 20,
        sample_rows: int = 10_000,
        resolver: Resolver | None = None,
    ) -> Preview:
        """Apply to the first ``sample_rows`` rows and show the result."""
        sample = to_polars(data).head(sample_rows)
        datasets = Datasets(resolver)
        planned = self._plan(sample, datasets)
        seen: list[tuple[dict[str, str], int]] = []
        out, _ = execute(
            planned,
            sample,
            states=self.state,
            datasets=datasets,
            on_step=lambda i, df: seen.append(_shape(df)),
        )
        return _preview(out, data, sample.height, n, seen, self)

    def _plan(self, df: pl.DataFrame, datasets: Datasets) -> list[Planned]:
        return plan(self.steps, SchemaState(dict(df.schema)), states=self.state, datasets=datasets)

    # -- storage ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Recipe, state and schemas as plain JSON-able data."""
        return {
            "format": FORMAT,
            "recipe": self.recipe.to_dict(),
            "state": self.state,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedRecipe:
        """Rebuild from ``to_dict`` output.

        Raises:
            RecipeError: the data is not a fitted recipe.
        """
        if not isinstance(data, Mapping) or not {"recipe", "state"} <= set(data):
            raise RecipeError('a fitted recipe needs "recipe" and "state"')
        if not isinstance(data["state"], list):
            raise RecipeError('"state" must be a list aligned with the steps')
        return cls(
            Recipe.from_dict(data["recipe"]),
            data["state"],
            input_schema=data.get("input_schema") or {},
            output_schema=data.get("output_schema") or {},
        )

    def to_json(self, *, indent: int | None = None) -> str:
        """As JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> FittedRecipe:
        """Parse ``to_json`` output."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise RecipeError(f"invalid fitted recipe JSON: {exc}") from None


@dataclass(frozen=True)
class Preview:
    """What a recipe does to a sample.

    Attributes:
        rows: the first rows of the output (same type as the input).
        schemas: the schema after each step, ``{column: dtype name}``.
        row_counts: rows after each step, on the sample.
        sample_rows: input rows used.
        fitted: the recipe fitted on the sample (or the fitted recipe previewed).
    """

    rows: Frame
    schemas: list[dict[str, str]]
    row_counts: list[int]
    sample_rows: int
    fitted: FittedRecipe


def _shape(df: pl.DataFrame) -> tuple[dict[str, str], int]:
    return SchemaState(dict(df.schema)).names(), df.height


def _preview(
    out: pl.DataFrame,
    data: Frame,
    used: int,
    n: int,
    seen: list[tuple[dict[str, str], int]],
    fitted: FittedRecipe,
) -> Preview:
    return Preview(
        rows=like_input(out.head(n), data),
        schemas=[schema for schema, _ in seen],
        row_counts=[rows for _, rows in seen],
        sample_rows=used,
        fitted=fitted,
    )


@dataclass(frozen=True)
class OpInfo:
    """Description of one op, for help screens and UIs."""

    name: str
    family: str
    doc: str
    params: list[dict[str, Any]]
    fitted: bool
    supports_when: bool
    reads_dataset: bool


def list_ops() -> list[OpInfo]:
    """All registered ops, by family then name."""
    return [
        OpInfo(
            s.name,
            s.family,
            s.doc,
            [p.describe() for p in s.params],
            s.fit is not None,
            s.rowwise,
            s.dataset,
        )
        for s in sorted(REGISTRY.values(), key=lambda s: (s.family, s.name))
    ]
