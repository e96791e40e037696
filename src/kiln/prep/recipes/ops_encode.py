"""Categorical encoders: one-hot, ordinal, target mean, frequency.

Categories are learned at fit (sorted). Nulls are not a category: they give
null (all zeros for one-hot). Values not seen at fit follow ``handle_unknown``:
``"ignore"`` (null, or all zeros for one-hot), ``"error"`` (apply fails and
names them) or ``"value"`` (``unknown_value``; for one-hot, a 1 in the extra
column ``<column>_<unknown_value>``).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from ._base import Env, OpSpec, check_new_name, floats, register, to_json
from ._errors import RecipeError
from ._kernel_helpers import as_plain, lit_as, lit_series, unseen, unseen_error
from ._params import Param
from ._schema import SchemaState

UNKNOWN = ("ignore", "error", "value")


def categories_of(df: pl.DataFrame, name: str, limit: int | None = None) -> list[Any]:
    """Sorted distinct non-null values; with ``limit``, only the most frequent ones."""
    col = df.get_column(name)
    if isinstance(col.dtype, (pl.Categorical, pl.Enum)):
        col = col.cast(pl.String)
    col = col.drop_nulls()
    if limit is not None:
        counts = col.value_counts(name="__n")
        col = counts.sort(["__n", name], descending=[True, False]).head(limit).get_column(name)
    return to_json(col.unique().sort().to_list())


def _check_unknown(df: pl.DataFrame, p: dict, s: Any) -> None:
    if p["handle_unknown"] == "error":
        for name, cats in zip(p["columns"], s["categories"]):
            new = unseen(df, name, cats)
            if new:
                raise unseen_error(name, new)


def op_one_hot(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    _check_unknown(df, p, s)
    sep, flags = p["separator"], {}
    for name, cats in zip(p["columns"], s["categories"]):
        dtype = df.schema[name]
        col = as_plain(pl.col(name), dtype)
        for value in cats:
            flags[f"{name}{sep}{value}"] = (col == lit_as(value, dtype)).fill_null(False)
        if p["handle_unknown"] == "value":
            other = col.is_not_null() & ~col.is_in(lit_series(cats, dtype).implode())
            key = f"{name}{sep}{p['unknown_value']}"
            # An existing category named like the bucket shares its column.
            flags[key] = flags[key] | other if key in flags else other
    out = df.with_columns(flag.cast(pl.Int8).alias(key) for key, flag in flags.items())
    return out.drop(p["columns"]) if p["drop_original"] else out


def _fit_one_hot(df: pl.DataFrame, p: dict) -> Any:
    return {"categories": [categories_of(df, c, p["max_categories"]) for c in p["columns"]]}


def _schema_one_hot(sc: SchemaState, p: dict, env: Env) -> None:
    sep = p["separator"]
    if p["drop_original"]:
        sc.drop(p["columns"])
    if env.state is None:  # column names come from the data
        sc.open_prefixes = (*sc.open_prefixes, *(c + sep for c in p["columns"]))
        return
    for name, cats in zip(p["columns"], env.state["categories"]):
        extra = [p["unknown_value"]] if p["handle_unknown"] == "value" else []
        new = list(dict.fromkeys(f"{name}{sep}{value}" for value in [*cats, *extra]))
        for column in new:
            check_new_name(sc, column, param="columns")
            sc.add(column, pl.Int8())


def _recode(
    df: pl.DataFrame, p: dict, s: Any, values: list[list[Any]], dtype: pl.DataType, default: Any
) -> pl.DataFrame:
    """Replace each category by its learned value; nulls stay null."""
    _check_unknown(df, p, s)
    exprs = []
    for name, cats, vals in zip(p["columns"], s["categories"], values):
        col_dtype = df.schema[name]
        col = as_plain(pl.col(name), col_dtype)
        mapped = col.replace_strict(
            lit_series(cats, col_dtype),
            pl.Series(vals, dtype=dtype),
            default=pl.lit(default, dtype=dtype),
            return_dtype=dtype,
        )
        exprs.append(pl.when(col.is_null()).then(None).otherwise(mapped).alias(name))
    return df.with_columns(exprs)


def _unknown_default(p: dict, fallback: Any) -> Any:
    if p["handle_unknown"] == "value":
        return fallback if p["unknown_value"] is None else p["unknown_value"]
    return None


def op_ordinal_encode(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    codes = [list(range(len(cats))) for cats in s["categories"]]
    return _recode(df, p, s, codes, pl.Int32(), _unknown_default(p, -1))


def _fit_ordinal(df: pl.DataFrame, p: dict) -> Any:
    given = p["categories"] or {}
    return {"categories": [given[c] if c in given else categories_of(df, c) for c in p["columns"]]}


def _schema_ordinal(sc: SchemaState, p: dict, env: Env) -> None:
    given = p["categories"]
    if given is not None and (
        not isinstance(given, dict)
        or not all(
            k in p["columns"] and isinstance(v, list) and v and len(set(map(repr, v))) == len(v)
            for k, v in given.items()
        )
    ):
        raise RecipeError(
            'param "categories" must map some of "columns" to lists of '
            "distinct values, in code order",
            details={"param": "categories"},
        )
    if p["unknown_value"] is not None and not isinstance(p["unknown_value"], int):
        raise RecipeError(
            'param "unknown_value" must be an integer code', details={"param": "unknown_value"}
        )
    for name in p["columns"]:
        sc.add(name, pl.Int32())


def op_target_encode(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return _recode(df, p, s, s["values"], pl.Float64(), _unknown_default(p, s["global_mean"]))


def _fit_target(df: pl.DataFrame, p: dict) -> Any:
    target = p["target"]
    data = df.filter(pl.col(target).is_not_null())
    y = data.get_column(target).cast(pl.Float64)
    prior = floats([y.mean()])[0]
    m = float(p["smoothing"])
    cats_all, vals_all = [], []
    for name in p["columns"]:
        key = as_plain(pl.col(name), df.schema[name])
        stats = (
            data.group_by(key.alias("__k"))
            .agg(pl.col(target).cast(pl.Float64).mean().alias("__mean"), pl.len().alias("__n"))
            .drop_nulls("__k")
            .sort("__k")
        )
        cats_all.append(to_json(stats.get_column("__k").to_list()))
        vals = []
        for mean, n in zip(stats.get_column("__mean").to_list(), stats.get_column("__n").to_list()):
            vals.append((n * mean + m * prior) / (n + m) if m > 0 else mean)
        vals_all.append(floats(vals))
    return {"global_mean": prior, "categories": cats_all, "values": vals_all}


def _schema_target(sc: SchemaState, p: dict, env: Env) -> None:
    if p["target"] in p["columns"]:
        raise RecipeError(
            f'the target "{p["target"]}" cannot also be encoded', details={"param": "target"}
        )
    _schema_float_values(sc, p, env)


def _schema_float_values(sc: SchemaState, p: dict, env: Env) -> None:
    value = p["unknown_value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise RecipeError(
            'param "unknown_value" must be a number', details={"param": "unknown_value"}
        )
    dtype = pl.Float64() if p.get("normalize", True) else pl.Int64()
    for name in p["columns"]:
        sc.add(name, dtype)


def op_frequency_encode(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    dtype = pl.Float64() if p["normalize"] else pl.Int64()
    key = "fractions" if p["normalize"] else "counts"
    return _recode(df, p, s, s[key], dtype, _unknown_default(p, 0))


def _fit_frequency(df: pl.DataFrame, p: dict) -> Any:
    cats_all, counts_all, fractions_all = [], [], []
    for name in p["columns"]:
        col = df.get_column(name)
        if isinstance(col.dtype, (pl.Categorical, pl.Enum)):
            col = col.cast(pl.String)
        counts = col.drop_nulls().value_counts(name="__n").sort(name)
        total = max(int(counts.get_column("__n").sum()), 1)
        cats_all.append(to_json(counts.get_column(name).to_list()))
        ns = [int(n) for n in counts.get_column("__n").to_list()]
        counts_all.append(ns)
        fractions_all.append([n / total for n in ns])
    return {"categories": cats_all, "counts": counts_all, "fractions": fractions_all}


_DISCRETE = Param("columns", "columns", required=True, col_kind="discrete")


def _unknown(default: str) -> Param:
    return Param(
        "handle_unknown",
        "choice",
        default=default,
        choices=UNKNOWN,
        doc="what to do with categories not seen at fit",
    )


register(
    OpSpec(
        "one_hot",
        "encode",
        "One 0/1 column per category learned at fit.",
        (
            _DISCRETE,
            _unknown("ignore"),
            Param(
                "unknown_value",
                "str",
                default="other",
                doc='column suffix for unseen values ("value")',
            ),
            Param("max_categories", "int", minimum=1, doc="keep only the most frequent categories"),
            Param("separator", "str", default="_"),
            Param("drop_original", "bool", default=True),
        ),
        op_one_hot,
        _schema_one_hot,
        fit=_fit_one_hot,
        rowwise=True,
    )
)
register(
    OpSpec(
        "ordinal_encode",
        "encode",
        "Replace categories by integer codes (sorted, or as given).",
        (
            _DISCRETE,
            Param("categories", "any", doc="column -> categories in code order"),
            _unknown("value"),
            Param("unknown_value", "scalar", doc="code for unseen values (default -1)"),
        ),
        op_ordinal_encode,
        _schema_ordinal,
        fit=_fit_ordinal,
        rowwise=True,
    )
)
register(
    OpSpec(
        "target_encode",
        "encode",
        "Replace categories by the mean target of their rows (smoothed toward the global mean).",
        (
            _DISCRETE,
            Param("target", "column", required=True, col_kind="numeric"),
            Param("smoothing", "number", default=0.0, minimum=0, doc="weight of the global mean"),
            _unknown("value"),
            Param(
                "unknown_value", "scalar", doc="value for unseen categories (default: global mean)"
            ),
        ),
        op_target_encode,
        _schema_target,
        fit=_fit_target,
        rowwise=True,
    )
)
register(
    OpSpec(
        "frequency_encode",
        "encode",
        "Replace categories by their share (or count) of rows at fit.",
        (
            _DISCRETE,
            Param("normalize", "bool", default=True, doc="fractions, not counts"),
            _unknown("value"),
            Param("unknown_value", "scalar", doc="value for unseen categories (default 0)"),
        ),
        op_frequency_encode,
        _schema_float_values,
        fit=_fit_frequency,
        rowwise=True,
    )
)
