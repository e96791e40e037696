"""Model Monitor's files (CONTRACTS.md §5): constraints suggested from a baseline's
``statistics.json``, a baseline read back as reference samples (Kiln's files or
SageMaker's), current data conformed to the baseline's types, and the checks that
write ``constraint_violations.json``."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kiln.core.errors import InvalidArgument
from kiln.monitoring._drift import CategoricalSample, NumericSample, Sample

__all__ = [
    "CHECK_TYPES",
    "DEFAULT_MONITORING_CONFIG",
    "baseline_samples",
    "check_baseline",
    "check_constraints",
    "conform",
    "suggest_constraints",
]

CHECK_TYPES = ("data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check", "extra_column_check", "categorical_values_check")
DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
    "datatype_check_threshold": 0.1, "domain_content_threshold": 0.1,
    "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1, "comparison_method": "Robust",
                                 "categorical_comparison_threshold": 0.1, "categorical_drift_method": "LInfinity"},
}
TYPES = ("Integral", "Fractional", "String", "Unknown")
MAX_DOMAIN = 1000  # a string feature with more distinct values gets no domain constraint


def _features(doc: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise InvalidArgument(f"{what} is not a Model Monitor document: it needs a 'features' list")
    out = []
    for i, f in enumerate(doc["features"]):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
            raise InvalidArgument(f"{what}: feature #{i} has no name")
        if f.get("inferred_type", "Unknown") not in TYPES:
            raise InvalidArgument(f"{what}: feature {f['name']!r} has inferred_type {f.get('inferred_type')!r}; use one of {', '.join(TYPES)}")
        out.append(f)
    return out


def check_baseline(statistics: Any, constraints: Any) -> None:
    """Refuse files that are not Model Monitor's statistics / constraints, saying which and why."""
    _features(statistics, "statistics.json")
    _features(constraints, "constraints.json")
    cfg = constraints.get("monitoring_config", {})
    if not isinstance(cfg, dict):
        raise InvalidArgument("constraints.json: monitoring_config must be an object")


def _stats_of(feature: dict[str, Any]) -> dict[str, Any]:
    return feature.get("numerical_statistics") or feature.get("string_statistics") or {}


def suggest_constraints(statistics: dict[str, Any], *, monitoring_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``constraints.json`` for a baseline's ``statistics.json``, as Model Monitor suggests them:
    each feature's type and completeness, non-negativity of numbers, and the domain of
    string features with at most 1,000 distinct values."""
    feats = []
    for f in _features(statistics, "statistics.json"):
        st = _stats_of(f)
        common = st.get("common", {})
        present, missing = float(common.get("num_present", 0)), float(common.get("num_missing", 0))
        out: dict[str, Any] = {"name": f["name"], "inferred_type": f["inferred_type"],
                               "completeness": present / (present + missing) if present + missing else 1.0}
        if f["inferred_type"] in ("Integral", "Fractional"):
            out["num_constraints"] = {"is_non_negative": bool(st.get("min") is not None and st["min"] >= 0)}
        elif f["inferred_type"] == "String":
            buckets = st.get("distribution", {}).get("categorical", {}).get("buckets", [])
            covered = sum(float(b.get("count", 0)) for b in buckets)
            if buckets and len(buckets) <= MAX_DOMAIN and covered >= present:
                out["string_constraints"] = {"domains": [str(b["value"]) for b in buckets]}
        feats.append(out)
    cfg = _merge(DEFAULT_MONITORING_CONFIG, monitoring_config or {})
    return {"version": 0, "features": feats, "monitoring_config": cfg}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of a deep copy of ``base`` (a caller editing the result must not edit the defaults)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def config_of(constraints: dict[str, Any]) -> dict[str, Any]:
    """The constraints' monitoring_config over Model Monitor's defaults."""
    return _merge(DEFAULT_MONITORING_CONFIG, constraints.get("monitoring_config") or {})


def baseline_samples(statistics: dict[str, Any]) -> dict[str, Sample]:
    """Reference samples from a ``statistics.json``: a numeric feature's KLL sketch items
    (an item on level ``i`` weighs ``2**i``), or its histogram buckets when the sketch is
    absent; a string feature's categorical buckets."""
    out: dict[str, Sample] = {}
    for f in _features(statistics, "statistics.json"):
        st = _stats_of(f)
        dist = st.get("distribution", {}) if isinstance(st, dict) else {}
        if f["inferred_type"] in ("Integral", "Fractional"):
            kll = dist.get("kll", {}) or {}
            levels = (kll.get("sketch") or {}).get("data") or []
            values: list[float] = []
            weights: list[float] = []
            for i, level in enumerate(levels):
                values.extend(float(v) for v in level)
                weights.extend([float(2**i)] * len(level))
            if not values:
                for b in kll.get("buckets") or []:
                    lo, hi, c = float(b["lower_bound"]), float(b["upper_bound"]), float(b.get("count", 0))
                    if c > 0:
                        values.append((lo + hi) / 2)
                        weights.append(c)
            if values:
                out[f["name"]] = NumericSample.of(np.array(values), np.array(weights))
            else:
                out[f["name"]] = NumericSample(np.array([], dtype=np.float64))
        elif f["inferred_type"] == "String":
            buckets = dist.get("categorical", {}).get("buckets") or []
            out[f["name"]] = CategoricalSample({str(b["value"]): float(b.get("count", 0)) for b in buckets})
    return out


def conform(table: pa.Table, features: list[dict[str, Any]]) -> tuple[pa.Table, dict[str, int], dict[str, int]]:
    """The current table with the baseline's features cast to their types; returns it, per
    feature how many present values did not fit the type (a string where a number was
    expected, a fraction where an integer was), and how many of those became missing
    (text that is no number)."""
    import pandas as pd

    types = {f["name"]: f.get("inferred_type", "Unknown") for f in features}
    mismatches: dict[str, int] = {}
    unparsed: dict[str, int] = {}
    cols, names = [], []
    for name in table.column_names:
        arr = table.column(name)
        want = types.get(name)
        bad = 0
        if want in ("Integral", "Fractional"):
            if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type) or pa.types.is_boolean(arr.type):
                num = pc.cast(arr, pa.float64())
            else:
                text = pc.cast(arr, pa.string()) if not pa.types.is_string(arr.type) else arr
                series = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
                parsed = pd.to_numeric(series, errors="coerce")
                bad = int((series.notna() & parsed.isna()).sum())
                unparsed[name] = bad
                num = pa.chunked_array([pa.array(parsed.to_numpy(dtype=np.float64), from_pandas=True)])
            if want == "Integral":
                v = num.to_numpy(zero_copy_only=False) if isinstance(num, pa.Array) else num.combine_chunks().to_numpy(zero_copy_only=False)
                finite = v[np.isfinite(v)]
                bad += int(np.count_nonzero(finite != np.floor(finite)))
            arr = num
        elif want == "String" and not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            try:
                arr = pc.cast(arr, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad = len(arr) - arr.null_count
                arr = pa.nulls(len(arr), pa.string())
        if want is not None:
            mismatches[name] = bad
        cols.append(arr)
        names.append(name)
    return (pa.table(cols, names=names) if names else table), mismatches, unparsed


def _violation(name: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def check_constraints(constraints: dict[str, Any], current: dict[str, Any], *, columns: list[str], mismatches: dict[str, int],
                      drift: list[dict[str, Any]], values: dict[str, CategoricalSample] | None = None,
                      unparsed: dict[str, int] | None = None) -> list[dict[str, str]]:
    """Model Monitor's data quality checks of the current data against ``constraints``.

    Args:
        constraints: the baseline's ``constraints.json``.
        current: the current data's ``statistics.json``.
        columns: the current data's columns.
        mismatches: per feature, present values that did not fit the baseline's type.
        unparsed: per feature, those of them read as missing (text that is no number).
        drift: the per-column drift results (``baseline_drift`` decides the drift check).
        values: the current counts of string features (for categorical_values_check).

    Returns:
        ``constraint_violations.json``'s ``violations`` list.
    """
    cfg = config_of(constraints)
    if cfg.get("evaluate_constraints", "Enabled") != "Enabled":
        return []
    feats = {f["name"]: f for f in _features(constraints, "constraints.json")}
    stats = {f["name"]: f for f in current.get("features", [])}
    out: list[dict[str, str]] = []
    for name in feats:
        if name not in columns:
            out.append(_violation(name, "missing_column_check", f"Column {name!r} of the baseline is missing from the current data."))
    for name in columns:
        if name not in feats:
            out.append(_violation(name, "extra_column_check", f"Column {name!r} of the current data is not in the baseline."))
    dt_threshold = float(cfg.get("datatype_check_threshold", 0.1))
    domain_threshold = float(cfg.get("domain_content_threshold", 0.1))
    for name, f in feats.items():
        if name not in columns:
            continue
        common = _stats_of(stats.get(name, {})).get("common", {})
        present, missing = float(common.get("num_present", 0)), float(common.get("num_missing", 0))
        seen = present + missing
        bad = mismatches.get(name, 0)
        lost = (unparsed or {}).get(name, 0)
        typed = present + lost
        if typed and bad / typed > dt_threshold:
            out.append(_violation(name, "data_type_check",
                                  f"Data type match requirement is not met. Expected data type: {f.get('inferred_type')}, "
                                  f"{bad} of {int(typed)} values ({bad / typed:.1%}) do not match (threshold {dt_threshold:g})."))
        want = f.get("completeness")
        if isinstance(want, int | float) and seen:
            # A value that did not fit the type was read as missing: count it as present here.
            got = (present + lost) / seen
            if got < float(want) - 1e-9:
                out.append(_violation(name, "completeness_check",
                                      f"Data completeness requirement is not met. Expected completeness: {float(want):.4g}, observed: {got:.4g}."))
        domains = (f.get("string_constraints") or {}).get("domains")
        counts = (values or {}).get(name)
        if domains and counts is not None and counts.total:
            allowed = set(map(str, domains))
            outside = sum(c for v, c in counts.counts.items() if str(v) not in allowed)
            share = outside / counts.total
            if share > domain_threshold:
                examples = sorted(str(v) for v in counts.counts if str(v) not in allowed)[:5]
                out.append(_violation(name, "categorical_values_check",
                                      f"Data content requirement is not met: {share:.1%} of values are outside the baseline's domain "
                                      f"(threshold {domain_threshold:g}), e.g. {', '.join(map(repr, examples))}."))
    dist = cfg.get("distribution_constraints", {})
    if dist.get("perform_comparison", "Enabled") == "Enabled":
        for d in drift:
            if d.get("baseline_drift") and d["name"] in feats:
                distance = d.get("distance")
                out.append(_violation(d["name"], "baseline_drift_check",
                                      f"Baseline drift distance: {distance:.4g} exceeds threshold: {d['distance_threshold']:g}"
                                      if isinstance(distance, float) and math.isfinite(distance) else "Baseline drift distance exceeds the threshold"))
    return out
