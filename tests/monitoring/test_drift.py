"""The drift engine against the formulas it claims: Model Monitor's CDF gap, and Evidently's
tests computed here with scipy / numpy on the raw data, the way Evidently writes them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from kiln.core.errors import InvalidArgument
from kiln.monitoring._constraints import baseline_samples
from kiln.monitoring._drift import DriftOptions, column_drift, sample_of, table_drift
from kiln.prep.stats import compute_statistics

rng = np.random.default_rng(7)


def _s(values: object) -> object:
    return sample_of(pa.array(values))


def test_large_numeric_uses_normed_wasserstein_and_the_cdf_gap() -> None:
    a, b = rng.normal(0, 1, 4000), rng.normal(0.3, 1.2, 3000)
    d = column_drift("x", _s(a), _s(b))
    assert d.method == "wasserstein" and d.kind == "numerical"
    assert d.score == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a), rel=1e-12)
    assert d.distance == pytest.approx(stats.ks_2samp(a, b).statistic, rel=1e-12)
    assert d.drifted and d.baseline_drift


def test_small_reference_uses_ks_with_scipys_p_value() -> None:
    a, b = rng.normal(0, 1, 600), rng.normal(0.05, 1, 900)
    d = column_drift("x", _s(a), _s(b))
    assert d.method == "ks" and d.score == pytest.approx(stats.ks_2samp(a, b).pvalue, rel=1e-12)
    assert d.drifted == (d.score < 0.05)


def test_jensen_shannon_over_sturges_bins_and_categories() -> None:
    a, b = rng.normal(0, 1, 3000), rng.normal(0.2, 1, 2000)
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
    want = distance.jensenshannon(np.histogram(a, edges)[0] / len(a), np.histogram(b, edges)[0] / len(b))
    assert column_drift("x", _s(a), _s(b), method="jensenshannon").score == pytest.approx(want, rel=1e-12)
    c1 = rng.choice(list("abcd"), 3000, p=[0.4, 0.3, 0.2, 0.1])
    c2 = rng.choice(list("abcde"), 2000, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    keys = sorted(set(c1) | set(c2))
    p = np.array([np.mean(c1 == k) for k in keys])
    q = np.array([np.mean(c2 == k) for k in keys])
    d = column_drift("c", _s(c1), _s(c2))
    assert d.method == "jensenshannon" and d.score == pytest.approx(distance.jensenshannon(p, q), rel=1e-12)
    assert d.distance == pytest.approx(np.max(np.abs(p - q)), rel=1e-12)  # LInfinity


def test_small_categorical_tests_chi_square_and_z() -> None:
    c1, c2 = rng.choice(list("abc"), 500), rng.choice(list("abc"), 400, p=[0.5, 0.3, 0.2])
    keys = ["a", "b", "c"]
    obs = [np.sum(c2 == k) for k in keys]
    exp = [np.sum(c1 == k) * len(c2) / len(c1) for k in keys]
    d = column_drift("c", _s(c1), _s(c2))
    assert d.method == "chisquare" and d.score == pytest.approx(stats.chisquare(obs, exp).pvalue, rel=1e-9)
    y1, y2 = rng.choice(["n", "y"], 500), rng.choice(["n", "y"], 300, p=[0.3, 0.7])
    p1, p2 = np.mean(y1 != "n"), np.mean(y2 != "n")
    pooled = (p1 * 500 + p2 * 300) / 800
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 300))
    d = column_drift("y", _s(y1), _s(y2))
    assert d.method == "z" and d.score == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))), rel=1e-9) and d.drifted
    # numbers with few distinct values are tested as categories, as Evidently does
    assert column_drift("n", _s(rng.integers(0, 4, 500)), _s(rng.integers(0, 4, 500))).method == "chisquare"
    assert column_drift("n", _s(rng.integers(0, 4, 5000)), _s(rng.integers(0, 4, 500))).method == "jensenshannon"


def test_psi_fills_empty_bins_as_evidently_does() -> None:
    c1, c2 = np.array(["a"] * 600 + ["b"] * 400), np.array(["a"] * 500 + ["c"] * 500)
    r = np.array([0.6, 0.4, 0.0001])  # a, b, c: c absent from the reference
    q = np.array([0.5, 0.0001, 0.5])
    d = column_drift("c", _s(c1), _s(c2), method="psi")
    assert d.score == pytest.approx(np.sum((r - q) * np.log(r / q)), rel=1e-12) and d.drifted


def test_identical_data_does_not_drift() -> None:
    a = rng.normal(0, 1, 2000)
    d = column_drift("x", _s(a), _s(a.copy()), psi=True)
    assert d.score == 0 and d.distance == 0 and not d.drifted and d.extra["psi"] == pytest.approx(0)


def test_methods_and_thresholds_per_column_and_the_dataset_share() -> None:
    ref = {"a": pa.array(rng.normal(0, 1, 2000)), "b": pa.array(rng.normal(0, 1, 2000)), "c": pa.array(rng.choice(list("xy"), 2000))}
    cur = {"a": pa.array(rng.normal(0.5, 1, 2000)), "b": pa.array(rng.normal(0, 1, 2000)), "c": pa.array(rng.choice(list("xy"), 2000))}
    out = table_drift(ref, cur)
    assert [c["drifted"] for c in out["columns"]] == [True, False, False]
    assert out["dataset_drift"] == {"columns": 3, "drifted_columns": 1, "share": pytest.approx(1 / 3), "threshold": 0.5, "drift": False}
    assert "histogram" in out["columns"][0] and "histogram" not in out["columns"][1]
    tuned = table_drift(ref, cur, options=DriftOptions(methods={"*": "psi", "c": "linf"}, thresholds={"b": 0.0}, drift_share=0.6))
    assert [c["method"] for c in tuned["columns"]] == ["psi", "psi", "linf"]
    assert tuned["columns"][1]["drifted"] and tuned["dataset_drift"]["drift"]  # 2 of 3 >= 0.6
    with pytest.raises(InvalidArgument, match="needs a numeric column"):
        column_drift("c", _s(["a", "b"]), _s(["a"]), method="ks")
    with pytest.raises(InvalidArgument, match="unknown drift method"):
        DriftOptions(methods={"a": "magic"})
    with pytest.raises(InvalidArgument, match="drift_share"):
        DriftOptions(drift_share=0)


def test_a_baseline_sketch_stands_for_its_data() -> None:
    a, b = rng.normal(0, 1, 50_000), rng.normal(0.1, 1, 20_000)
    sketch = baseline_samples(compute_statistics(pa.table({"x": a}), max_exact=100).to_model_monitor())["x"]
    assert sketch.cw is not None and sketch.total == pytest.approx(50_000)
    exact, approx = column_drift("x", _s(a), _s(b)), column_drift("x", sketch, _s(b))
    assert approx.distance == pytest.approx(exact.distance, abs=0.01)
    assert approx.score == pytest.approx(exact.score, abs=0.01) and approx.drifted == exact.drifted


def test_a_column_missing_everywhere_gets_no_verdict() -> None:
    out = table_drift({"x": pa.array([None, None], pa.float64())}, {"x": pa.array([1.0, 2.0])})
    assert out["columns"][0]["method"] == "none" and out["dataset_drift"]["columns"] == 0
