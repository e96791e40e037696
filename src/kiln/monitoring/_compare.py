"""One data quality comparison: current data against a reference (data or a baseline),
into Model Monitor's files, a result document and an HTML page. Pure: no workspace."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads

from kiln.core.errors import InvalidArgument
from kiln.monitoring._constraints import (
    baseline_samples,
    check_baseline,
    check_constraints,
    conform,
    suggest_constraints,
)
from kiln.monitoring._drift import CategoricalSample, DriftOptions, sample_of, table_drift

__all__ = ["Comparison", "baseline_files", "compare"]


@dataclass
class Comparison:
    """What a comparison writes: ``statistics.json`` of the current data,
    ``constraint_violations.json``, the result document and its HTML page."""

    statistics: dict[str, Any]
    violations: list[dict[str, str]]
    result: dict[str, Any]
    html: str = ""
    constraints: dict[str, Any] = field(default_factory=dict)

    @property
    def constraint_violations(self) -> dict[str, Any]:
        return {"violations": self.violations}


def _statistics(data: Any) -> dict[str, Any]:
    from kiln.prep.stats import compute_statistics

    return compute_statistics(data).to_model_monitor()


def baseline_files(data: Any, *, monitoring_config: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``statistics.json`` and ``constraints.json`` of a dataset (one pass, one batch in memory)."""
    stats = _statistics(data)
    return stats, suggest_constraints(stats, monitoring_config=monitoring_config)


def _column_reader(data: Any, name: str) -> Any:
    if isinstance(data, pa.Table):
        return lambda: data.column(name)
    if isinstance(data, pads.Dataset):
        return lambda: data.to_table(columns=[name]).column(name)
    raise InvalidArgument(f"cannot read reference data of type {type(data).__name__}")


def _as_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pads.Dataset):
        return data.to_table()
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidArgument(f"cannot read current data of type {type(data).__name__}")


def compare(current: Any, *, reference: Any = None, statistics: dict[str, Any] | None = None, constraints: dict[str, Any] | None = None,
            options: DriftOptions | None = None, faults: dict[str, Any] | None = None, html: bool = True,
            title: str = "Data quality") -> Comparison:
    """Compare ``current`` with a reference dataset or a baseline's files.

    Args:
        current: the current data (Arrow table / dataset, pandas DataFrame).
        reference: reference data; or give its ``statistics`` (and ``constraints``) instead.
        statistics: a baseline's ``statistics.json`` (Kiln's or SageMaker's).
        constraints: a baseline's ``constraints.json`` (default: suggested from the statistics).
        options: drift methods and thresholds.
        faults: what the caller already counted (malformed capture lines...), reported as is.
        html: also render the HTML page.
        title: the page's title.

    Raises:
        InvalidArgument: neither or both references, or files that are not Model Monitor's.
    """
    if (reference is None) == (statistics is None):
        raise InvalidArgument("give either reference data or a baseline's statistics, not both or neither")
    if reference is not None:
        statistics, suggested = baseline_files(reference)
        constraints = constraints or suggested
        ref_samples: dict[str, Any] = {f["name"]: _column_reader(reference, f["name"]) for f in statistics["features"] if f["inferred_type"] != "Unknown"}
    else:
        assert statistics is not None
        constraints = validate_baseline(statistics, constraints)
        ref_samples = dict(baseline_samples(statistics))
        try:
            return _compare(current, statistics, constraints, ref_samples, options, faults, html, title)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InvalidArgument(f"the baseline's statistics.json / constraints.json do not fit Model Monitor's format ({type(exc).__name__}: {str(exc)[:200]})") from None
    return _compare(current, statistics, constraints, ref_samples, options, faults, html, title)


def validate_baseline(statistics: Any, constraints: Any) -> dict[str, Any]:
    """Refuse a baseline's files that would not work (saying why); returns the constraints
    (suggested from the statistics when not given)."""
    try:
        if constraints is not None and not isinstance(constraints, dict):
            raise InvalidArgument("constraints.json must be an object with a 'features' list")
        constraints = constraints or suggest_constraints(statistics)
        check_baseline(statistics, constraints)
        baseline_samples(statistics)
        _options_from(constraints, None)
        for f in constraints["features"]:
            domains = (f.get("string_constraints") or {}).get("domains")
            if domains is not None and not isinstance(domains, list):
                raise InvalidArgument(f"constraints.json: the domains of {f['name']!r} must be a list")
            if "completeness" in f and not isinstance(f["completeness"], int | float):
                raise InvalidArgument(f"constraints.json: the completeness of {f['name']!r} must be a number")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise InvalidArgument(f"the baseline's statistics.json / constraints.json do not fit Model Monitor's format ({type(exc).__name__}: {str(exc)[:200]})") from None
    return constraints  # type: ignore[no-any-return]


def _compare(current: Any, statistics: dict[str, Any], constraints: dict[str, Any], ref_samples: dict[str, Any], options: DriftOptions | None,
             faults: dict[str, Any] | None, html: bool, title: str) -> Comparison:
    options = _options_from(constraints, options)
    table = _as_table(current)
    features = constraints["features"]
    table, mismatches, unparsed = conform(table, features)
    columns = table.column_names
    cur_stats = _statistics(table) if table.num_columns else {"version": 0, "dataset": {"item_count": table.num_rows}, "features": []}
    kinds = {f["name"]: f["inferred_type"] for f in features}
    cur_samples = {n: table.column(n) for n in columns if n in ref_samples and kinds.get(n) in ("Integral", "Fractional", "String")}
    drift = table_drift({n: ref_samples[n] for n in cur_samples}, cur_samples, options=options)
    values = {n: sample_of(table.column(n), categorical=True) for n in cur_samples if kinds.get(n) == "String"}
    str_values = {n: v for n, v in values.items() if isinstance(v, CategoricalSample)}
    violations = check_constraints(constraints, cur_stats, columns=columns, mismatches=mismatches, drift=drift["columns"], values=str_values, unparsed=unparsed)
    baseline_names = [f["name"] for f in features]
    found = dict(faults or {})
    found.update({
        "missing_columns": [n for n in baseline_names if n not in columns],
        "extra_columns": [n for n in columns if n not in kinds],
        "type_mismatches": {n: c for n, c in mismatches.items() if c},
        "schema_mismatch": bool(baseline_names) and not any(n in kinds for n in columns),
    })
    counts: dict[str, int] = {}
    for v in violations:
        counts[v["constraint_check_type"]] = counts.get(v["constraint_check_type"], 0) + 1
    result = {
        "kind": "data_quality", "created_at": time.time(),
        "reference": {"rows": statistics.get("dataset", {}).get("item_count"), "features": len(baseline_names)},
        "current": {"rows": table.num_rows, "columns": len(columns)},
        "dataset_drift": drift["dataset_drift"], "columns": drift["columns"],
        "violations": {"count": len(violations), "by_check": counts}, "faults": found,
    }
    page = ""
    if html:
        from kiln.monitoring._report import render

        page = render(result, violations, title=title)
    return Comparison(cur_stats, violations, result, page, constraints)


def _options_from(constraints: dict[str, Any], options: DriftOptions | None) -> DriftOptions:
    """The caller's methods and thresholds, with the constraints' distance thresholds."""
    from dataclasses import replace

    from kiln.monitoring._constraints import config_of

    dist = config_of(constraints).get("distribution_constraints", {})
    try:
        num, cat = float(dist.get("comparison_threshold", 0.1)), float(dist.get("categorical_comparison_threshold", 0.1))
    except (TypeError, ValueError):
        raise InvalidArgument("constraints.json: the comparison thresholds must be numbers") from None
    return replace(options or DriftOptions(), comparison_threshold=num, categorical_comparison_threshold=cat)
