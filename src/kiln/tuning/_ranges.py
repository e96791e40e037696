"""SageMaker's ParameterRanges, checked, and turned into what a strategy samples.

``{"IntegerParameterRanges": [{"Name", "MinValue", "MaxValue", "ScalingType"}],
"ContinuousParameterRanges": [...], "CategoricalParameterRanges": [{"Name", "Values"}]}``;
values may be strings, as SageMaker sends them, or numbers. Scaling Auto is Linear here.
ReverseLogarithmic (continuous only, ``0 <= MinValue < MaxValue < 1``) samples ``1 - x`` on
a log scale, so values near 1 are explored as finely as Logarithmic explores values near 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kiln.core.errors import InvalidArgument

__all__ = ["KINDS", "MAX_GRID", "Range", "grid_points", "grid_size", "parse_ranges", "ranges_json"]

KINDS = {"IntegerParameterRanges": "integer", "ContinuousParameterRanges": "continuous", "CategoricalParameterRanges": "categorical"}
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
MAX_RANGES = 30  # SageMaker's limit on the ranges of one tuning job
MAX_VALUES = 30  # values of one categorical range
MAX_GRID = 10_000
EXAMPLE = '{"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.01", "MaxValue": "0.5", "ScalingType": "Logarithmic"}]}'


@dataclass(frozen=True)
class Range:
    """One tuned hyperparameter."""

    name: str
    kind: str  # integer | continuous | categorical
    low: float | None = None
    high: float | None = None
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"Name": self.name, "Values": list(self.values)}
        fmt = (lambda v: str(int(v))) if self.kind == "integer" else (lambda v: repr(float(v)))
        return {"Name": self.name, "MinValue": fmt(self.low), "MaxValue": fmt(self.high), "ScalingType": self.scaling}

    def distribution(self) -> Any:
        """The Optuna distribution the strategy samples (for ReverseLogarithmic: of ``1 - x``)."""
        import optuna

        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.values))
        if self.kind == "integer":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.scaling == "Logarithmic")  # type: ignore[arg-type]
        if self.scaling == "ReverseLogarithmic":
            return optuna.distributions.FloatDistribution(1.0 - float(self.high), 1.0 - float(self.low), log=True)  # type: ignore[arg-type]
        return optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=self.scaling == "Logarithmic")  # type: ignore[arg-type]

    def to_value(self, sampled: Any) -> Any:
        """The hyperparameter a trial gets from what the strategy sampled."""
        if self.kind == "categorical":
            return str(sampled)
        if self.kind == "integer":
            return int(sampled)
        return 1.0 - float(sampled) if self.scaling == "ReverseLogarithmic" else float(sampled)

    def to_sampled(self, value: Any) -> Any | None:
        """What the strategy would have sampled for ``value`` (a warm-start parent's), or None
        when it falls outside this range."""
        if self.kind == "categorical":
            return str(value) if str(value) in self.values else None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or not (self.low <= number <= self.high):  # type: ignore[operator]
            return None
        if self.kind == "integer":
            return int(number) if number == int(number) else None
        return 1.0 - number if self.scaling == "ReverseLogarithmic" else number


def _number(item: Mapping[str, Any], key: str, *, name: str, integer: bool) -> float:
    raw = item.get(key)
    if raw is None or isinstance(raw, bool):
        raise InvalidArgument(f"range {name!r} needs {key} (a number, or a string holding one)")
    try:
        value = int(str(raw).strip()) if integer else float(str(raw).strip())
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise InvalidArgument(f"range {name!r}: {key} {str(raw)[:40]!r} is not {kind}") from None
    if not math.isfinite(value):
        raise InvalidArgument(f"range {name!r}: {key} must be finite")
    return value


def _one(kind: str, item: Any, seen: set[str]) -> Range:
    if not isinstance(item, Mapping):
        raise InvalidArgument(f"each range is an object with a Name; got {type(item).__name__}. E.g. {EXAMPLE}")
    name = item.get("Name")
    if not isinstance(name, str) or not 1 <= len(name) <= 256 or "=" in name or "\x00" in name:
        raise InvalidArgument("each range needs a Name: the hyperparameter it tunes (1-256 characters, no '=')")
    if name in seen:
        raise InvalidArgument(f"hyperparameter {name!r} has more than one range; give each one range")
    if name == "_tuning_objective_metric" or name.startswith("sagemaker_"):
        raise InvalidArgument(f"{name!r} is reserved by SageMaker and cannot be tuned")
    seen.add(name)
    if kind == "categorical":
        values = item.get("Values")
        if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or not 1 <= len(values) <= MAX_VALUES:
            raise InvalidArgument(f"categorical range {name!r} needs Values: a list of 1-{MAX_VALUES} values")
        text = [str(v) if not isinstance(v, bool) else str(v).lower() for v in values]
        if any(isinstance(v, (Mapping, list)) for v in values) or any(not v or len(v) > 256 for v in text):
            raise InvalidArgument(f"categorical range {name!r}: each value is a string (or number) of 1-256 characters")
        if len(set(text)) != len(text):
            raise InvalidArgument(f"categorical range {name!r} lists a value twice")
        extra = set(item) - {"Name", "Values"}
        if extra:
            raise InvalidArgument(f"categorical range {name!r} takes Name and Values, not {sorted(extra)}")
        return Range(name=name, kind=kind, values=tuple(text))
    extra = set(item) - {"Name", "MinValue", "MaxValue", "ScalingType"}
    if extra:
        raise InvalidArgument(f"{kind} range {name!r} takes Name, MinValue, MaxValue and ScalingType, not {sorted(extra)}")
    integer = kind == "integer"
    low = _number(item, "MinValue", name=name, integer=integer)
    high = _number(item, "MaxValue", name=name, integer=integer)
    if low > high or (low == high and not integer):
        raise InvalidArgument(f"range {name!r}: MinValue {low:g} must be below MaxValue {high:g}")
    scaling = item.get("ScalingType", "Auto") or "Auto"
    if scaling not in SCALINGS:
        raise InvalidArgument(f"range {name!r}: ScalingType {str(scaling)[:40]!r} is not one of {', '.join(SCALINGS)}")
    if scaling == "Logarithmic" and low <= 0:
        raise InvalidArgument(f"range {name!r}: Logarithmic scaling needs MinValue > 0 (got {low:g}); use Linear, or a positive MinValue")
    if scaling == "ReverseLogarithmic":
        if integer:
            raise InvalidArgument(f"range {name!r}: ReverseLogarithmic scaling is for continuous ranges only; use Linear or Logarithmic")
        if not (0 <= low and high < 1):
            raise InvalidArgument(f"range {name!r}: ReverseLogarithmic scaling needs 0 <= MinValue < MaxValue < 1 (got {low:g}..{high:g})")
    return Range(name=name, kind=kind, low=low, high=high, scaling=scaling)


def parse_ranges(ranges: Any) -> list[Range]:
    """The ranges of a ParameterRanges object, checked.

    Raises:
        InvalidArgument: naming what is wrong (an unknown key, a bad bound or scaling, a duplicate).
    """
    if isinstance(ranges, str):
        import orjson

        try:
            ranges = orjson.loads(ranges)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"hyperparameter ranges are not valid JSON ({exc}); e.g. {EXAMPLE}") from None
    if not isinstance(ranges, Mapping):
        raise InvalidArgument(f"hyperparameter ranges are a JSON object of SageMaker's ParameterRanges; e.g. {EXAMPLE}")
    unknown = set(ranges) - set(KINDS)
    if unknown:
        raise InvalidArgument(f"unknown key(s) {sorted(map(str, unknown))[:5]} in the ranges; use {', '.join(KINDS)}")
    out: list[Range] = []
    seen: set[str] = set()
    for key, kind in KINDS.items():
        items = ranges.get(key) or []
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise InvalidArgument(f"{key} is a list of ranges; e.g. {EXAMPLE}")
        out.extend(_one(kind, item, seen) for item in items)
    if not out:
        raise InvalidArgument(f"give at least one hyperparameter range; e.g. {EXAMPLE}")
    if len(out) > MAX_RANGES:
        raise InvalidArgument(f"at most {MAX_RANGES} hyperparameter ranges are allowed (SageMaker's limit); got {len(out)}")
    return out


def ranges_json(ranges: Sequence[Range]) -> dict[str, list[dict[str, Any]]]:
    """The ranges as SageMaker's ParameterRanges (every kind present, possibly empty)."""
    out: dict[str, list[dict[str, Any]]] = {key: [] for key in KINDS}
    by_kind = {v: k for k, v in KINDS.items()}
    for r in ranges:
        out[by_kind[r.kind]].append(r.as_json())
    return out


def grid_size(ranges: Sequence[Range]) -> int:
    """How many points the grid over ``ranges`` has.

    Raises:
        InvalidArgument: a continuous range (a grid needs values to enumerate), or too many points.
    """
    size = 1
    for r in ranges:
        if r.kind == "continuous":
            raise InvalidArgument(
                f"the Grid strategy enumerates values, and {r.name!r} is a continuous range; "
                "make it a CategoricalParameterRanges (or IntegerParameterRanges), or use Bayesian or Random"
            )
        size *= len(r.values) if r.kind == "categorical" else int(r.high) - int(r.low) + 1  # type: ignore[arg-type]
        if size > MAX_GRID:
            raise InvalidArgument(f"the grid has more than {MAX_GRID} points; narrow the ranges or use Bayesian or Random")
    return size


def grid_points(ranges: Sequence[Range]) -> list[dict[str, Any]]:
    """Every point of the grid, in a fixed order (sampled values)."""
    axes = [list(r.values) if r.kind == "categorical" else list(range(int(r.low), int(r.high) + 1)) for r in ranges]  # type: ignore[arg-type]
    return [dict(zip((r.name for r in ranges), point, strict=True)) for point in itertools.product(*axes)]
