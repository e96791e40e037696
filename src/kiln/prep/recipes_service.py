"""Recipes as versioned resources: create, preview, apply into a new dataset version, export.

The engine (:mod:`kiln.prep.recipes`) does the work; this module stores recipe
versions and fitted states, reads datasets for it, and records lineage.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, KilnError, NotFound
from kiln.core.names import Ref, check_name, parse_ref
from kiln.core.progress import Progress, reporting
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService, DatasetVersion
from kiln.prep import _tables as t
from kiln.prep._models import ApplyResult, FitInfo, PreviewStep, RecipeInfo, RecipePreview, RecipeVersion

if TYPE_CHECKING:
    from kiln.prep.recipes import FittedRecipe, Recipe

__all__ = ["MAX_RECIPE_BYTES", "PREVIEW_SAMPLE_ROWS", "RecipeService", "parse_recipe", "referenced_keys"]

MAX_RECIPE_BYTES = 1 << 20
PREVIEW_SAMPLE_ROWS = 10_000
_MAX_PREVIEW_SAMPLE = 100_000
MAX_DESCRIPTION_CHARS = 10_000
_MAX_DATASET_REF = 200
_DTYPE_FOR_KIND = {"numeric": "Float64", "integer": "Int64", "string": "String", "temporal": "Datetime", "boolean": "Boolean", "discrete": "String", "any": "String"}


def _invalid(exc: Exception) -> InvalidArgument:
    """The engine's RecipeError (already an InvalidArgument) as a plain one, so that local
    and remote callers get the very same error type."""
    details = getattr(exc, "details", {}) or {}
    return InvalidArgument(getattr(exc, "message", str(exc)), details={k: v for k, v in details.items() if isinstance(v, str | int | float | bool)})


def parse_recipe(recipe: Any, *, description: str | None = None) -> Recipe:
    """A recipe from the engine's object, a mapping/list, or JSON/YAML text.

    Raises:
        InvalidArgument: not shaped like a recipe (the message names the step).
    """
    from kiln.prep.recipes import Recipe, RecipeError

    try:
        if isinstance(recipe, Recipe):
            parsed = recipe
        elif isinstance(recipe, str | bytes):
            if len(recipe) > MAX_RECIPE_BYTES:
                raise InvalidArgument(f"a recipe is at most {MAX_RECIPE_BYTES // 1024} KB of JSON or YAML")
            text = recipe.decode("utf-8", "replace") if isinstance(recipe, bytes) else recipe
            if not text.strip():
                raise InvalidArgument('the recipe is empty: write {"steps": [{"op": ..., "params": {...}}]} as JSON or YAML')
            parsed = Recipe.from_json(text) if text.lstrip().startswith(("{", "[")) else Recipe.from_yaml(text)
        elif isinstance(recipe, Mapping | list | tuple):
            parsed = Recipe.from_dict(recipe if isinstance(recipe, Mapping) else list(recipe))
        else:
            raise InvalidArgument(f"a recipe is a mapping, a list of steps, or JSON/YAML text, not {type(recipe).__name__}")
        if description is not None:
            parsed = Recipe(parsed.steps, description=description)
    except RecipeError as exc:
        raise _invalid(exc) from None
    check_structure(parsed)
    return parsed


def _fitted_ops() -> set[str]:
    from kiln.prep.recipes import list_ops

    return {o.name for o in list_ops() if o.fitted}


def check_structure(recipe: Recipe) -> None:
    """Check each step's op and params without a schema (unknown op, unknown or missing
    param, wrong value type, ``when`` where it is not supported); columns wait for data.

    Each step is validated alone against a schema holding the columns it names, so only
    problems that no dataset could fix are reported.
    """
    from kiln.prep.recipes import Recipe, RecipeError, list_ops

    ops = {o.name: o for o in list_ops()}
    for i, step in enumerate(recipe.steps):
        info = ops.get(step.op)
        if info is None:
            import difflib

            hint = difflib.get_close_matches(step.op, list(ops), n=1)
            did = f' (did you mean "{hint[0]}"?)' if hint else ""
            raise InvalidArgument(f'step {i + 1} ({step.op}): unknown op "{step.op}"{did}; `kiln recipes ops` lists the {len(ops)} ops', details={"step_index": i, "op": step.op})
        schema: dict[str, str] = {}
        for param in info.params:
            value = step.params.get(param["name"])
            kind = _DTYPE_FOR_KIND.get(param.get("dtype", "any"), "String")
            if param["kind"] == "column" and isinstance(value, str):
                schema.setdefault(value, kind)
            elif param["kind"] == "columns":
                for col in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                    if isinstance(col, str):
                        schema.setdefault(col, kind)
        try:
            Recipe([step]).validate(schema)
        except RecipeError as exc:
            if not {"column", "dataset"} & set(exc.details):
                raise _invalid(exc.at(i, step.op)) from None


def _clean(value: Any) -> Any:
    """JSON-safe and the same through every face: no NaN, temporal values as ISO text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _canonical(recipe: Recipe) -> tuple[str, str]:
    content = recipe.to_dict()
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text, hashlib.sha256(text.encode()).hexdigest()


def _version(row: Any, *, created: bool = True, fitted_ops: set[str] | None = None) -> RecipeVersion:
    content = orjson.loads(row.content)
    ops = fitted_ops if fitted_ops is not None else _fitted_ops()
    return RecipeVersion(
        name=row.name, version=row.version, description=row.description, steps=content["steps"], sha256=row.sha256,
        fitted=any(s["op"] in ops for s in content["steps"]), created_at=row.created_at, created_by=row.created_by, created=created,
    )


def _fit_info(row: Any) -> FitInfo:
    return FitInfo(
        id=row.id, recipe=row.recipe, recipe_version=row.recipe_version, dataset=row.dataset, dataset_version=row.dataset_version,
        output=row.output, rows_in=row.rows_in, rows_out=row.rows_out, fitted_key=row.fitted_key, created_at=row.created_at, created_by=row.created_by,
    )


class RecipeService:
    """Everything the faces can do with recipes."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- versions ------------------------------------------------------------------------

    def create(
        self, name: str, recipe: Any = None, *, steps: list[Any] | None = None, description: str | None = None, format: int | None = None
    ) -> RecipeVersion:
        """Store a recipe as the next version of ``name`` (unchanged content makes no new version: ``created`` is false).

        The recipe is checked first (unknown op, unknown param, wrong param type...), each
        error naming the step. Give it either whole, as ``recipe``, or as its parts:
        ``steps`` (with ``description`` and ``format``), as a recipe's JSON document has them.

        Args:
            name: recipe name (created on first use).
            recipe: the engine's ``Recipe``, ``{"steps": [...]}``, a list of steps, or JSON/YAML text.
            steps: the recipe's steps (``[{"op", "params", "when"?}, ...]``), instead of ``recipe``.
            description: the version's description (replaces the recipe's own).
            format: the recipe document's format number, as ``Recipe.to_dict()`` writes it.

        Raises:
            InvalidArgument: not a recipe, unknown op, unknown param, wrong param type...
                naming the step; nothing is stored.
        """
        check_name(name, kind="recipe")
        try:
            self.ctx.require("editor")
            if (recipe is None) == (steps is None):
                raise InvalidArgument('give the recipe (JSON or YAML text, or {"steps": [...]}) or its steps, not both and not neither')
            if steps is not None:
                recipe = {"steps": steps, **({"format": format} if format is not None else {})}
            elif format is not None:
                raise InvalidArgument("format goes with steps; a whole recipe carries its own")
            _check_description(description)
            parsed = parse_recipe(recipe, description=description)
            _check_description(parsed.description)
        except KilnError as exc:
            self.ws.audit_failure(self.ctx, action="recipes.create", resource=f"recipes/{name}", error=exc)
            raise
        content, digest = _canonical(parsed)
        try:
            return self._store_version(name, parsed, content, digest)
        except sa.exc.IntegrityError:
            raise Conflict(f"recipe {name!r} was created by someone else at the same moment; run the create again") from None

    def _store_version(self, name: str, parsed: Recipe, content: str, digest: str) -> RecipeVersion:
        now = time.time()
        with self.ws.mutation(self.ctx, action="recipes.create", resource=f"recipes/{name}", details={"sha256": digest}) as (conn, details):
            head = conn.execute(sa.select(t.recipes).where(t.recipes.c.name == name).with_for_update()).first()
            if head is not None:
                latest = self._version_row(conn, name, head.latest_version)
                if latest.sha256 == digest:
                    details.update(version=latest.version, unchanged=True)
                    return _version(latest, created=False)
                number = head.latest_version + 1
                conn.execute(t.recipes.update().where(t.recipes.c.name == name).values(latest_version=number, description=parsed.description, updated_at=now))
            else:
                number = 1
                conn.execute(t.recipes.insert().values(name=name, description=parsed.description, latest_version=1, created_at=now, created_by=self.ctx.actor, updated_at=now))
            row = {"name": name, "version": number, "content": content, "sha256": digest, "description": parsed.description, "created_at": now, "created_by": self.ctx.actor}
            conn.execute(t.recipe_versions.insert().values(**row))
            details["version"] = number
        return _version(_Row(row))

    def list(self) -> list[RecipeInfo]:
        """Every recipe with its latest version, by name."""
        self.ctx.require("viewer")
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(t.recipes).order_by(t.recipes.c.name)).all()
        return [RecipeInfo(name=r.name, description=r.description, latest_version=r.latest_version, created_at=r.created_at, created_by=r.created_by, updated_at=r.updated_at) for r in rows]

    def get(self, ref: str | Ref) -> RecipeVersion:
        """The version ``ref`` names (``clean``, ``clean@2``)."""
        self.ctx.require("viewer")
        r = self._ref(ref)
        with self.ws.db.read() as conn:
            head = self._head(conn, r.name)
            return _version(self._version_row(conn, r.name, r.version or head.latest_version))

    def versions(self, name: str) -> list[RecipeVersion]:
        """Every version of a recipe, oldest first."""
        self.ctx.require("viewer")
        check_name(name, kind="recipe")
        ops = _fitted_ops()
        with self.ws.db.read() as conn:
            self._head(conn, name)
            rows = conn.execute(sa.select(t.recipe_versions).where(t.recipe_versions.c.name == name).order_by(t.recipe_versions.c.version)).all()
        return [_version(r, fitted_ops=ops) for r in rows]

    # -- running -------------------------------------------------------------------------

    def preview(self, ref: str, dataset: str, *, n: int = 20, sample_rows: int = PREVIEW_SAMPLE_ROWS) -> RecipePreview:
        """Fit and apply on the first ``sample_rows`` rows of ``dataset``; show ``n`` output rows.

        Only the sample is read (joined lookup datasets are read whole, unioned ones
        up to the sample size), so it is fast on large data.
        """
        self.ctx.require("viewer")
        _check_dataset(dataset)
        if not isinstance(n, int) or not 0 <= n <= 1000:
            raise InvalidArgument("n must be between 0 and 1000")
        if not isinstance(sample_rows, int) or not 1 <= sample_rows <= _MAX_PREVIEW_SAMPLE:
            raise InvalidArgument(f"sample_rows must be between 1 and {_MAX_PREVIEW_SAMPLE}")
        version, recipe, dv, others = self._prepare(ref, dataset)
        sample = DatasetService(self.ws, self.ctx).read_table(dv.ref, limit=sample_rows)
        from kiln.prep.recipes import RecipeError

        joined = {s.params.get("dataset") for s in recipe.steps if s.op == "join"}
        try:
            p = recipe.preview(sample, n=n, sample_rows=sample_rows, resolver=self._resolver(others, limit=lambda name: None if name in joined else sample_rows))
        except RecipeError as exc:
            raise _invalid(exc) from None
        steps = [PreviewStep(index=i, op=s.op, rows=rows, columns=schema) for i, (s, rows, schema) in enumerate(zip(recipe.steps, p.row_counts, p.schemas, strict=False))]
        rows = p.rows
        return RecipePreview(
            recipe=version.ref, dataset=dv.ref, sample_rows=p.sample_rows, steps=steps,
            columns=list(rows.column_names), rows=[_clean(r) for r in rows.to_pylist()],
        )

    def apply(self, ref: str, dataset: str, *, output_dataset: str, description: str | None = None) -> ApplyResult:
        """Fit on ``dataset``, apply, and write the result as a new version of ``output_dataset``.

        The recipe is checked against the dataset's schema before any row is read.
        The new version's lineage names its inputs and the recipe version
        (``{"parents": ["in@3"], "recipe": "clean@2", "fit": ID}``); the fitted state
        is stored with the recipe version and input, for :meth:`export` and :meth:`fitted`.

        Raises:
            InvalidArgument: the recipe does not fit the data (naming the step).
            NotFound: no such recipe, dataset or version.
        """
        rname = self._ref(ref).name
        try:
            self.ctx.require("editor")
            _check_dataset(dataset)
            check_name(output_dataset, kind="dataset")
            _check_description(description)
            version, recipe, dv, others = self._prepare(ref, dataset)
            progress = Progress()  # reading, each step, writing the new version
            fitted, out, fit_id, key = self._fit(version, recipe, dv, others, progress)
        except KilnError as exc:
            self.ws.audit_failure(self.ctx, action="recipes.apply", resource=f"recipes/{rname}", error=exc)
            raise
        parents = [dv.ref, *(v.ref for v in others.values() if v.ref != dv.ref)]
        lineage = {"parents": parents, "recipe": version.ref, "fit": fit_id}
        source = {"kind": "recipe", "recipe": version.ref, "input": dv.ref}
        with reporting(progress.part(0.85, 0.98).listener):
            written = DatasetService(self.ws, self.ctx).write_table(output_dataset, out, lineage=lineage, source=source, description=description)
        row = {
            "id": fit_id, "recipe": version.name, "recipe_version": version.version, "dataset": dv.name, "dataset_version": dv.version,
            "dataset_created_at": dv.created_at, "fitted_key": key, "output": written.ref, "rows_in": dv.row_count, "rows_out": written.row_count,
            "created_at": time.time(), "created_by": self.ctx.actor,
        }
        with self.ws.mutation(self.ctx, action="recipes.apply", resource=f"recipes/{version.name}", details={"version": version.version, "input": dv.ref, "output": written.ref}) as (conn, _):
            conn.execute(t.recipe_fits.insert().values(**row))
        progress.finish()
        return ApplyResult(recipe=version.ref, input=dv.ref, output=written, fit=_fit_info(_Row(row)))

    def export(self, ref: str, *, to: str = "python", engine: str = "polars", dataset: str | None = None) -> str:
        """A standalone script that reproduces ``apply`` (polars or pandas, no kiln import).

        Recipes with fitted steps need ``dataset``: the state stored by an earlier
        ``apply`` on that very version is reused, else the recipe is fitted on it now.
        """
        self.ctx.require("viewer")
        if dataset is not None:
            _check_dataset(dataset)
        if to != "python":
            raise InvalidArgument(f"unknown export target {to!r}: use --to python")
        if engine not in ("polars", "pandas"):
            raise InvalidArgument(f"unknown engine {engine!r}: use polars or pandas")
        from kiln.prep.recipes import FittedRecipe, RecipeError, export_python

        if dataset is None:
            version = self.get(ref)
            recipe = version.to_recipe()
            if version.fitted:
                fitted_ops = sorted({s.op for s in recipe.steps} & _fitted_ops())
                raise InvalidArgument(f"recipe {version.ref} has steps that learn from data ({', '.join(fitted_ops)}): pass --dataset DATASET to fit them on")
            fitted = FittedRecipe(recipe, [None] * len(recipe.steps), input_schema={}, output_schema={})
        else:
            fitted = self.fitted(ref, dataset)
        try:
            return export_python(fitted, engine=engine)  # type: ignore[arg-type]
        except RecipeError as exc:
            raise _invalid(exc) from None

    def fitted(self, ref: str, dataset: str) -> FittedRecipe:
        """The recipe version fitted on a dataset version: the stored state if an apply made
        one, else fitted now (and not stored)."""
        self.ctx.require("viewer")
        _check_dataset(dataset)
        from kiln.prep.recipes import FittedRecipe

        version, recipe, dv, others = self._prepare(ref, dataset)
        with self.ws.db.read() as conn:
            row = conn.execute(
                sa.select(t.recipe_fits).where(
                    t.recipe_fits.c.recipe == version.name, t.recipe_fits.c.recipe_version == version.version,
                    t.recipe_fits.c.dataset == dv.name, t.recipe_fits.c.dataset_version == dv.version,
                    t.recipe_fits.c.dataset_created_at == dv.created_at,
                ).order_by(t.recipe_fits.c.created_at.desc()).limit(1)
            ).first()
        if row is not None:
            return FittedRecipe.from_json(self.ws.store.read_bytes(row.fitted_key))
        from kiln.prep.recipes import RecipeError

        table = DatasetService(self.ws, self.ctx).read_table(dv.ref)
        try:
            return recipe.fit(table, resolver=self._resolver(others))
        except RecipeError as exc:
            raise _invalid(exc) from None

    def fitted_state(self, ref: str, dataset: str) -> dict[str, Any]:
        """The recipe fitted on ``dataset``: steps, learned state and schemas, as JSON
        (``FittedRecipe.from_dict`` rebuilds it)."""
        return self.fitted(ref, dataset).to_dict()

    def fits(self, ref: str) -> list[FitInfo]:
        """Stored fitted states of a recipe version (``name`` alone: of every version), newest first."""
        self.ctx.require("viewer")
        r = self._ref(ref)
        with self.ws.db.read() as conn:
            self._head(conn, r.name)
            q = sa.select(t.recipe_fits).where(t.recipe_fits.c.recipe == r.name)
            if r.version is not None:
                q = q.where(t.recipe_fits.c.recipe_version == r.version)
            rows = conn.execute(q.order_by(t.recipe_fits.c.created_at.desc())).all()
        return [_fit_info(r) for r in rows]

    # -- helpers -------------------------------------------------------------------------

    def _ref(self, ref: str | Ref) -> Ref:
        r = parse_ref(ref, kind="recipe") if isinstance(ref, str) else ref
        if r.alias is not None:
            raise InvalidArgument(f"recipes have no aliases; use {r.name} or {r.name}@VERSION")
        return r

    def _head(self, conn: Connection, name: str) -> Any:
        head = conn.execute(sa.select(t.recipes).where(t.recipes.c.name == name)).first()
        if head is None:
            raise NotFound(f"recipe {name!r} does not exist; `kiln recipes ls` lists recipes, `kiln recipes create {name} FILE` makes it")
        return head

    def _version_row(self, conn: Connection, name: str, number: int) -> Any:
        row = conn.execute(sa.select(t.recipe_versions).where(t.recipe_versions.c.name == name, t.recipe_versions.c.version == number)).first()
        if row is None:
            latest = conn.execute(sa.select(t.recipes.c.latest_version).where(t.recipes.c.name == name)).scalar()
            raise NotFound(f"recipe {name!r} has no version {number} (latest is {latest}); `kiln recipes versions {name}` lists them")
        return row

    def _prepare(self, ref: str, dataset: str) -> tuple[RecipeVersion, Recipe, DatasetVersion, dict[str, DatasetVersion]]:
        """Pin the recipe, the input and every dataset the steps read; check the schemas
        (before any row is read)."""
        from kiln.prep.recipes import RecipeError, list_ops

        version = self.get(ref)
        recipe = version.to_recipe()
        datasets = DatasetService(self.ws, self.ctx)
        dv = datasets.get(dataset)
        reads = {o.name: [p["name"] for p in o.params if p["kind"] == "dataset"] for o in list_ops() if o.reads_dataset}
        others: dict[str, DatasetVersion] = {}
        for i, step in enumerate(recipe.steps):
            for param in reads.get(step.op, []):
                other = step.params.get(param)
                if isinstance(other, str) and other not in others:
                    try:
                        others[other] = datasets.get(other)
                    except KilnError as exc:
                        raise type(exc)(f"step {i + 1} ({step.op}): {exc.message}", details={"step_index": i, "op": step.op}) from None
        schemas = {name: datasets.arrow_dataset(v.ref).schema for name, v in others.items()}
        try:
            recipe.validate(datasets.arrow_dataset(dv.ref).schema, dataset_schemas=schemas)
        except RecipeError as exc:
            raise _invalid(exc) from None
        return version, recipe, dv, others

    def _resolver(self, others: dict[str, DatasetVersion], *, limit: Callable[[str], int | None] | None = None) -> Callable[[str], Any]:
        datasets = DatasetService(self.ws, self.ctx)

        def resolve(name: str) -> Any:
            if name not in others:
                raise KeyError(name)
            return datasets.read_table(others[name].ref, limit=limit(name) if limit else None)

        return resolve

    def _fit(self, version: RecipeVersion, recipe: Recipe, dv: DatasetVersion, others: dict[str, DatasetVersion], progress: Progress) -> tuple[FittedRecipe, Any, str, str]:
        """Fit and apply; the fitted state goes to the store first (visible once recorded)."""
        from kiln.prep.recipes import RecipeError

        table = DatasetService(self.ws, self.ctx).read_table(dv.ref)
        progress.update(0.15)
        try:
            with reporting(progress.part(0.15, 0.85).listener):
                fitted, out = recipe.fit_apply(table, resolver=self._resolver(others))
        except RecipeError as exc:
            raise _invalid(exc) from None
        fit_id = uuid.uuid4().hex
        key = f"recipes/{version.name}/fits/{fit_id}.json"
        self.ws.store.put_bytes(key, fitted.to_json().encode())
        return fitted, out, fit_id, key


def _check_dataset(dataset: object) -> None:
    """A dataset argument (``NAME`` or ``NAME@VERSION``) before it is looked up."""
    if not isinstance(dataset, str) or len(dataset) > _MAX_DATASET_REF:
        raise InvalidArgument(f"dataset must be NAME or NAME@VERSION, at most {_MAX_DATASET_REF} characters")


def _check_description(description: object) -> None:
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS):
        raise InvalidArgument(f"a description is text of at most {MAX_DESCRIPTION_CHARS:,} characters")


class _Row:
    """A dict read like a result row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def referenced_keys(conn: Connection) -> set[str]:
    """Fitted-state files that a stored fit points to (for ``kiln gc``)."""
    return set(conn.execute(sa.select(t.recipe_fits.c.fitted_key)).scalars())
