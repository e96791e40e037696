"""Small inline SVG charts, drawn server-side so the report needs no script or network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import escape

__all__ = ["bars", "color", "heatmap", "histogram", "short"]


def _f(x: float) -> str:
    """Coordinates with one decimal: enough on screen, and keeps the HTML small."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def short(v: Any, width: int = 24) -> str:
    """A value as text cut to ``width`` characters."""
    if isinstance(v, float):
        text = f"{v:.4g}"
    else:
        text = str(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def color(v: float | None) -> str:
    """Diverging colour for -1..1 (blue - white - red); grey for missing."""
    if v is None or not math.isfinite(v):
        return "#eee"
    v = max(-1.0, min(1.0, v))
    t = abs(v)
    base = (214, 39, 40) if v > 0 else (31, 119, 180)
    r, g, b = (round(255 + (c - 255) * t) for c in base)
    return f"#{r:02x}{g:02x}{b:02x}"


def histogram(edges: Sequence[float], counts: Sequence[float], *, width: int = 300,
              height: int = 90, labels: tuple[str, str] | None = None) -> str:
    """Vertical bars of a histogram with its first and last edge as labels."""
    if not counts:
        return ""
    top = max(counts) or 1.0
    plot_h = height - 14
    bw = width / len(counts)
    rects = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        if h > 0:
            rects.append(f'<rect x="{_f(i * bw)}" y="{_f(plot_h - h)}" '
                         f'width="{_f(max(bw - 1, 0.5))}" height="{_f(h)}"/>')
    lo, hi = labels or (short(edges[0], 14), short(edges[-1], 14))
    return (
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<g fill="#4c78a8">{"".join(rects)}</g>'
        f'<text x="0" y="{height - 2}">{escape(lo)}</text>'
        f'<text x="{width}" y="{height - 2}" text-anchor="end">{escape(hi)}</text></svg>'
    )


def bars(items: Sequence[tuple[Any, float]], total: float, *, width: int = 300,
         row: int = 16, label_width: int = 110) -> str:
    """Horizontal bars for the most frequent values, with share labels."""
    if not items:
        return ""
    top = max(c for _, c in items) or 1.0
    bar_w = width - label_width - 46
    parts = []
    for i, (value, count) in enumerate(items):
        y = i * row
        w = bar_w * count / top
        share = count / total if total else 0.0
        parts.append(
            f'<text x="{label_width - 4}" y="{y + 12}" text-anchor="end">'
            f'{escape(short(value, 16))}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{_f(max(w, 0.5))}" height="{row - 5}"/>'
            f'<text x="{_f(label_width + w + 3)}" y="{y + 12}">{share:.1%}</text>'
        )
    h = row * len(items)
    return (f'<svg class="bars" width="{width}" height="{h}" viewBox="0 0 {width} {h}">'
            f'<g fill="#4c78a8">{"".join(parts)}</g></svg>')


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], *,
            cell: int | None = None) -> str:
    """A square matrix of -1..1 values as coloured cells, with the names as labels."""
    n = len(names)
    if n == 0:
        return ""
    cell = cell or max(6, min(22, 560 // n))
    label = 120 if cell >= 10 else 0  # tiny cells: names are listed in the table below
    size = label + n * cell
    out = [f'<svg class="heat" width="{size}" height="{size}" viewBox="0 0 {size} {size}">']
    if label:
        for i, name in enumerate(names):
            c = label + i * cell + cell * 0.7
            out.append(f'<text x="{label - 3}" y="{_f(c)}" text-anchor="end">'
                       f'{escape(short(name, 18))}</text>')
            out.append(f'<text transform="translate({_f(c)},{label - 3})rotate(-90)">'
                       f'{escape(short(name, 18))}</text>')
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            tip = f"<title>{escape(names[i])} × {escape(names[j])}: {v}</title>" if n <= 25 else ""
            out.append(f'<rect x="{label + j * cell}" y="{label + i * cell}" width="{cell}" '
                       f'height="{cell}" fill="{color(v)}">{tip}</rect>' if tip else
                       f'<rect x="{label + j * cell}" y="{label + i * cell}" width="{cell}" '
                       f'height="{cell}" fill="{color(v)}"/>')
    out.append("</svg>")
    return "".join(out)
