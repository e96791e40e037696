"""Export a fitted recipe as a standalone Python script.

The script carries the very kernel functions the engine runs (copied from
their source, with the helpers they call) and the fitted state as literals,
so its ``apply`` gives exactly the engine's output without importing kiln.
"""

from __future__ import annotations

import dis
import inspect
import math
import pprint
import textwrap
import types
from collections.abc import Callable
from typing import Any, Literal

from ._base import REGISTRY
from ._errors import RecipeError
from ._kernel_helpers import apply_when
from ._params import resolve_params
from ._recipe import FittedRecipe

ALLOWED_MODULES = {
    "polars": "pl",
    "numpy": "np",
    "math": "math",
    "pandas": "pd",
    "pyarrow": "pa",
    "re": "re",
}
_ENGINE_ONLY = {"polars": "polars", "pandas": "pandas", "pyarrow": "pandas"}
_PACKAGE = __name__.rsplit(".", 1)[0]

_HEADER = '''#!/usr/bin/env python3
"""Kiln recipe exported as a standalone {engine} script (no kiln import needed).

Steps:
{steps}

Usage:
    python recipe.py INPUT.parquet|INPUT.csv OUTPUT.parquet [--dataset NAME=PATH ...]

Or import it and call ``apply(df)`` on a {frame}.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

import numpy as np
{engine_import}

nan, inf = float("nan"), float("inf")
'''

_MAIN = {
    "polars": """

def _read(path: str) -> pl.DataFrame:
    return pl.read_csv(path) if path.lower().endswith(".csv") else pl.read_parquet(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Apply the exported Kiln recipe.")
    parser.add_argument("input", help="input Parquet or CSV file")
    parser.add_argument("output", help="output Parquet file")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH",
                        help="another dataset read by join/union steps")
    args = parser.parse_args(argv)
    datasets = dict(item.split("=", 1) for item in args.dataset)
    out = apply(_read(args.input), {name: _read(path) for name, path in datasets.items()})
    out.write_parquet(args.output)


if __name__ == "__main__":
    main()
""",
    "pandas": """

def _read(path: str) -> pd.DataFrame:
    if path.lower().endswith(".csv"):
        return pd.read_csv(path, dtype_backend="pyarrow", engine="pyarrow")
    return pd.read_parquet(path, dtype_backend="pyarrow")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Apply the exported Kiln recipe.")
    parser.add_argument("input", help="input Parquet or CSV file")
    parser.add_argument("output", help="output Parquet file")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH",
                        help="another dataset read by join/union steps")
    args = parser.parse_args(argv)
    datasets = dict(item.split("=", 1) for item in args.dataset)
    out = apply(_read(args.input), {name: _read(path) for name, path in datasets.items()})
    out.to_parquet(args.output, index=False)


if __name__ == "__main__":
    main()
""",
}


class _Raw:
    """A literal that must be written as code (NaN and infinities)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __repr__(self) -> str:
        return self.code


def _literal_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _Raw("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, dict):
        return {k: _literal_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_safe(v) for v in value]
    return value


def literal(value: Any, indent: int = 0) -> str:
    """A Python literal for JSON-like data."""
    text = pprint.pformat(_literal_safe(value), width=96 - indent, sort_dicts=False)
    return textwrap.indent(text, " " * indent).lstrip()


def call_code(name: str, args: list[Any], indent: int = 4) -> str:
    """``name(arg, ...)`` on one line, or one argument per line when long."""
    shown = [a if a == "df" else literal(a) for a in args]
    line = f"{name}({', '.join(shown)})"
    if len(line) + indent + 5 <= 100 and "\n" not in line:
        return line
    pad = " " * (indent + 4)
    body = "".join(f"{pad}{a if a == 'df' else literal(a, indent + 4)},\n" for a in args)
    return f"{name}(\n{body}{' ' * indent})"


def _globals_used(fn: types.FunctionType) -> set[str]:
    names: set[str] = set()
    todo = [fn.__code__]
    while todo:
        code = todo.pop()
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                names.add(str(ins.argval))
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return names


def collect_functions(
    roots: list[Callable[..., Any]], engine_module: str
) -> list[types.FunctionType]:
    """The functions ``roots`` need, dependencies first, checked for exportability.

    Raises:
        RecipeError: a function uses something a standalone script cannot have.
    """
    ordered: list[types.FunctionType] = []
    by_name: dict[str, types.FunctionType] = {}

    def visit(fn: types.FunctionType) -> None:
        if by_name.get(fn.__name__) is fn:
            return
        if fn.__name__ in by_name:
            raise RecipeError(f"cannot export: two helpers named {fn.__name__}")
        by_name[fn.__name__] = fn
        for name in sorted(_globals_used(fn)):
            if name not in fn.__globals__:
                continue  # a builtin
            obj = fn.__globals__[name]
            if isinstance(obj, types.ModuleType):
                if ALLOWED_MODULES.get(obj.__name__) != name or (
                    _ENGINE_ONLY.get(obj.__name__, engine_module) != engine_module
                ):
                    raise RecipeError(f"cannot export {fn.__name__}: it uses module {obj.__name__}")
            elif isinstance(obj, types.FunctionType) and obj.__module__.startswith(_PACKAGE):
                visit(obj)
            else:
                raise RecipeError(f"cannot export {fn.__name__}: it uses global {name!r}")
        ordered.append(fn)

    for root in roots:
        visit(root)  # type: ignore[arg-type]
    return ordered


def _source(fn: types.FunctionType) -> str:
    return textwrap.dedent(inspect.getsource(fn)).rstrip() + "\n"


def export_python(fitted: FittedRecipe, *, engine: Literal["polars", "pandas"] = "polars") -> str:
    """Write a standalone script that reproduces ``fitted.apply``.

    The script imports only numpy and polars (or pandas), inlines the fitted
    state as literals, defines ``apply(df, datasets=None)`` and a ``__main__``
    that reads a Parquet/CSV input and writes a Parquet output. The polars
    script runs the engine's own kernels, so its output is identical. The
    pandas script (Arrow-backed columns) matches it too, up to the last bits
    of floats from functions such as ``log``. Every op exports to both; the
    SQL expressions of ``filter``, ``formula`` and ``when`` are compiled by
    the engine's parser into programs the pandas script evaluates, and an
    expression using SQL those programs cannot express (e.g. ``ROUND``, date
    functions) is refused with the construct named.

    Args:
        fitted: the fitted recipe.
        engine: ``"polars"`` or ``"pandas"``.

    Returns:
        The script's source text.

    Raises:
        RecipeError: a step cannot be exported for this engine (all are named).
    """
    if engine not in ("polars", "pandas"):
        raise RecipeError(f'unknown engine {engine!r}; use "polars" or "pandas"')
    calls, roots = _calls(fitted, engine)
    functions = collect_functions(roots, engine)
    steps = (
        "\n".join(
            f"    {i + 1}. {s.op}" + (f" (when {s.when})" if s.when else "")
            for i, s in enumerate(fitted.steps)
        )
        or "    (none)"
    )
    alias = "pl" if engine == "polars" else "pd"
    parts = [
        _HEADER.format(
            engine=engine,
            steps=steps,
            frame=f"{engine} DataFrame",
            engine_import=f"import {engine} as {alias}"
            + ("\nimport pyarrow as pa" if engine == "pandas" else ""),
        )
    ]
    parts += ["\n" + _source(fn) for fn in functions]
    frame = f"{alias}.DataFrame"
    parts.append(
        f"\n\ndef apply(df: {frame}, datasets: dict[str, {frame}] | None = None) -> {frame}:\n"
        '    """Apply the fitted recipe."""\n'
        "    datasets = datasets or {}\n" + "".join(calls) + "    return df\n"
    )
    parts.append(_MAIN[engine])
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


def _calls(fitted: FittedRecipe, engine: str) -> tuple[list[str], list[Callable[..., Any]]]:
    from ._export_pandas import pandas_kernel, pandas_params, sql_program
    from ._pandas_sql import pd_apply_when

    calls: list[str] = []
    roots: list[Callable[..., Any]] = []
    refused: list[RecipeError] = []
    for i, (step, state) in enumerate(zip(fitted.steps, fitted.state, strict=True)):
        spec = REGISTRY.get(step.op)
        if spec is None:
            raise RecipeError(f'unknown op "{step.op}"', step_index=i, op=step.op)
        try:
            params = resolve_params(spec.params, step.params)
        except RecipeError as exc:
            raise exc.at(i, step.op) from None
        kernel, when, when_fn = spec.kernel, step.when, apply_when
        if engine == "pandas":
            try:
                params = pandas_params(step, params)
                when = None if when is None else sql_program(when)  # type: ignore[assignment]
            except RecipeError as exc:
                refused.append(RecipeError(exc.reason, step_index=i, op=step.op))
                continue
            kernel, when_fn = pandas_kernel(step.op), pd_apply_when  # type: ignore[assignment]
        roots.append(kernel)
        args = ["df", params, state]
        name = kernel.__name__
        if spec.dataset:
            args.append(_Raw(f"datasets[{params['dataset']!r}]"))
        elif step.when is not None:
            roots.append(when_fn)
            args = ["df", when, _Raw(name), params, state]
            name = when_fn.__name__
        calls.append(f"    # step {i + 1}: {step.op}\n    df = {call_code(name, args)}\n")
    if refused:
        listed = "; ".join(str(e) for e in refused)
        raise RecipeError(
            f"cannot export to {engine}: {listed} (the polars export runs every op)",
            details={"steps": [e.step_index for e in refused]},
        )
    return calls, roots
