"""A monitoring run's HTML page: one offline file (no script, no CDN), the verdict per
column and, for the drifted ones, the reference and current distributions as inline SVG."""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["render"]

_CSS = ("body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}"
        "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}.bad{color:#b00;font-weight:600}"
        ".ok{color:#070}figure{display:inline-block;margin:8px}.r{fill:#888}.c{fill:#d55}")


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "—" if not math.isfinite(v) else f"{v:.4g}"
    return "—" if v is None else html.escape(str(v))


def _svg(hist: dict[str, Any]) -> str:
    ref, cur = hist["reference"], hist["current"]
    n = len(ref)
    if not n:
        return ""
    top = max(max(ref), max(cur), 1e-12)
    w, h, bw = 320, 100, 320 / n
    bars = []
    for i in range(n):
        for j, (share, cls) in enumerate(((ref[i], "r"), (cur[i], "c"))):
            bh = share / top * (h - 4)
            bars.append(f'<rect class="{cls}" x="{i * bw + j * bw / 2:.1f}" y="{h - bh:.1f}" width="{bw / 2 - 0.5:.1f}" height="{bh:.1f}"/>')
    if "edges" in hist:
        axis = f"{hist['edges'][0]:.4g} … {hist['edges'][-1]:.4g}"
    else:
        axis = ", ".join(hist["labels"][:6]) + (" …" if len(hist["labels"]) > 6 else "")
    return f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}">{"".join(bars)}</svg><figcaption>{html.escape(axis)}</figcaption>'


def render(result: dict[str, Any], violations: list[dict[str, str]], *, title: str = "Data quality") -> str:
    """The page for a run's ``result`` document and its violations."""
    dd = result.get("dataset_drift", {})
    verdict = '<span class="bad">drift detected</span>' if dd.get("drift") else '<span class="ok">no dataset drift</span>'
    rows = []
    figures = []
    for c in result.get("columns", []):
        if "error" in c:
            rows.append(f"<tr><td>{html.escape(c['name'])}</td><td colspan=6>{html.escape(c['error'])}</td></tr>")
            continue
        mark = '<span class="bad">drift</span>' if c["drifted"] else '<span class="ok">ok</span>'
        rows.append(f"<tr><td>{html.escape(c['name'])}</td><td>{c['kind']}</td><td>{c['method']}</td><td>{_num(c['score'])}</td>"
                    f"<td>{_num(c['threshold'])}</td><td>{mark}</td><td>{_num(c['distance'])}</td></tr>")
        if c.get("histogram"):
            figures.append(f"<figure><b>{html.escape(c['name'])}</b><br>{_svg(c['histogram'])}</figure>")
    vrows = "".join(f"<tr><td>{html.escape(v['feature_name'])}</td><td>{v['constraint_check_type']}</td><td>{html.escape(v['description'])}</td></tr>"
                    for v in violations)
    quality = result.get("model_quality")
    qhtml = ""
    if quality:
        qhtml = "<h2>Model quality</h2><table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{_num(v)}</td></tr>"
                                                           for k, v in quality.get("metrics", {}).items()) + "</table>"
    faults = {k: v for k, v in result.get("faults", {}).items() if v}
    fhtml = "<h2>Faults</h2><ul>" + "".join(f"<li>{html.escape(k)}: {html.escape(str(v))[:300]}</li>" for k, v in faults.items()) + "</ul>" if faults else ""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{verdict}: {dd.get('drifted_columns', 0)} of {dd.get('columns', 0)} columns drifted "
            f"(share {dd.get('share', 0):.2f}, threshold {dd.get('threshold', 0.5)}); reference {result.get('reference', {}).get('rows')} rows, "
            f"current {result.get('current', {}).get('rows')} rows; {len(violations)} violations. "
            f'Grey: reference, red: current.</p>{"".join(figures)}{qhtml}'
            f"<h2>Columns</h2><table><tr><th>column</th><th>type</th><th>method</th><th>score</th><th>threshold</th><th>verdict</th>"
            f"<th>Model Monitor distance</th></tr>{''.join(rows)}</table>"
            f"<h2>Violations</h2><table><tr><th>feature</th><th>check</th><th>description</th></tr>{vrows}</table>{fhtml}</body></html>")
