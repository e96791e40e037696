"""Which steps the pandas export can run, and with which kernels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _pandas_combine, _pandas_kernels
from ._engine import Step

_SQL_OPS = ("filter", "formula")


def pandas_kernel(op: str) -> Callable[..., Any] | None:
    """The pandas kernel of an op (``pd_<op>``), or None."""
    for module in (_pandas_kernels, _pandas_combine):
        fn = getattr(module, "pd_" + op, None)
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    return None


def pandas_limit(step: Step, params: dict[str, Any], state: Any) -> str | None:
    """Why a step cannot be exported to pandas, or None when it can."""
    op = step.op
    if step.when is not None:
        return '"when" conditions are SQL, which only the polars export runs'
    if op in _SQL_OPS:
        return f"{op} takes a SQL expression, which only the polars export runs"
    if op == "cast" and (
        params["dtype"] not in ("float64", "float32", "str") or not params["strict"]
    ):
        return "the pandas export casts only to float64, float32 or str, strictly"
    if op == "parse_datetime" and any("%.f" in f for f in state["formats"]):
        return "the %.f format (optional fraction) has no pandas equivalent"
    if op == "date_parts" and "week" in params["parts"]:
        return 'the "week" part is not available in the pandas export'
    if op == "join" and params["how"] in ("right", "full"):
        return "the pandas export joins inner, left, semi, anti or cross"
    if op in ("pivot", "date_truncate") or pandas_kernel(op) is None:
        return f"{op} is not available in the pandas export"
    return None
