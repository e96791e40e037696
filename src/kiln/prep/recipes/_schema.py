"""Schemas as the validator sees them: ordered columns, possibly with unknown parts."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa

from ._errors import RecipeError
from ._kernel_helpers import pl_dtype

SchemaLike: TypeAlias = pa.Schema | pl.Schema | Mapping[str, Any]
"""An input schema: a pyarrow or polars schema, or a mapping of column name to a
dtype (a polars or pyarrow type, or a name such as ``"int64"``, ``"str"``,
``"float64"``, ``"bool"``, ``"date"``, ``"datetime[us]"``, ``"category"``)."""

KINDS = ("any", "numeric", "integer", "string", "temporal", "boolean", "discrete")


def dtype_name(dtype: pl.DataType) -> str:
    """The Kiln name of a polars dtype (the inverse of ``pl_dtype``)."""
    if isinstance(dtype, pl.Datetime):
        tz = f", {dtype.time_zone}" if dtype.time_zone else ""
        return f"datetime[{dtype.time_unit}{tz}]"
    if isinstance(dtype, pl.Duration):
        return f"duration[{dtype.time_unit}]"
    if isinstance(dtype, pl.List):
        return f"list[{dtype_name(dtype.inner)}]"
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return "category"
    names = {
        pl.Boolean: "bool",
        pl.String: "str",
        pl.Date: "date",
        pl.Time: "time",
        pl.Null: "null",
    }
    for base, name in names.items():
        if dtype == base:
            return name
    return str(dtype).lower()


def to_polars_dtype(value: Any) -> pl.DataType:
    """Coerce a dtype given in any supported spelling to a polars dtype."""
    if isinstance(value, pl.DataType):
        return value
    if isinstance(value, type) and issubclass(value, pl.DataType):
        return value()
    if isinstance(value, pa.DataType):
        return pl.from_arrow(pa.schema([("x", value)]).empty_table()).schema["x"]
    text = str(value)
    try:
        return pl_dtype(text)
    except ValueError:
        pass
    if text == "object":
        return pl.String()
    raise RecipeError(f"unknown dtype {text!r}")


def matches_kind(dtype: pl.DataType, kind: str) -> bool:
    """Whether a column of ``dtype`` may be used where ``kind`` is expected."""
    if kind == "any":
        return True
    if kind == "numeric":
        return dtype.is_numeric() or dtype == pl.Boolean
    if kind == "integer":
        return dtype.is_integer()
    if kind == "string":
        return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))
    if kind == "temporal":
        return isinstance(dtype, (pl.Date, pl.Datetime))
    if kind == "boolean":
        return dtype == pl.Boolean
    if kind == "discrete":  # values an encoder can treat as categories
        return (
            dtype.is_integer()
            or dtype == pl.Boolean
            or dtype == pl.String
            or isinstance(dtype, (pl.Categorical, pl.Enum))
        )
    raise AssertionError(kind)


_KIND_WORDS = {
    "numeric": "a numeric",
    "integer": "an integer",
    "string": "a string",
    "temporal": "a date or datetime",
    "boolean": "a boolean",
    "discrete": "a string, integer, boolean or categorical",
}


@dataclass
class SchemaState:
    """Columns known at one point of a recipe.

    A dtype of None means the column exists but its type is known only from
    data. ``open_prefixes`` are prefixes of columns that may exist but can only be
    known from data (one-hot outputs before fit); ``open_all`` means any
    column may exist (a pivot before fit).
    """

    columns: dict[str, pl.DataType | None]
    open_prefixes: tuple[str, ...] = ()
    open_all: bool = False

    @classmethod
    def of(cls, schema: SchemaLike) -> SchemaState:
        """Build from any supported schema spelling."""
        if isinstance(schema, pa.Schema):
            return cls(dict(pl.from_arrow(schema.empty_table()).schema))
        if isinstance(schema, Mapping):
            return cls({str(k): to_polars_dtype(v) for k, v in schema.items()})
        raise RecipeError(
            f"a schema must be a pyarrow schema or a mapping, got {type(schema).__name__}"
        )

    def copy(self) -> SchemaState:
        return SchemaState(dict(self.columns), self.open_prefixes, self.open_all)

    def may_have(self, name: str) -> bool:
        return self.open_all or any(name.startswith(p) for p in self.open_prefixes)

    def require(self, name: str, kind: str = "any", *, what: str = "column") -> pl.DataType | None:
        """The dtype of ``name`` (None if unknown); raise if it is absent or of the wrong kind."""
        if name in self.columns:
            dtype = self.columns[name]
            if dtype is not None and not matches_kind(dtype, kind):
                raise RecipeError(
                    f'{what} "{name}" is {dtype_name(dtype)}, expected {_KIND_WORDS[kind]} column',
                    details={"column": name, "dtype": dtype_name(dtype), "expected": kind},
                )
            return dtype
        if self.may_have(name):
            return None
        raise RecipeError(self.not_found(name, what=what), details={"column": name})

    def not_found(self, name: str, *, what: str = "column") -> str:
        names = list(self.columns)
        hint = difflib.get_close_matches(name, names, n=1)
        shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
        did = f' (did you mean "{hint[0]}"?)' if hint else ""
        return f'{what} "{name}" not found{did}; columns are: {shown or "(none)"}'

    def add(self, name: str, dtype: pl.DataType | None) -> None:
        """Add or replace a column (at the end when new)."""
        self.columns[name] = dtype

    def drop(self, names: list[str]) -> None:
        for name in names:
            self.columns.pop(name, None)

    def exact(self) -> bool:
        return not self.open_all and not self.open_prefixes

    def names(self) -> dict[str, str]:
        """Known columns as ``{name: dtype name}`` (``"unknown"`` when only data can tell)."""
        return {k: dtype_name(v) if v is not None else "unknown" for k, v in self.columns.items()}
