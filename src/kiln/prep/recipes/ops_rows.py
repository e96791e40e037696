"""Row ops: filter, formula columns, sort, sample, balance, train/validation/test split.

Expressions are polars SQL expressions over one row's columns (``age > 30 AND
country = 'FR'``, ``income / NULLIF(household, 0)``); quote names that are not
plain identifiers with double quotes. Random ops take a ``seed`` (default 0),
so the same data gives the same rows every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from ._base import Env, OpSpec, check_new_name, columns_param, keep_schema, register, sql_dtype
from ._errors import RecipeError
from ._kernel_helpers import as_plain
from ._params import Param
from ._schema import SchemaState, dtype_name


def op_filter(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.filter(pl.sql_expr(p["condition"]))


def _schema_filter(sc: SchemaState, p: dict, env: Env) -> None:
    dtype = sql_dtype(sc, p["condition"], "condition")
    if dtype is not None and dtype != pl.Boolean:
        raise RecipeError(
            f'param "condition": {p["condition"]!r} gives {dtype_name(dtype)}, not true/false',
            details={"param": "condition"},
        )


def op_formula(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(pl.sql_expr(p["expr"]).alias(p["output"]))


def _schema_formula(sc: SchemaState, p: dict, env: Env) -> None:
    sc.add(p["output"], sql_dtype(sc, p["expr"], "expr"))


def op_sort_rows(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.sort(
        p["columns"], descending=p["descending"], nulls_last=p["nulls_last"], maintain_order=True
    )


def op_sample(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    size = p["n"] if p["n"] is not None else round(p["fraction"] * df.height)
    if not p["replace"]:
        size = min(size, df.height)
    if df.height == 0:
        return df
    rng = np.random.default_rng(p["seed"])
    return df.gather(np.sort(rng.choice(df.height, size=size, replace=p["replace"])))


def _schema_sample(sc: SchemaState, p: dict, env: Env) -> None:
    if (p["n"] is None) == (p["fraction"] is None):
        raise RecipeError('give exactly one of "n" and "fraction"', details={"param": "n"})
    if p["fraction"] is not None and p["fraction"] > 1 and not p["replace"]:
        raise RecipeError('"fraction" above 1 needs "replace": true', details={"param": "fraction"})


def row_groups(df: pl.DataFrame, column: str) -> list[np.ndarray]:
    """Row positions of each value of ``column``, values in sorted order (nulls first)."""
    key = as_plain(pl.col(column), df.schema[column]).alias("k")
    rows = df.select(key, pl.int_range(pl.len(), dtype=pl.Int64).alias("r")).sort(
        ["k", "r"], nulls_last=False
    )
    counts = rows.group_by("k", maintain_order=True).len().get_column("len").to_numpy()
    return np.split(rows.get_column("r").to_numpy(), np.cumsum(counts)[:-1]) if len(counts) else []


def op_balance(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    groups = row_groups(df, p["column"])
    if not groups:
        return df
    rng = np.random.default_rng(p["seed"])
    sizes = [len(g) for g in groups]
    parts = []
    if p["strategy"] == "oversample":
        target = max(sizes)
        for rows in groups:
            parts += [rows, rng.choice(rows, size=target - len(rows), replace=True)]
    else:
        target = min(sizes)
        for rows in groups:
            parts.append(rng.choice(rows, size=target, replace=False))
    return df.gather(np.sort(np.concatenate(parts)))


def op_split(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    names = list(p["parts"])
    fractions = np.array([p["parts"][k] for k in names], dtype=np.float64)
    cuts = np.cumsum(fractions) / fractions.sum()
    if p["stratify"] is None:
        groups = [np.arange(df.height, dtype=np.int64)]
    else:
        groups = row_groups(df, p["stratify"])
    codes = np.zeros(df.height, dtype=np.int64)
    rng = np.random.default_rng(p["seed"])
    for rows in groups:
        order = rng.permutation(rows)
        start = 0
        for code, end in enumerate(np.round(cuts * len(rows)).astype(np.int64)):
            codes[order[start:end]] = code
            start = end
    labels = pl.Series(p["output"], names, dtype=pl.String).gather(codes)
    out = df.with_columns(labels)
    if p["keep"] is not None:
        out = out.filter(pl.col(p["output"]) == p["keep"]).drop(p["output"])
    return out


def _schema_split(sc: SchemaState, p: dict, env: Env) -> None:
    parts = p["parts"]
    if (
        not isinstance(parts, Mapping)
        or not parts
        or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in parts.items()
        )
    ):
        raise RecipeError(
            'param "parts" must map part names to positive fractions, '
            'e.g. {"train": 0.8, "test": 0.2}',
            details={"param": "parts"},
        )
    if abs(sum(parts.values()) - 1.0) > 1e-6:
        raise RecipeError(
            f'param "parts": fractions add up to {sum(parts.values()):g}, not 1',
            details={"param": "parts"},
        )
    if p["keep"] is not None:
        if p["keep"] not in parts:
            raise RecipeError(
                f'param "keep": "{p["keep"]}" is not one of the parts ({", ".join(parts)})',
                details={"param": "keep"},
            )
        return
    check_new_name(sc, p["output"])
    sc.add(p["output"], pl.String())


_SEED = Param("seed", "int", default=0, doc="random seed: the same seed gives the same rows")

register(
    OpSpec(
        "filter",
        "rows",
        "Keep rows where a SQL condition is true.",
        (Param("condition", "expr", required=True, doc="e.g. age >= 18 AND country = 'FR'"),),
        op_filter,
        _schema_filter,
    )
)
register(
    OpSpec(
        "formula",
        "rows",
        "Add (or replace) a column computed by a SQL expression.",
        (
            Param("output", "name", required=True),
            Param("expr", "expr", required=True, doc="e.g. income / NULLIF(household, 0)"),
        ),
        op_formula,
        _schema_formula,
        rowwise=True,
    )
)
register(
    OpSpec(
        "sort_rows",
        "rows",
        "Sort rows by columns (stable).",
        (
            columns_param(doc="sort keys"),
            Param("descending", "bool", default=False),
            Param("nulls_last", "bool", default=True),
        ),
        op_sort_rows,
        keep_schema,
    )
)
register(
    OpSpec(
        "sample",
        "rows",
        "Keep a random sample of rows (in their original order).",
        (
            Param("n", "int", minimum=0),
            Param("fraction", "number", minimum=0),
            Param("replace", "bool", default=False),
            _SEED,
        ),
        op_sample,
        _schema_sample,
    )
)
register(
    OpSpec(
        "balance",
        "rows",
        "Balance classes: oversample smaller ones (with replacement) or undersample larger ones.",
        (
            Param("column", "column", required=True, col_kind="discrete", doc="the class column"),
            Param(
                "strategy", "choice", default="oversample", choices=("oversample", "undersample")
            ),
            _SEED,
        ),
        op_balance,
        keep_schema,
    )
)
register(
    OpSpec(
        "split",
        "rows",
        "Assign rows to train/validation/test parts at random (optionally stratified); add the "
        "part as a column, or keep one part.",
        (
            Param(
                "parts",
                "any",
                default={"train": 0.8, "validation": 0.1, "test": 0.1},
                doc="part name -> fraction, adding up to 1",
            ),
            Param(
                "stratify",
                "column",
                col_kind="discrete",
                doc="keep class proportions of this column",
            ),
            Param("output", "name", default="split"),
            Param("keep", "str", doc="keep only this part (and no split column)"),
            _SEED,
        ),
        op_split,
        _schema_split,
    )
)
