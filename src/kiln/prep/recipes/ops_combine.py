"""Reshaping and combining: join, union, group-by aggregate, pivot, unpivot.

``join`` and ``union`` read another dataset by name through the resolver
given to ``fit``/``apply`` (``Callable[[str], pyarrow.Table]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from ._base import Env, OpSpec, register, to_json
from ._errors import RecipeError
from ._kernel_helpers import as_plain, lit_as
from ._params import Param
from ._schema import SchemaState, dtype_name, matches_kind

AGGS = ("count", "sum", "mean", "median", "min", "max", "std", "var", "n_unique", "first", "last")
NUMERIC_AGGS = ("sum", "mean", "median", "std", "var")
JOINS = ("inner", "left", "right", "full", "semi", "anti", "cross")


def _empty(sc: SchemaState) -> pl.DataFrame | None:
    """An empty frame of a fully known schema (None if some types are unknown)."""
    if not sc.exact() or any(t is None for t in sc.columns.values()):
        return None
    return pl.DataFrame(schema=sc.columns)


def _schema_by_running(
    sc: SchemaState, kernel: Any, p: dict, state: Any, *others: SchemaState
) -> None:
    """Propagate the schema by running the kernel on empty frames."""
    frames = [_empty(x) for x in (sc, *others)]
    if any(f is None for f in frames):
        sc.columns, sc.open_prefixes, sc.open_all = {}, (), True
        return
    try:
        out = kernel(frames[0], p, state, *frames[1:])
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RecipeError(first) from None
    sc.columns, sc.open_prefixes, sc.open_all = dict(out.schema), (), False


def op_join(df: pl.DataFrame, p: dict, s: Any, other: pl.DataFrame) -> pl.DataFrame:
    if p["how"] == "cross":
        return df.join(other, how="cross", suffix=p["suffix"], maintain_order="left_right")
    # Categorical keys join by their string values.
    left_keys, right_keys = p["on"] or p["left_on"], p["on"] or p["right_on"]
    for left, right in zip(left_keys, right_keys):
        if isinstance(df.schema[left], (pl.Categorical, pl.Enum)) or isinstance(
            other.schema[right], (pl.Categorical, pl.Enum)
        ):
            df = df.with_columns(as_plain(pl.col(left), df.schema[left]))
            other = other.with_columns(as_plain(pl.col(right), other.schema[right]))
    return df.join(
        other,
        on=p["on"],
        left_on=p["left_on"],
        right_on=p["right_on"],
        how=p["how"],
        suffix=p["suffix"],
        coalesce=True,
        maintain_order="left_right",
    )


def _schema_join(sc: SchemaState, p: dict, env: Env) -> None:
    right = env.other(p["dataset"])
    if p["how"] == "cross":
        if p["on"] or p["left_on"] or p["right_on"]:
            raise RecipeError("a cross join takes no keys", details={"param": "on"})
    elif p["on"]:
        if p["left_on"] or p["right_on"]:
            raise RecipeError(
                'give "on", or "left_on" and "right_on", not both', details={"param": "on"}
            )
        pairs = list(zip(p["on"], p["on"]))
    elif p["left_on"] and p["right_on"] and len(p["left_on"]) == len(p["right_on"]):
        pairs = list(zip(p["left_on"], p["right_on"]))
    else:
        raise RecipeError(
            'give the join keys: "on", or "left_on" and "right_on" of equal length',
            details={"param": "on"},
        )
    for left, right_name in pairs if p["how"] != "cross" else []:
        lt = sc.require(left, what="join key")
        rt = right.require(right_name, what=f'join key (in dataset "{p["dataset"]}")')
        if (
            lt is not None
            and rt is not None
            and lt != rt
            and not any(matches_kind(lt, k) and matches_kind(rt, k) for k in ("numeric", "string"))
        ):
            raise RecipeError(
                f'join key "{left}" is {dtype_name(lt)} but "{right_name}" in '
                f'"{p["dataset"]}" is {dtype_name(rt)}',
                details={"param": "on"},
            )
    _schema_by_running(sc, op_join, p, None, right)


def op_union(df: pl.DataFrame, p: dict, s: Any, other: pl.DataFrame) -> pl.DataFrame:
    out = pl.concat([df, other], how="diagonal_relaxed" if p["by_name"] else "vertical_relaxed")
    return out.unique(maintain_order=True) if p["distinct"] else out


def _schema_union(sc: SchemaState, p: dict, env: Env) -> None:
    right = env.other(p["dataset"])
    if not p["by_name"] and len(right.columns) != len(sc.columns):
        raise RecipeError(
            f'dataset "{p["dataset"]}" has {len(right.columns)} columns, this one '
            f'{len(sc.columns)}; set "by_name": true to align by name',
            details={"param": "by_name"},
        )
    _schema_by_running(sc, op_union, p, None, right)


def agg_expr(spec: dict) -> pl.Expr:
    """One aggregation of a group-by: ``{"column", "agg", "as"}``."""
    agg, column = spec["agg"], spec.get("column")
    if column is None:
        return pl.len().alias(spec.get("as") or "count")
    col = pl.col(column)
    if agg == "count":
        expr = col.count()
    elif agg == "n_unique":
        expr = col.n_unique()
    else:
        expr = getattr(col, agg)()
    return expr.alias(spec.get("as") or f"{column}_{agg}")


def op_group_by(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    out = df.group_by(p["by"], maintain_order=True).agg(agg_expr(a) for a in p["aggregations"])
    return out.sort(p["by"], nulls_last=True, maintain_order=True) if p["sort"] else out


def _schema_group_by(sc: SchemaState, p: dict, env: Env) -> None:
    aggs = p["aggregations"]
    if not isinstance(aggs, list) or not aggs:
        raise RecipeError(
            'param "aggregations" must be a list such as '
            '[{"column": "income", "agg": "mean", "as": "avg_income"}]',
            details={"param": "aggregations"},
        )
    names = list(p["by"])
    for i, spec in enumerate(aggs):
        where = f"aggregation {i + 1}"
        if (
            not isinstance(spec, Mapping)
            or set(spec) - {"column", "agg", "as"}
            or "agg" not in spec
        ):
            raise RecipeError(
                f'{where} must be a mapping with "agg" and optional "column", "as"',
                details={"param": "aggregations"},
            )
        if spec["agg"] not in AGGS:
            raise RecipeError(
                f"{where}: unknown agg {spec['agg']!r}; aggs are: {', '.join(AGGS)}",
                details={"param": "aggregations"},
            )
        column = spec.get("column")
        if column is None and spec["agg"] != "count":
            raise RecipeError(
                f'{where}: agg "{spec["agg"]}" needs a "column"', details={"param": "aggregations"}
            )
        if column is not None:
            sc.require(
                column, "numeric" if spec["agg"] in NUMERIC_AGGS else "any", what=f"{where}: column"
            )
        out = agg_expr(dict(spec)).meta.output_name()
        if out in names:
            raise RecipeError(
                f'{where}: output column "{out}" appears twice; name it with "as"',
                details={"param": "aggregations"},
            )
        names.append(out)
    _schema_by_running(sc, op_group_by, p, None)


def op_pivot(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    on, dtype = p["on"], df.schema[p["on"]]
    key = as_plain(pl.col(on), dtype)
    cells = []
    for value in s["on_values"]:
        hit = key == lit_as(value, dtype)
        picked = pl.col(p["values"]).filter(hit)
        agg = getattr(picked, p["agg"])()
        cells.append(pl.when(hit.any()).then(agg).otherwise(None).alias(str(value)))
    return df.group_by(p["index"], maintain_order=True).agg(cells)


def _fit_pivot(df: pl.DataFrame, p: dict) -> Any:
    col = df.get_column(p["on"])
    if isinstance(col.dtype, (pl.Categorical, pl.Enum)):
        col = col.cast(pl.String)
    return {"on_values": to_json(col.drop_nulls().unique().sort().to_list())}


def _schema_pivot(sc: SchemaState, p: dict, env: Env) -> None:
    if p["on"] in p["index"] or p["values"] in p["index"] or p["on"] == p["values"]:
        raise RecipeError(
            '"index", "on" and "values" must be different columns', details={"param": "on"}
        )
    if p["agg"] in NUMERIC_AGGS:
        sc.require(p["values"], "numeric")
    if env.state is None:  # the new columns are the values of "on", known after fit
        sc.columns = {c: sc.columns.get(c) for c in p["index"]}
        sc.open_prefixes, sc.open_all = (), True
        return
    names = [str(v) for v in env.state["on_values"]]
    clash = [n for n in names if n in p["index"]]
    if clash:
        raise RecipeError(
            f'pivot column "{clash[0]}" would collide with an index column', details={"param": "on"}
        )
    _schema_by_running(sc, op_pivot, p, env.state)


def op_unpivot(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.unpivot(
        on=p["on"], index=p["index"], variable_name=p["variable_name"], value_name=p["value_name"]
    )


def _schema_unpivot(sc: SchemaState, p: dict, env: Env) -> None:
    if p["variable_name"] == p["value_name"] or {p["variable_name"], p["value_name"]} & set(
        p["index"]
    ):
        raise RecipeError(
            '"variable_name", "value_name" and the index columns must differ',
            details={"param": "value_name"},
        )
    _schema_by_running(sc, op_unpivot, p, None)


_DATASET = Param("dataset", "dataset", required=True, doc="name of the other dataset")

register(
    OpSpec(
        "join",
        "combine",
        "Join another dataset on key columns.",
        (
            _DATASET,
            Param("on", "columns", doc="key columns present on both sides"),
            Param("left_on", "columns"),
            Param("right_on", "names"),
            Param("how", "choice", default="inner", choices=JOINS),
            Param("suffix", "str", default="_right"),
        ),
        op_join,
        _schema_join,
        dataset=True,
    )
)
register(
    OpSpec(
        "union",
        "combine",
        "Append the rows of another dataset (aligned by column name).",
        (
            _DATASET,
            Param("by_name", "bool", default=True, doc="align by name; missing columns are null"),
            Param("distinct", "bool", default=False, doc="drop duplicate rows afterwards"),
        ),
        op_union,
        _schema_union,
        dataset=True,
    )
)
register(
    OpSpec(
        "group_by",
        "combine",
        "Group rows by keys and aggregate (groups in order of appearance).",
        (
            Param("by", "columns", required=True),
            Param(
                "aggregations",
                "any",
                required=True,
                doc='[{"column", "agg", "as"}]; aggs: ' + ", ".join(AGGS),
            ),
            Param("sort", "bool", default=False, doc="sort the groups by their keys"),
        ),
        op_group_by,
        _schema_group_by,
    )
)
register(
    OpSpec(
        "pivot",
        "combine",
        "Spread the values of one column into columns (learned at fit).",
        (
            Param("index", "columns", required=True),
            Param("on", "column", required=True, col_kind="discrete"),
            Param("values", "column", required=True),
            Param(
                "agg",
                "choice",
                default="first",
                choices=("first", "last", "sum", "mean", "median", "min", "max", "count"),
            ),
        ),
        op_pivot,
        _schema_pivot,
        fit=_fit_pivot,
    )
)
register(
    OpSpec(
        "unpivot",
        "combine",
        "Turn columns into (variable, value) rows.",
        (
            Param("index", "columns", required=True),
            Param("on", "columns", doc="default: all other columns"),
            Param("variable_name", "name", default="variable"),
            Param("value_name", "name", default="value"),
        ),
        op_unpivot,
        _schema_unpivot,
    )
)
