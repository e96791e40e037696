"""Declared op parameters and their checks."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import RecipeError

PARAM_KINDS = (
    "column",
    "columns",
    "name",
    "names",
    "str",
    "int",
    "number",
    "bool",
    "choice",
    "expr",
    "mapping",
    "scalar",
    "list",
    "any",
    "dataset",
)

# Subqueries and table functions (read_csv...) would reach outside the frame.
_FORBIDDEN_SQL = re.compile(r"\bselect\b|\b(?:read|scan)_\w+\s*\(|;", re.IGNORECASE)
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")


@dataclass(frozen=True)
class Param:
    """One declared parameter of an op.

    ``kind`` is one of ``PARAM_KINDS``; ``col_kind`` restricts the dtype of
    ``column``/``columns`` params (``numeric``, ``string``, ``temporal``...).
    A param that is not required and has no default may be omitted or null.
    """

    name: str
    kind: str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    col_kind: str = "any"
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""

    def describe(self) -> dict[str, Any]:
        """A JSON description, for help screens and UIs."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "required": self.required}
        if not self.required:
            out["default"] = self.default
        if self.choices:
            out["choices"] = list(self.choices)
        if self.kind in ("column", "columns") and self.col_kind != "any":
            out["dtype"] = self.col_kind
        if self.doc:
            out["doc"] = self.doc
        return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_error(param: Param, expected: str, value: Any) -> RecipeError:
    return RecipeError(
        f'param "{param.name}" must be {expected}, got {type(value).__name__} {_show(value)}',
        details={"param": param.name},
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def check_sql(text: str, param: str) -> None:
    """Reject SQL that could reach beyond the frame (subqueries, table functions)."""
    bare = _SQL_STRING.sub("''", text)
    found = _FORBIDDEN_SQL.search(bare)
    if found:
        raise RecipeError(
            f'param "{param}": {found.group(0)!r} is not allowed in an expression '
            "(expressions see one row's columns; no subqueries or table functions)",
            details={"param": param},
        )


def _check_one(param: Param, value: Any) -> Any:
    kind = param.kind
    if kind in ("column", "name", "str", "dataset", "expr"):
        if not isinstance(value, str) or (kind != "str" and not value.strip()):
            raise _type_error(param, "a non-empty string", value)
        if kind == "expr":
            check_sql(value, param.name)
        return value
    if kind in ("columns", "names"):
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(v, str) and v for v in items)
        ):
            raise _type_error(param, "a column name or a non-empty list of names", value)
        dupes = sorted({v for v in items if items.count(v) > 1})
        if dupes:
            raise RecipeError(
                f'param "{param.name}" repeats {", ".join(dupes)}', details={"param": param.name}
            )
        return list(items)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(param, "an integer", value)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(param, "a number", value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(param, "true or false", value)
    elif kind == "choice":
        if value not in param.choices:
            options = ", ".join(repr(c) for c in param.choices)
            raise RecipeError(
                f'param "{param.name}" must be one of {options}, got {_show(value)}',
                details={"param": param.name},
            )
    elif kind == "mapping":
        if (
            not isinstance(value, Mapping)
            or not value
            or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items())
        ):
            raise _type_error(param, "a non-empty mapping of names to names", value)
        return dict(value)
    elif kind == "scalar":
        if not _is_scalar(value):
            raise _type_error(param, "a string, number or boolean", value)
    elif kind == "list":
        if not isinstance(value, list) or not all(_is_scalar(v) for v in value):
            raise _type_error(param, "a list of strings, numbers or booleans", value)
        return list(value)
    if kind in ("int", "number"):
        if param.minimum is not None and value < param.minimum:
            raise RecipeError(
                f'param "{param.name}" must be >= {param.minimum}, got {value}',
                details={"param": param.name},
            )
        if param.maximum is not None and value > param.maximum:
            raise RecipeError(
                f'param "{param.name}" must be <= {param.maximum}, got {value}',
                details={"param": param.name},
            )
    return value


def resolve_params(spec_params: tuple[Param, ...], given: Any) -> dict[str, Any]:
    """Check the params of one step and fill in defaults.

    Raises:
        RecipeError: unknown or missing params, or a value of the wrong type.
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise RecipeError(f"params must be a mapping, got {type(given).__name__}")
    known = {p.name: p for p in spec_params}
    for name in given:
        if name not in known:
            hint = difflib.get_close_matches(str(name), list(known), n=1)
            did = f' (did you mean "{hint[0]}"?)' if hint else ""
            listed = ", ".join(known) or "(none)"
            raise RecipeError(
                f'unknown param "{name}"{did}; params are: {listed}', details={"param": name}
            )
    out: dict[str, Any] = {}
    for param in spec_params:
        value = given.get(param.name)
        if value is None:
            if param.required:
                raise RecipeError(
                    f'missing required param "{param.name}"', details={"param": param.name}
                )
            out[param.name] = copy.deepcopy(param.default)
            continue
        out[param.name] = _check_one(param, value)
    return out
