"""Profile and insights reports on real offline data and a planted mixed-type table."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import datasets

from kiln.core.errors import InvalidArgument
from kiln.prep.report import AlertThresholds, ProfileResult, profile
from kiln.prep.report._rowhash import hash_rows
from kiln.prep.report._sample import RowSampler

N = 5_000


def _mixed(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    spiky = rng.normal(size=n)
    spiky[:20] = 1_000.0
    with_inf = rng.normal(size=n)
    with_inf[[5, n // 2, n - 1]] = np.inf
    frame = pd.DataFrame({
        "x_normal": np.where(rng.random(n) < 0.02, np.nan, x),
        "x_corr": 2 * x + rng.normal(0, 0.05, n),
        "mostly_missing": np.where(rng.random(n) < 0.4, np.nan, rng.normal(size=n)),
        "const": ["k"] * n,
        "id": np.arange(n),
        "skewed": rng.lognormal(0, 2, n),
        "zero_heavy": np.where(rng.random(n) < 0.8, 0.0, rng.normal(size=n)),
        "with_inf": with_inf,
        "spiky": spiky,
        "cat_balanced": rng.choice(["a", "b", "c", "d"], n),
        "cat_imbalanced": np.where(rng.random(n) < 0.97, "major", "minor"),
        "high_card": np.char.add("u", rng.integers(0, 2_000, n).astype(str)),
        "flag": rng.random(n) < 0.5,
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 100, n), unit="D"),
    })
    return frame


@pytest.fixture(scope="module")
def mixed_profile() -> ProfileResult:
    return profile(_mixed(), title="Mixed <planted>", batch_size=1_024)


EXPECTED = {
    "missing": {("mostly_missing",)},
    "constant": {("const",)},
    "unique": {("id",)},
    "high_cardinality": {("high_card",)},
    "skewed": {("skewed",), ("spiky",)},
    "zeros": {("zero_heavy",)},
    "infinite": {("with_inf",)},
    "imbalanced": {("cat_imbalanced",)},
    "high_correlation": {("x_normal", "x_corr")},
    "duplicates": set(),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_alert_fires_exactly_where_planted(mixed_profile: ProfileResult, kind: str) -> None:
    found = {a.columns for a in mixed_profile.alerts if a.kind == kind}
    assert found == EXPECTED[kind]
    for a in mixed_profile.alerts:
        assert a.message and isinstance(a.value, float)


def test_duplicate_rows_are_counted_exactly_over_all_batches() -> None:
    frame = _mixed()
    frame = pd.concat([frame, frame.iloc[:100], frame.iloc[:30]], ignore_index=True)
    result = profile(frame, batch_size=700, sample_rows=1_000)
    doc = result.to_json()
    assert doc["overview"]["duplicate_rows"] == doc["duplicates"]["count"] == 130
    assert {a.kind for a in result.alerts} >= {"duplicates"}
    assert not any(a.kind == "unique" for a in result.alerts)
    examples = doc["duplicates"]["examples"]
    assert 1 <= len(examples) <= 5 and all(e["count"] in (2, 3) for e in examples)
    assert doc["overview"]["sampled"] and doc["overview"]["sample_rows"] == 1_000
    assert "uniform sample of 1,000 of 5,130 rows" in result.to_html()


def test_sampled_rows_keep_their_row_hashes() -> None:
    table = pa.Table.from_pandas(_mixed(5_000), preserve_index=False)
    sampler = RowSampler(1_000, seed=3)
    for batch in table.to_batches(max_chunksize=700):
        sampler.update(batch, tags=hash_rows(batch))
    sample = sampler.result()
    assert sample.num_rows == 1_000 and not sampler.complete
    np.testing.assert_array_equal(sampler.tags, hash_rows(sample))


def test_thresholds_are_configurable() -> None:
    strict = profile(_mixed(1_000), thresholds=AlertThresholds(missing_share=0.01))
    flagged = {a.columns[0] for a in strict.alerts if a.kind == "missing"}
    assert flagged == {"mostly_missing", "x_normal"}


def test_html_is_self_contained_and_small(mixed_profile: ProfileResult) -> None:
    html = mixed_profile.to_html()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert "Mixed &lt;planted&gt;" in html and "<svg" in html and "inf (3)" in html
    assert len(html.encode()) < 400_000


def test_wide_table_html_stays_under_the_size_limit() -> None:
    rng = np.random.default_rng(0)
    n, cols = 20_000, 50
    data = {f"f{k}": rng.normal(size=n) for k in range(30)}
    data |= {f"s{k}": rng.choice([f"v{j}" for j in range(30)], n) for k in range(10)}
    data |= {f"i{k}": rng.integers(0, 10**6, n) for k in range(cols - 40)}
    html = profile(pa.table(data)).to_html()
    assert len(html.encode()) < 2_000_000 / 4


def test_json_round_trips(mixed_profile: ProfileResult) -> None:
    doc = mixed_profile.to_json()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc
    again = ProfileResult.from_json(text)
    assert again.to_html() == mixed_profile.to_html()
    with pytest.raises(InvalidArgument):
        ProfileResult.from_json({"format": "nope"})


def _frame(loader, leak_noise: float) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    frame = loader(as_frame=True).frame
    rng = np.random.default_rng(0)
    frame["leak"] = frame["target"] + rng.normal(0, leak_noise, len(frame))
    return frame


@pytest.mark.parametrize(("loader", "kind", "metric", "floor", "noise"), [
    (datasets.load_breast_cancer, "classification", "accuracy", 0.9, 0.01),
    (datasets.load_wine, "classification", "accuracy", 0.85, 0.01),
    (datasets.load_diabetes, "regression", "r2", 0.2, 1.0),
])
def test_insights_on_real_data_flag_only_the_planted_leak(loader, kind, metric, floor,  # type: ignore[no-untyped-def]
                                                           noise) -> None:
    ins = profile(_frame(loader, noise), target="target").insights
    assert ins is not None and ins["problem_type"] == kind
    assert ins["model"]["metrics"][metric] > floor
    assert ins["leakage"] == ["leak"]
    powers = {p["column"]: p["power"] for p in ins["feature_power"]}
    assert powers["leak"] > 0.95 and max(v for k, v in powers.items() if k != "leak") < 0.95


def test_insights_find_outliers_and_anomalies() -> None:
    ins = profile(_mixed(), target="cat_balanced").insights
    assert ins["problem_type"] == "classification"
    assert ins["model"]["metrics"]["accuracy"] < 0.4  # the target is noise
    assert ins["leakage"] == []
    spiky = next(o for o in ins["outliers"] if o["column"] == "spiky")
    assert spiky["count"] == 20
    assert 0 < ins["anomalies"]["count"] < N * 0.2 and len(ins["anomalies"]["examples"]) <= 5
    assert ins["distribution"]["kind"] == "categorical"


def test_insights_errors_and_no_ml_library_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgument, match="not a column"):
        profile(_mixed(100), target="nope")
    for name in ("lightgbm", "sklearn", "scipy"):  # an import of any of these now fails
        monkeypatch.setitem(sys.modules, name, None)
    ins = profile(_mixed(200), target="flag").insights
    assert ins["model"]["algorithm"] == "gradient-boosted trees" and ins["anomalies"]["rows_checked"] == 200


def test_leakage_flags_a_feature_that_alone_explains_the_target() -> None:
    rng = np.random.default_rng(3)
    x, other = rng.normal(size=3000), rng.normal(size=3000)
    y = 3 * x + np.sin(x) + rng.normal(0, 0.3, 3000)  # R² of x alone ~0.99
    result = profile(pd.DataFrame({"x": x, "other": other, "y": y}), target="y")
    assert result.insights["leakage"] == ["x"]
    alert = next(a for a in result.to_json()["alerts"] if a["kind"] == "leakage")
    assert alert["columns"][0] == "x" and "R² 0.9" in alert["message"]


def test_sample_rows_are_spread_over_the_data_and_seeded() -> None:
    n = 300_000  # several row groups and batches
    table = pa.table({"i": np.arange(n), "v": np.random.default_rng(0).normal(size=n)})
    rows = [r[0] for r in profile(table).to_json()["sample"]["rows"]]
    assert len(rows) == 10 and max(rows) - min(rows) > n / 3 and sum(r < 122_880 for r in rows) < 10
    assert [r[0] for r in profile(table).to_json()["sample"]["rows"]] == rows
    assert [r[0] for r in profile(table, seed=7).to_json()["sample"]["rows"]] != rows


@pytest.mark.parametrize("planted", [0, 150])
def test_anomaly_share_is_small_on_gaussian_data_and_catches_planted_rows(planted: int) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(5000, 4))
    data[:planted] += rng.choice([-8.0, 8.0], size=(planted, 4))
    frame = pd.DataFrame(data, columns=["a", "b", "c", "d"]).assign(y=rng.normal(size=5000))
    anomalies = profile(frame, target="y").insights["anomalies"]
    if planted:
        assert anomalies["share"] >= 0.8 * planted / 5000
    else:
        assert anomalies["share"] <= 0.02
    assert "IQR" in anomalies["rule"]


@pytest.mark.parametrize("target", [None, "y"])
def test_profile_reports_increasing_progress_to_the_end(target: str | None) -> None:
    from kiln.core.progress import reporting

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=20_000), "y": rng.normal(size=20_000)})
    seen: list[float] = []
    with reporting(seen.append):
        profile(frame, target=target, batch_size=2_000)
    assert len(seen) >= 10 and seen == sorted(set(seen)) and seen[-1] == 1.0, seen
