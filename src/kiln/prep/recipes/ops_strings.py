"""String ops. Patterns are Rust regex syntax (as polars uses); ``$1`` in a
replacement refers to a capture group. Categorical columns are treated as
strings and come out as strings."""

from __future__ import annotations

from typing import Any

import polars as pl

from ._base import Env, OpSpec, check_new_name, columns_become, register
from ._errors import RecipeError
from ._kernel_helpers import as_plain
from ._params import Param
from ._schema import SchemaState


def _s(df: pl.DataFrame, name: str) -> pl.Expr:
    return as_plain(pl.col(name), df.schema[name])


def op_str_lower(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(_s(df, c).str.to_lowercase() for c in p["columns"])


def op_str_upper(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(_s(df, c).str.to_uppercase() for c in p["columns"])


def op_str_title(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(_s(df, c).str.to_titlecase() for c in p["columns"])


def op_str_strip(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    exprs = []
    for name in p["columns"]:
        col = _s(df, name).str
        if p["side"] == "both":
            exprs.append(col.strip_chars(p["chars"]))
        elif p["side"] == "left":
            exprs.append(col.strip_chars_start(p["chars"]))
        else:
            exprs.append(col.strip_chars_end(p["chars"]))
    return df.with_columns(exprs)


def op_str_replace(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    literal = not p["regex"]
    if p["all"]:
        return df.with_columns(
            _s(df, c).str.replace_all(p["pattern"], p["replacement"], literal=literal)
            for c in p["columns"]
        )
    return df.with_columns(
        _s(df, c).str.replace(p["pattern"], p["replacement"], literal=literal) for c in p["columns"]
    )


def _check_regex(pattern: str, param: str = "pattern") -> None:
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.PolarsError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("error:")]
        why = lines[0] if lines else "invalid regex"
        raise RecipeError(
            f'param "{param}": {pattern!r} is not a valid regex ({why})', details={"param": param}
        ) from None


def _schema_replace(sc: SchemaState, p: dict, env: Env) -> None:
    if p["regex"]:
        _check_regex(p["pattern"])
    columns_become(pl.String())(sc, p, env)


def op_str_extract(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    out = p["output"] or p["column"]
    return df.with_columns(_s(df, p["column"]).str.extract(p["pattern"], p["group"]).alias(out))


def _schema_extract(sc: SchemaState, p: dict, env: Env) -> None:
    _check_regex(p["pattern"])
    out = p["output"] or p["column"]
    if p["output"]:
        check_new_name(sc, out)
    sc.add(out, pl.String())


def op_str_split(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    name = p["column"]
    outputs = p["outputs"] or [f"{name}_{i}" for i in range(p["parts"])]
    pieces = _s(df, name).str.splitn(p["separator"], p["parts"])
    out = df.with_columns(pieces.struct.field(f"field_{i}").alias(o) for i, o in enumerate(outputs))
    return out.drop(name) if p["drop_original"] else out


def _schema_split(sc: SchemaState, p: dict, env: Env) -> None:
    name = p["column"]
    outputs = p["outputs"] or [f"{name}_{i}" for i in range(p["parts"])]
    if len(outputs) != p["parts"]:
        raise RecipeError(
            f'param "outputs" names {len(outputs)} columns but "parts" is {p["parts"]}',
            details={"param": "outputs"},
        )
    if p["drop_original"]:
        sc.drop([name])
    for out in outputs:
        check_new_name(sc, out, param="outputs")
        sc.add(out, pl.String())


def op_str_pad(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    if p["side"] == "left":
        return df.with_columns(
            _s(df, c).str.pad_start(p["width"], p["fill_char"]) for c in p["columns"]
        )
    return df.with_columns(_s(df, c).str.pad_end(p["width"], p["fill_char"]) for c in p["columns"])


def _schema_pad(sc: SchemaState, p: dict, env: Env) -> None:
    if len(p["fill_char"]) != 1:
        raise RecipeError(
            f'param "fill_char" must be one character, got {p["fill_char"]!r}',
            details={"param": "fill_char"},
        )
    columns_become(pl.String())(sc, p, env)


def op_str_length(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(
        _s(df, c).str.len_chars().cast(pl.Int64).alias(c + p["suffix"]) for c in p["columns"]
    )


def _schema_length(sc: SchemaState, p: dict, env: Env) -> None:
    for name in p["columns"]:
        check_new_name(sc, name + p["suffix"], param="suffix")
        sc.add(name + p["suffix"], pl.Int64())


def op_str_contains(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    test = _s(df, p["column"]).str.contains(p["pattern"], literal=not p["regex"])
    return df.with_columns(test.alias(p["output"]))


def _schema_contains(sc: SchemaState, p: dict, env: Env) -> None:
    if p["regex"]:
        _check_regex(p["pattern"])
    check_new_name(sc, p["output"])
    sc.add(p["output"], pl.Boolean())


_STR = Param("columns", "columns", required=True, col_kind="string")
_ONE = Param("column", "column", required=True, col_kind="string")
_TO_STR = columns_become(pl.String())

for _name, _kernel, _doc in (
    ("str_lower", op_str_lower, "Lower-case strings."),
    ("str_upper", op_str_upper, "Upper-case strings."),
    ("str_title", op_str_title, "Title-case strings."),
):
    register(OpSpec(_name, "strings", _doc, (_STR,), _kernel, _TO_STR, rowwise=True))

register(
    OpSpec(
        "str_strip",
        "strings",
        "Strip whitespace (or the given characters) from the ends.",
        (
            _STR,
            Param("chars", "str", doc="characters to strip (default: whitespace)"),
            Param("side", "choice", default="both", choices=("both", "left", "right")),
        ),
        op_str_strip,
        _TO_STR,
        rowwise=True,
    )
)
register(
    OpSpec(
        "str_replace",
        "strings",
        "Replace a substring or regex match.",
        (
            _STR,
            Param("pattern", "str", required=True),
            Param("replacement", "str", required=True),
            Param("regex", "bool", default=False),
            Param("all", "bool", default=True, doc="replace every match, not only the first"),
        ),
        op_str_replace,
        _schema_replace,
        rowwise=True,
    )
)
register(
    OpSpec(
        "str_extract",
        "strings",
        "Extract a regex capture group (null when there is no match).",
        (
            _ONE,
            Param("pattern", "str", required=True),
            Param("group", "int", default=1, minimum=0),
            Param("output", "name", doc="new column (default: replace the column)"),
        ),
        op_str_extract,
        _schema_extract,
        rowwise=True,
    )
)
register(
    OpSpec(
        "str_split",
        "strings",
        "Split a string column into a fixed number of columns.",
        (
            _ONE,
            Param("separator", "str", required=True),
            Param("parts", "int", default=2, minimum=1),
            Param(
                "outputs", "names", doc="names of the new columns (default: column_0, column_1...)"
            ),
            Param("drop_original", "bool", default=False),
        ),
        op_str_split,
        _schema_split,
        rowwise=True,
    )
)
register(
    OpSpec(
        "str_pad",
        "strings",
        "Pad strings to a width.",
        (
            _STR,
            Param("width", "int", required=True, minimum=0),
            Param("side", "choice", default="left", choices=("left", "right")),
            Param("fill_char", "str", default=" "),
        ),
        op_str_pad,
        _schema_pad,
        rowwise=True,
    )
)
register(
    OpSpec(
        "str_length",
        "strings",
        "Add the length (in characters) of each string.",
        (_STR, Param("suffix", "name", default="_length")),
        op_str_length,
        _schema_length,
        rowwise=True,
    )
)
register(
    OpSpec(
        "str_contains",
        "strings",
        "Add a boolean column: does the string contain a pattern?",
        (
            _ONE,
            Param("pattern", "str", required=True),
            Param("regex", "bool", default=False),
            Param("output", "name", required=True),
        ),
        op_str_contains,
        _schema_contains,
        rowwise=True,
    )
)
