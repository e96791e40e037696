"""What every part of the metrics stage checks alike: namespaces, metric and dimension names,
statistics, periods and durations."""

from __future__ import annotations

import datetime as dt
import math
import re
import time

from kiln.core.errors import InvalidArgument

__all__ = [
    "BASIC_STATISTICS", "MINUTE", "HOUR", "check_dimensions", "check_metric_name", "check_namespace",
    "normalise_statistic", "parse_since",
]

MINUTE = 60
HOUR = 3600
BASIC_STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
MAX_DIMENSIONS = 30
MAX_DATUMS = 1000
MAX_VALUES = 150

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/#:-]{0,254}")
_METRIC = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,254}")
_DIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_DIM_VALUE = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d{1,3})?)")
_ALIASES = {
    "samplecount": "SampleCount", "count": "SampleCount", "sum": "Sum", "average": "Average", "avg": "Average",
    "mean": "Average", "minimum": "Minimum", "min": "Minimum", "maximum": "Maximum", "max": "Maximum",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _short(text: object, limit: int = 60) -> str:
    s = str(text)
    return repr(s) if len(s) <= limit else repr(s[:limit]) + f"... ({len(s):,} characters)"


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidArgument(f"invalid metric namespace {_short(namespace)}: use 1-255 letters, digits and . _ / # : -, starting with a letter or digit (e.g. kiln/monitoring)")
    return namespace


def check_metric_name(name: str) -> str:
    if not isinstance(name, str) or not _METRIC.fullmatch(name):
        raise InvalidArgument(f"invalid metric name {_short(name)}: use 1-255 letters, digits and _ . : / -, starting with a letter, digit or '_'")
    return name


def check_dimensions(dimensions: dict[str, str] | None) -> dict[str, str]:
    dims = dict(dimensions or {})
    if len(dims) > MAX_DIMENSIONS:
        raise InvalidArgument(f"{len(dims)} dimensions: a metric takes at most {MAX_DIMENSIONS}")
    for k, v in dims.items():
        if not isinstance(k, str) or not _DIM_NAME.fullmatch(k):
            raise InvalidArgument(f"invalid dimension name {_short(k)}: use letters, digits, '_', '.' and '-', starting with a letter or '_'")
        if not isinstance(v, str) or not _DIM_VALUE.fullmatch(v):
            raise InvalidArgument(f"invalid value {_short(v)} of dimension {k!r}: use 1-256 printable characters")
    return dict(sorted(dims.items()))


def normalise_statistic(stat: str) -> str:
    """CloudWatch's statistic name for ``stat``: SampleCount, Sum, Average, Minimum, Maximum or
    a percentile ``pNN`` / ``pNN.N`` (``avg``, ``min``, ``max``, ``count`` are taken too)."""
    if not isinstance(stat, str):
        raise InvalidArgument(f"invalid statistic {_short(stat)}")
    named = _ALIASES.get(stat.lower())
    if named:
        return named
    m = _PERCENTILE.fullmatch(stat.lower())
    if m and 0 < float(m.group(1)) < 100:
        return "p" + m.group(1)
    raise InvalidArgument(f"unknown statistic {_short(stat)}: use SampleCount, Sum, Average, Minimum, Maximum or a percentile such as p50 or p99.9")


def check_period(period: int) -> int:
    if not isinstance(period, int) or isinstance(period, bool) or period < MINUTE or period % MINUTE or period > 30 * 86_400:
        raise InvalidArgument(f"invalid period {_short(period)}: use a multiple of 60 seconds, at most 30 days (60, 300, 3600...)")
    return period


def check_time(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or not 0 <= value < 1e11:
        raise InvalidArgument(f"invalid {what} {_short(value)}: use Unix seconds")
    return float(value)


def parse_since(text: str, *, now: float | None = None) -> float:
    """``10m``, ``2h``, ``3d`` (that long ago), an ISO-8601 time, or Unix seconds -> Unix seconds."""
    now = time.time() if now is None else now
    raw = text.strip()
    m = _DURATION.fullmatch(raw)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(check_time(float(raw), "time") or 0.0)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid time {_short(raw)}: use a duration (10m, 2h, 3d), an ISO-8601 time or Unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
