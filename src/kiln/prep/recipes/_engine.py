"""Planning (schema propagation) and execution of recipe steps."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa

from ._base import REGISTRY, Env, OpSpec, sql_dtype
from ._errors import RecipeError
from ._kernel_helpers import apply_when
from ._params import check_sql, resolve_params
from ._schema import SchemaLike, SchemaState, dtype_name

Frame: TypeAlias = pa.Table | pl.DataFrame
"""Data in and out of recipes: a pyarrow Table or a polars DataFrame."""

Resolver: TypeAlias = Callable[[str], Frame] | Mapping[str, Frame]
"""Gives another dataset by name (for ``join`` and ``union``)."""

# Errors a kernel may raise on bad data; they become RecipeError naming the step.
DATA_ERRORS = (pl.exceptions.PolarsError, ValueError, TypeError, KeyError, ArithmeticError)


@dataclass(frozen=True)
class Step:
    """One recipe step.

    Attributes:
        op: the op name (see ``list_ops``).
        params: the op's params, as written in the recipe.
        when: optional SQL row condition. The step then changes only the rows
            where it is true (others keep their values; new columns are null
            there), and fitted state is learned from those rows only. Only
            ops that keep rows 1:1 accept it.
    """

    op: str
    params: Mapping[str, Any]
    when: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The step as plain JSON-able data."""
        out: dict[str, Any] = {"op": self.op, "params": json.loads(json.dumps(dict(self.params)))}
        if self.when is not None:
            out["when"] = self.when
        return out


def step_from(data: Any, index: int) -> Step:
    """Build a step from a mapping, checking its shape."""
    if isinstance(data, Step):
        return data
    if not isinstance(data, Mapping):
        raise RecipeError(
            f"a step must be a mapping with an op, got {type(data).__name__}", step_index=index
        )
    op = data.get("op")
    extra = set(data) - {"op", "params", "when"}
    if not isinstance(op, str) or not op:
        raise RecipeError('a step needs "op" (a string)', step_index=index, op=None)
    if extra:
        raise RecipeError(
            f"unknown step key(s) {', '.join(sorted(map(str, extra)))}; "
            'a step has "op", "params" and "when"',
            step_index=index,
            op=op,
        )
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise RecipeError(
            f'"params" must be a mapping, got {type(params).__name__}', step_index=index, op=op
        )
    try:
        json.dumps(dict(params), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RecipeError(
            f"params must be plain JSON values: {exc}", step_index=index, op=op
        ) from None
    when = data.get("when")
    if when is not None and (not isinstance(when, str) or not when.strip()):
        raise RecipeError('"when" must be a SQL condition string', step_index=index, op=op)
    return Step(op=op, params=dict(params), when=when)


@dataclass
class Planned:
    """A checked step: its op, resolved params and the schema after it."""

    index: int
    step: Step
    spec: OpSpec
    params: dict[str, Any]
    schema: SchemaState


class Datasets:
    """Other datasets by name, loaded once per run through the resolver."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        schemas: Mapping[str, SchemaLike] | None = None,
        *,
        validating: bool = False,
    ) -> None:
        self._resolver = resolver
        self._validating = validating
        self._schemas = dict(schemas or {})
        self._frames: dict[str, pl.DataFrame] = {}

    def frame(self, name: str) -> pl.DataFrame:
        if name not in self._frames:
            if self._resolver is None:
                raise RecipeError(
                    f'dataset "{name}" is needed but no resolver was given',
                    details={"dataset": name},
                )
            try:
                got = (
                    self._resolver[name]
                    if isinstance(self._resolver, Mapping)
                    else self._resolver(name)
                )
            except (KeyError, LookupError):
                raise RecipeError(
                    f'dataset "{name}" not found', details={"dataset": name}
                ) from None
            self._frames[name] = to_polars(got)
        return self._frames[name]

    def schema(self, name: str) -> SchemaState:
        if name in self._schemas:
            return SchemaState.of(self._schemas[name])
        if self._resolver is None and self._validating:
            raise RecipeError(
                f'the schema of dataset "{name}" is unknown: pass dataset_schemas',
                details={"dataset": name},
            )
        return SchemaState(dict(self.frame(name).schema))


def to_polars(data: Any) -> pl.DataFrame:
    """Accept a pyarrow Table or a polars DataFrame."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pa.Table):
        out = pl.from_arrow(data)
        assert isinstance(out, pl.DataFrame)
        return out
    raise TypeError(
        f"expected a pyarrow.Table or polars.DataFrame, got {type(data).__name__} "
        "(convert pandas with pyarrow.Table.from_pandas)"
    )


def like_input(df: pl.DataFrame, data: Any) -> Frame:
    """Return ``df`` in the type the caller gave."""
    return df.to_arrow() if isinstance(data, pa.Table) else df


def _merged(
    new: pl.DataType | None, old: pl.DataType | None, name: str, op: str
) -> pl.DataType | None:
    """The dtype of a column that a ``when`` step changes on some rows only."""
    if new is None or old is None or new == old:
        return new
    try:
        frame = pl.DataFrame(schema={"new": new, "old": old})
        return frame.select(pl.when(pl.lit(True)).then("new").otherwise("old")).dtypes[0]
    except pl.exceptions.PolarsError:
        raise RecipeError(
            f'"when" cannot be used here: {op} turns column "{name}" from '
            f"{dtype_name(old)} into {dtype_name(new)} on some rows only"
        ) from None


def plan(
    steps: tuple[Step, ...],
    schema: SchemaState,
    *,
    states: list[Any] | None = None,
    datasets: Datasets | None = None,
) -> list[Planned]:
    """Check every step against the schema flowing into it, before any data is read.

    Raises:
        RecipeError: naming the first bad step.
    """
    datasets = datasets or Datasets(validating=True)
    out: list[Planned] = []
    sc = schema
    for i, step in enumerate(steps):
        try:
            spec = REGISTRY.get(step.op)
            if spec is None:
                raise RecipeError(_unknown_op(step.op), details={"op": step.op})
            params = resolve_params(spec.params, step.params)
            for param in spec.params:
                value = params[param.name]
                if param.kind == "column" and value is not None:
                    sc.require(value, param.col_kind)
                elif param.kind == "columns" and value is not None:
                    for name in value:
                        sc.require(name, param.col_kind)
            if step.when is not None:
                _check_when(sc, step, spec)
            after = sc.copy()
            spec.schema(
                after,
                params,
                Env(state=None if states is None else states[i], dataset_schema=datasets.schema),
            )
            if step.when is not None:
                for name, dtype in after.columns.items():
                    if name in sc.columns:
                        after.columns[name] = _merged(dtype, sc.columns[name], name, step.op)
        except RecipeError as exc:
            raise exc.at(i, step.op) from None
        out.append(Planned(i, step, spec, params, after))
        sc = after
    return out


def _unknown_op(op: str) -> str:
    hint = difflib.get_close_matches(op, list(REGISTRY), n=1)
    did = f' (did you mean "{hint[0]}"?)' if hint else ""
    return f'unknown op "{op}"{did}; see list_ops() for the {len(REGISTRY)} ops'


def _check_when(sc: SchemaState, step: Step, spec: OpSpec) -> None:
    if not spec.rowwise:
        raise RecipeError(
            f'"when" is not supported by {spec.name}: it changes rows or columns '
            "as a whole (use a filter step)"
        )
    assert step.when is not None
    check_sql(step.when, "when")
    dtype = sql_dtype(sc, step.when, "when")
    if dtype is not None and dtype != pl.Boolean:
        raise RecipeError(f'"when": {step.when!r} gives {dtype_name(dtype)}, not true/false')


def normal_state(state: Any) -> Any:
    """The state exactly as it will be after a JSON round trip."""
    return json.loads(json.dumps(state))


def execute(
    planned: list[Planned],
    df: pl.DataFrame,
    *,
    states: list[Any] | None,
    datasets: Datasets,
    on_step: Callable[[int, pl.DataFrame], None] | None = None,
) -> tuple[pl.DataFrame, list[Any]]:
    """Run planned steps; fit each fitted op first when ``states`` is None."""
    learned: list[Any] = []
    for item in planned:
        spec, p, when = item.spec, item.params, item.step.when
        try:
            if states is not None:
                state = states[item.index]
            elif spec.fit is not None:
                rows = df if when is None else df.filter(pl.sql_expr(when).fill_null(False))
                state = normal_state(spec.fit(rows, p))
            else:
                state = None
            if spec.dataset:
                df = spec.kernel(df, p, state, datasets.frame(p["dataset"]))
            elif when is not None:
                df = apply_when(df, when, spec.kernel, p, state)
            else:
                df = spec.kernel(df, p, state)
        except RecipeError as exc:
            raise exc.at(item.index, item.step.op) from None
        except DATA_ERRORS as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecipeError(message, details={"error": type(exc).__name__}).at(
                item.index, item.step.op
            ) from exc
        learned.append(state)
        if on_step is not None:
            on_step(item.index, df)
    return df, learned
