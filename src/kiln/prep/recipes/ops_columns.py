"""Column ops: select, drop, rename, cast, reorder."""

from __future__ import annotations

from typing import Any

import polars as pl

from ._base import Env, OpSpec, columns_param, register
from ._errors import RecipeError
from ._kernel_helpers import pl_dtype
from ._params import Param
from ._schema import SchemaState


def op_select_columns(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.select(p["columns"])


def _schema_select(sc: SchemaState, p: dict, env: Env) -> None:
    sc.columns = {c: sc.columns.get(c) for c in p["columns"]}
    sc.open_prefixes, sc.open_all = (), False


def op_drop_columns(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.drop(p["columns"])


def _schema_drop(sc: SchemaState, p: dict, env: Env) -> None:
    sc.drop(p["columns"])


def op_rename_columns(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.rename(p["mapping"])


def _schema_rename(sc: SchemaState, p: dict, env: Env) -> None:
    mapping = p["mapping"]
    for old in mapping:
        sc.require(old, what="column to rename")
    kept = [c for c in sc.columns if c not in mapping]
    targets = list(mapping.values())
    for new in targets:
        if new in kept or targets.count(new) > 1:
            raise RecipeError(
                f'rename would create two columns named "{new}"', details={"column": new}
            )
    sc.columns = {mapping.get(c, c): t for c, t in sc.columns.items()}


def op_cast(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    target = pl_dtype(p["dtype"])
    exprs = []
    for name in p["columns"]:
        col = pl.col(name)
        if df.schema[name] == pl.String and target == pl.Date:
            exprs.append(col.str.to_date(strict=p["strict"]))
        elif df.schema[name] == pl.String and isinstance(target, pl.Datetime):
            exprs.append(
                col.str.to_datetime(
                    time_unit=target.time_unit, time_zone=target.time_zone, strict=p["strict"]
                )
            )
        else:
            exprs.append(col.cast(target, strict=p["strict"]))
    return df.with_columns(exprs)


def _schema_cast(sc: SchemaState, p: dict, env: Env) -> None:
    try:
        target = pl_dtype(p["dtype"])
    except ValueError:
        raise RecipeError(
            f'param "dtype": unknown dtype {p["dtype"]!r}; use e.g. int64, float64, str, bool, '
            "date, datetime[us], category",
            details={"param": "dtype"},
        ) from None
    for name in p["columns"]:
        sc.add(name, target)


def op_reorder_columns(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    first = p["columns"]
    return df.select(first + [c for c in df.columns if c not in first])


def _schema_reorder(sc: SchemaState, p: dict, env: Env) -> None:
    first = {c: sc.columns.get(c) for c in p["columns"]}
    sc.columns = first | {c: t for c, t in sc.columns.items() if c not in first}


register(
    OpSpec(
        "select_columns",
        "columns",
        "Keep only the given columns, in the given order.",
        (columns_param(doc="columns to keep"),),
        op_select_columns,
        _schema_select,
    )
)
register(
    OpSpec(
        "drop_columns",
        "columns",
        "Remove the given columns.",
        (columns_param(doc="columns to remove"),),
        op_drop_columns,
        _schema_drop,
    )
)
register(
    OpSpec(
        "rename_columns",
        "columns",
        "Rename columns.",
        (Param("mapping", "mapping", required=True, doc="old name -> new name"),),
        op_rename_columns,
        _schema_rename,
    )
)
register(
    OpSpec(
        "cast",
        "columns",
        "Convert columns to another type (strings parse as ISO dates).",
        (
            columns_param(),
            Param(
                "dtype",
                "str",
                required=True,
                doc="int64, float64, str, bool, date, datetime[us], ...",
            ),
            Param(
                "strict", "bool", default=True, doc="fail on values that do not convert (else null)"
            ),
        ),
        op_cast,
        _schema_cast,
        rowwise=True,
    )
)
register(
    OpSpec(
        "reorder_columns",
        "columns",
        "Move the given columns first; the others follow in order.",
        (columns_param(doc="columns to put first"),),
        op_reorder_columns,
        _schema_reorder,
    )
)
