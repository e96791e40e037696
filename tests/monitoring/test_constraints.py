"""Model Monitor's files: baselines with SageMaker's field names and defaults, baselines in
the shape SageMaker writes them (``version`` 0.0, Jackson's `` : ``, a KLL sketch over two
levels), every check type, and faults reported instead of raised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kiln.core.errors import InvalidArgument
from kiln.monitoring._compare import baseline_files, compare
from kiln.monitoring._constraints import CHECK_TYPES, DEFAULT_MONITORING_CONFIG, baseline_samples

DATA = Path(__file__).parents[1] / "data" / "monitoring"
rng = np.random.default_rng(11)


def _table(n: int = 3000, shift: float = 0.0, states: tuple[str, ...] = ("WV", "MN", "NY", "AL", "OH")) -> pa.Table:
    """Rows like the baseline's (same distributions), or shifted."""
    p = [0.3, 0.25, 0.2, 0.15, 0.1] if len(states) == 5 else None
    return pa.table({"Account Length": rng.integers(1, 240, n), "Day Mins": np.round(rng.normal(180 + shift, 50, n), 1),
                     "State": rng.choice(states, n, p=p)})


def _checks(violations: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations}


def test_a_baseline_has_model_monitors_fields_and_defaults() -> None:
    t = pa.table({"x": [1.5, -2.0, None, 4.0], "n": [1, 2, 3, 4], "c": ["a", "b", "a", None]})
    stats, cons = baseline_files(t)
    assert stats["dataset"] == {"item_count": 4} and [f["inferred_type"] for f in stats["features"]] == ["Fractional", "Integral", "String"]
    assert cons["monitoring_config"] == DEFAULT_MONITORING_CONFIG == {
        "evaluate_constraints": "Enabled", "emit_metrics": "Enabled", "datatype_check_threshold": 0.1, "domain_content_threshold": 0.1,
        "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1, "comparison_method": "Robust",
                                     "categorical_comparison_threshold": 0.1, "categorical_drift_method": "LInfinity"}}
    x, n, c = cons["features"]
    assert x == {"name": "x", "inferred_type": "Fractional", "completeness": 0.75, "num_constraints": {"is_non_negative": False}}
    assert n["num_constraints"] == {"is_non_negative": True} and n["completeness"] == 1.0
    assert c["string_constraints"] == {"domains": ["a", "b"]} and c["completeness"] == 0.75


def test_sagemaker_written_files_load_and_judge() -> None:
    stats = json.loads((DATA / "sagemaker_statistics.json").read_text())
    cons = json.loads((DATA / "sagemaker_constraints.json").read_text())
    samples = baseline_samples(stats)
    assert samples["Day Mins"].total == 400 + 2 * 800  # level 1 items weigh 2
    same = compare(_table(), statistics=stats, constraints=cons)
    assert same.violations == [] and not same.result["dataset_drift"]["drift"]
    shifted = compare(_table(shift=40, states=("WV", "TX")), statistics=stats, constraints=cons)
    got = _checks(shifted.violations)
    assert ("Day Mins", "baseline_drift_check") in got and ("State", "baseline_drift_check") in got
    assert ("Account Length", "baseline_drift_check") not in got
    # SageMaker's domain_content_threshold 1.0 tolerates any share of new values; Kiln's 0.1 does not
    assert ("State", "categorical_values_check") not in got
    strict = compare(_table(states=("WV", "TX")), statistics=stats)
    assert ("State", "categorical_values_check") in _checks(strict.violations)


def test_every_check_type_fires_on_what_it_checks() -> None:
    ref = pa.table({"x": rng.normal(0, 1, 2000), "n": rng.integers(0, 9, 2000), "c": rng.choice(["a", "b"], 2000), "gone": np.ones(2000)})
    cur = pa.table({
        "x": pa.array([None if i % 4 == 0 else v for i, v in enumerate(rng.normal(2, 1, 2000))]),  # drift, 25% missing
        "n": pa.array([str(v) if i % 3 else "many" for i, v in enumerate(rng.integers(0, 9, 2000))]),  # a third are not numbers
        "c": rng.choice(["a", "b", "zzz"], 2000), "new": np.zeros(2000),
    })
    done = compare(cur, reference=ref)
    assert _checks(done.violations) >= {("x", "baseline_drift_check"), ("x", "completeness_check"), ("n", "data_type_check"),
                                        ("c", "categorical_values_check"), ("gone", "missing_column_check"), ("new", "extra_column_check")}
    assert {v["constraint_check_type"] for v in done.violations} <= set(CHECK_TYPES)
    assert ("n", "completeness_check") not in _checks(done.violations)  # text that is no number is a type fault, not a gap
    assert done.result["faults"]["type_mismatches"] == {"n": 667} and done.result["faults"]["missing_columns"] == ["gone"]
    assert done.result["violations"]["count"] == len(done.violations)


def test_fractions_in_an_integral_column_are_a_type_fault() -> None:
    done = compare(pa.table({"n": rng.normal(0, 1, 500)}), reference=pa.table({"n": rng.integers(0, 5, 500)}))
    assert ("n", "data_type_check") in _checks(done.violations)


def test_a_baseline_of_another_schema_is_reported_not_raised() -> None:
    done = compare(pa.table({"a": [1, 2, 3]}), reference=pa.table({"b": ["x", "y", "z"]}))
    assert done.result["faults"]["schema_mismatch"] is True
    assert _checks(done.violations) == {("b", "missing_column_check"), ("a", "extra_column_check")}
    assert done.result["dataset_drift"]["columns"] == 0 and "<html" in done.html[:40]


def test_disabled_evaluation_and_comparison_are_honoured() -> None:
    ref, cur = pa.table({"x": rng.normal(0, 1, 1500)}), pa.table({"x": rng.normal(3, 1, 1500)})
    stats, cons = baseline_files(ref)
    cons["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "Disabled"
    assert compare(cur, statistics=stats, constraints=cons).violations == []
    cons["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "Enabled"
    cons["monitoring_config"]["distribution_constraints"]["comparison_threshold"] = 0.99
    assert compare(cur, statistics=stats, constraints=cons).violations == []
    # editing one baseline's constraints leaves the defaults (and the next baseline) alone
    assert baseline_files(ref)[1]["monitoring_config"] == DEFAULT_MONITORING_CONFIG
    assert DEFAULT_MONITORING_CONFIG["distribution_constraints"]["comparison_threshold"] == 0.1


@pytest.mark.parametrize("bad", [{}, {"features": "x"}, {"features": [{"inferred_type": "String"}]}, {"features": [{"name": "a", "inferred_type": "Text"}]}, [1]])
def test_files_that_are_not_model_monitors_are_refused(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        compare(pa.table({"a": [1]}), statistics=bad)  # type: ignore[arg-type]


def test_the_report_is_small_offline_and_shows_drifted_columns() -> None:
    ref = pa.table({f"x{i}": rng.normal(0, 1, 5000) for i in range(30)})
    cur = pa.table({f"x{i}": rng.normal(0.5 if i < 5 else 0, 1, 5000) for i in range(30)})
    page = compare(cur, reference=ref).html
    assert page.count("<svg") == 5 and "http" not in page and "<script" not in page and len(page) < 100_000
