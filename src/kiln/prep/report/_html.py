"""Render a profile document as one self-contained HTML page (Jinja2 + inline SVG)."""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from kiln.prep.report import _svg

__all__ = ["render"]


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kiln.prep.report", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.1%}"
    env.filters["short"] = _svg.short
    env.globals.update(svg_histogram=_svg.histogram, svg_bars=_svg.bars,
                       svg_heatmap=_svg.heatmap, heat_color=_svg.color)
    return env


def _num(v: Any) -> str:
    """Numbers for people: thousands separators, 4 significant digits for floats."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    return str(v)


def render(doc: dict[str, Any]) -> str:
    """The HTML page for a profile document (``ProfileResult.to_json()``)."""
    return _env().get_template("profile.html.j2").render(doc=doc, ov=doc["overview"])
