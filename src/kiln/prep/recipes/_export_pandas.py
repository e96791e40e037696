"""The pandas export: which kernel runs each op, and SQL expressions as programs.

SQL expressions (``filter``, ``formula``, ``when``) are parsed here, at export
time, by the engine's own parser (``pl.sql_expr``); its expression tree is
written into the script as a nested-list program that ``_pandas_sql`` evaluates
with the engine's semantics. The script thus needs only pandas (with pyarrow,
which its Arrow-backed frames already need) and no SQL engine, and an
expression the program cannot express is refused at export, never at run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import polars as pl

from . import _pandas_combine, _pandas_kernels, _pandas_sql
from ._engine import Step
from ._errors import RecipeError

_SQL_PARAMS = {"filter": "condition", "formula": "expr"}
_COMPARE = {"Eq", "NotEq", "Lt", "LtEq", "Gt", "GtEq", "EqValidity", "NotEqValidity"}
_ARITH = {"Plus", "Minus", "Multiply", "TrueDivide", "And", "Or"}
_FUNCTIONS = {"IsNull", "IsNotNull", "Not", "Abs", "Coalesce", "Uppercase", "Lowercase",
              "LenChars", "StartsWith", "EndsWith"}  # fmt: skip
_CASTS = {"Float64", "Float32", "String", "Boolean", "Int8", "Int16", "Int32", "Int64",
          "UInt8", "UInt16", "UInt32", "UInt64"}  # fmt: skip


def pandas_kernel(op: str) -> Callable[..., Any] | None:
    """The pandas kernel of an op (``pd_<op>``), or None."""
    for module in (_pandas_kernels, _pandas_combine, _pandas_sql):
        fn = getattr(module, "pd_" + op, None)
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    return None


def pandas_params(step: Step, params: dict[str, Any]) -> dict[str, Any]:
    """The params the pandas kernel reads: SQL expressions become programs.

    Raises:
        RecipeError: an expression uses SQL the pandas export cannot evaluate.
    """
    name = _SQL_PARAMS.get(step.op)
    return params if name is None else params | {name: sql_program(params[name])}


def sql_program(expr: str) -> list[Any]:
    """Compile a SQL expression, as the engine parses it, into a ``_pandas_sql`` program.

    Raises:
        RecipeError: the expression uses something the pandas export cannot evaluate.
    """
    tree = json.loads(pl.sql_expr(expr).meta.serialize(format="json"))
    return _compile(tree, expr)


def _refuse(expr: str, what: str) -> RecipeError:
    return RecipeError(
        f"the pandas export cannot evaluate {what} in {expr!r} (the polars export can)"
    )


def _literal(node: dict[str, Any]) -> Any:
    """A literal's value, computed by polars itself (decimals become floats)."""
    value = pl.select(pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json"))
    series = value.to_series()
    if series.dtype == pl.Decimal or isinstance(series.dtype, pl.Decimal):
        series = series.cast(pl.Float64)
    if isinstance(series.dtype, pl.List):
        return series.explode().to_list()
    return series.to_list()[0] if series.len() == 1 else series.to_list()


def _compile(node: Any, expr: str) -> list[Any]:  # noqa: PLR0911
    if not isinstance(node, dict) or len(node) != 1:
        raise _refuse(expr, "an expression")
    kind, body = next(iter(node.items()))
    if kind == "Column" and isinstance(body, str):
        return ["col", body]
    if kind == "Literal":
        if "Series" in body:
            return ["list", _literal(node)]
        return ["lit", _literal(node)]
    if kind == "BinaryExpr":
        op = body["op"]
        if op not in _COMPARE | _ARITH:
            raise _refuse(expr, f"the operator {op}")
        return ["op", op, _compile(body["left"], expr), _compile(body["right"], expr)]
    if kind == "Ternary":
        parts = (body["predicate"], body["truthy"], body["falsy"])
        return ["if", *(_compile(p, expr) for p in parts)]
    if kind == "Cast":
        dtype = body["dtype"].get("Literal") if isinstance(body["dtype"], dict) else None
        if dtype not in _CASTS:
            raise _refuse(expr, f"a cast to {json.dumps(body['dtype'])}")
        return ["cast", _compile(body["expr"], expr), dtype, body["options"] == "Strict"]
    if kind == "Function":
        return _function(body, expr)
    raise _refuse(expr, kind)


def _function(body: dict[str, Any], expr: str) -> list[Any]:
    fn, args = body["function"], [_compile(a, expr) for a in body["input"]]
    if isinstance(fn, dict) and "Sql" in fn:
        sql = fn["Sql"]
        if isinstance(sql, dict) and sql.get("Binary") in _COMPARE | _ARITH | {"Div", "Rem", "Mul"}:
            return ["op", sql["Binary"], *args]
        if isinstance(sql, dict) and "IsIn" in sql and args[1][0] in ("list", "lit"):
            values = args[1][1] if isinstance(args[1][1], list) else [args[1][1]]
            return ["in", args[0], values]
        raise _refuse(expr, f"the function {json.dumps(sql)}")
    name = fn
    if isinstance(fn, dict):
        (group, inner), = fn.items()
        name = inner if isinstance(inner, str) else next(iter(inner))
        if name == "Contains" and not inner["Contains"]["literal"]:
            raise _refuse(expr, "a pattern match (ILIKE or a LIKE with inner wildcards)")
        if group not in ("Boolean", "StringExpr"):
            raise _refuse(expr, f"the function {json.dumps(fn)}")
    if name not in _FUNCTIONS | {"Contains"}:
        raise _refuse(expr, f"the function {name}")
    if name in ("StartsWith", "EndsWith", "Contains") and args[1][0] != "lit":
        raise _refuse(expr, f"{name} with a pattern that is not a literal")
    return ["fn", name, *args]
