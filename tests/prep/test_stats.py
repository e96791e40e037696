"""The statistics engine against numpy/pandas on the same data."""

from __future__ import annotations

import datetime as dt
import functools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pytest

from kiln.core.errors import InvalidArgument
from kiln.prep.stats import (
    ColumnKind,
    DatasetStatistics,
    compute_statistics,
    kll_levels,
)

RNG = np.random.default_rng(7)
N = 50_000


def _numbers(name: str) -> np.ndarray:
    return {
        "normal": RNG.normal(3.0, 2.0, N),
        "lognormal": RNG.lognormal(0.0, 1.5, N),
        "integers": RNG.integers(-500, 500, N).astype(np.float64),
        "with_nan_inf": np.where(RNG.random(N) < 0.1, np.nan,
                                 np.where(RNG.random(N) < 0.01, np.inf, RNG.normal(size=N))),
    }[name]


def _mixed(n: int = 40_000) -> pa.Table:
    rng = np.random.default_rng(1)
    f = rng.normal(size=n)
    f[rng.random(n) < 0.05] = np.nan
    return pa.table({
        "f": f,
        "i": pa.array(rng.integers(0, 50, n), mask=rng.random(n) < 0.1),
        "s": rng.choice(["red", "green", "blue", "ü"], n, p=[0.5, 0.3, 0.15, 0.05]),
        "id": [f"row-{k}" for k in range(n)],
        "b": rng.random(n) < 0.25,
        "t": pa.array(np.datetime64("2021-01-01") + rng.integers(0, 10**6, n).astype("m8[s]")),
    })


@pytest.mark.parametrize("dist", ["normal", "lognormal", "integers", "with_nan_inf"])
def test_numeric_figures_match_pandas(dist: str) -> None:
    x = _numbers(dist)
    col = compute_statistics(pa.table({"x": x}), batch_size=7_000)["x"]
    s = pd.Series(x)
    finite = s[np.isfinite(s)]
    assert col.count == N and col.missing == int(s.isna().sum())
    assert col.infinite == int(np.isinf(x).sum())
    assert col.mean == pytest.approx(finite.mean(), rel=1e-9, abs=1e-12)
    assert col.std == pytest.approx(finite.std(), rel=1e-9)
    assert col.skewness == pytest.approx(finite.skew(), rel=1e-6, abs=1e-9)
    assert col.kurtosis == pytest.approx(finite.kurt(), rel=1e-6, abs=1e-9)
    assert (col.min, col.max) == (finite.min(), finite.max())
    assert col.sum == pytest.approx(finite.sum(), rel=1e-9)
    assert col.zeros == int((finite == 0).sum()) and col.negatives == int((finite < 0).sum())
    eps = col.kll.normalized_rank_error(False)
    sorted_x = np.sort(finite.to_numpy())
    for q, v in col.quantiles().items():
        rank = np.searchsorted(sorted_x, v, side="right") / sorted_x.size
        assert abs(rank - q) <= eps + 1 / sorted_x.size, (q, v, rank)


def test_histogram_counts_sum_to_present_and_match_numpy_when_exact() -> None:
    x = RNG.integers(0, 40, 10_000)
    col = compute_statistics(pa.table({"x": x}))["x"]
    edges, counts = col.histogram(8)
    assert col.distinct_exact
    np.testing.assert_array_equal(counts, np.histogram(x, bins=edges)[0])
    big = compute_statistics(pa.table({"y": RNG.normal(size=N)}))["y"]
    edges, counts = big.histogram(10)
    assert len(counts) == 10 and sum(counts) == N
    eps = big.kll.normalized_rank_error(False)
    truth = np.histogram(big.kll.get_quantiles(np.linspace(0, 1, 2001).tolist()), bins=edges)[0]
    assert np.abs(np.asarray(counts) / N - truth / truth.sum()).max() <= 2 * eps + 1e-3


def test_merge_of_four_chunks_equals_whole() -> None:
    table = _mixed()
    whole = compute_statistics(table)
    parts = [compute_statistics(table.slice(k * 10_000, 10_000)) for k in range(4)]
    merged = functools.reduce(DatasetStatistics.merge, parts)
    assert merged.row_count == whole.row_count == 40_000
    for name, w in whole.columns.items():
        m = merged[name]
        assert (m.kind, m.count, m.missing, m.zeros, m.negatives, m.infinite) == \
            (w.kind, w.count, w.missing, w.zeros, w.negatives, w.infinite)
        assert (m.min, m.max, m.length_min, m.length_max, m.length_sum) == \
            (w.min, w.max, w.length_min, w.length_max, w.length_sum)
        assert m.moments.n == w.moments.n
        for a, b in [(m.mean, w.mean), (m.std, w.std), (m.skewness, w.skewness)]:
            assert a == b or a == pytest.approx(b, rel=1e-9, abs=1e-12)
        assert m.distinct_exact == w.distinct_exact
        if w.distinct_exact:
            assert m.distinct == w.distinct and m.top_values(5) == w.top_values(5)
        else:
            assert m.distinct == pytest.approx(w.distinct, rel=0.05)
        if w.kll is not None:
            eps = w.kll.normalized_rank_error(False)
            assert m.kll.n == w.kll.n
            for q in (0.1, 0.5, 0.9):
                v = m.kll.get_quantile(q)  # ties: q must fall inside v's rank step
                assert w.kll.get_rank(v, False) - 2 * eps <= q <= w.kll.get_rank(v, True) + 2 * eps


def test_nulls_nan_inf_empty_and_all_null_columns() -> None:
    table = pa.table({
        "f": [1.0, np.nan, None, np.inf, -np.inf, 0.0],
        "all_null": pa.array([None] * 6, type=pa.float64()),
        "null_type": pa.array([None] * 6),
        "s": ["a", None, "", "bb", None, "a"],
    })
    stats = compute_statistics(table)
    f = stats["f"]
    assert (f.count, f.null_count, f.nan_count, f.missing, f.infinite, f.zeros) == (6, 1, 1, 2, 2, 1)
    assert (f.min, f.max, f.mean, f.distinct) == (0.0, 1.0, 0.5, 4.0)
    a = stats["all_null"]
    assert (a.present, a.mean, a.std, a.quantiles(), a.histogram(), a.distinct) == \
        (0, None, None, None, None, 0.0)
    assert stats["null_type"].kind is ColumnKind.OTHER and stats["null_type"].missing == 6
    s = stats["s"]
    assert (s.missing, s.distinct, s.length_min, s.length_max) == (2, 3.0, 0, 2)
    assert s.top_values(1) == [("a", 2)]
    empty = compute_statistics(table.slice(0, 0))
    assert empty.row_count == 0 and empty["f"].count == 0 and empty["f"].mean is None
    json.loads(json.dumps(stats.summary(), allow_nan=False))


def test_strings_switch_from_exact_to_sketches() -> None:
    n = 30_000
    values = np.where(RNG.random(n) < 0.3, "hot", np.char.add("v", np.arange(n).astype(str)))
    col = compute_statistics(pa.table({"s": values}), max_exact=1_000, batch_size=4_096)["s"]
    truth = pd.Series(values)
    assert not col.distinct_exact
    assert col.distinct == pytest.approx(truth.nunique(), rel=0.05)
    (top, count), = col.top_values(1)
    assert top == "hot" and count == pytest.approx((truth == "hot").sum(), rel=0.01)
    assert col.length_mean == pytest.approx(truth.str.len().mean())


def test_bools_and_datetimes() -> None:
    days = pd.date_range("2020-01-01", periods=1_000, freq="h", tz="UTC")
    table = pd.DataFrame({
        "b": pd.array([True, False, None, True] * 250, dtype="boolean"),
        "t": days,
        "d": [dt.date(2020, 1, 1) + dt.timedelta(days=int(k)) for k in range(1_000)],
    })
    stats = compute_statistics(table, batch_size=300)
    b = stats["b"]
    assert (b.kind, b.missing, b.mean, b.distinct) == (ColumnKind.BOOL, 250, 2 / 3, 2.0)
    assert b.top_values(2) == [(True, 500), (False, 250)]
    t = stats["t"]
    assert t.kind is ColumnKind.DATETIME and t.tz == "UTC"
    assert t.datetime_min() == days[0].to_pydatetime() and t.datetime_max() == days[-1]
    assert stats["d"].datetime_max() == dt.datetime(2022, 9, 26)
    assert stats["d"].summary()["min"] == "2020-01-01T00:00:00"


def test_json_round_trip_keeps_everything() -> None:
    stats = compute_statistics(_mixed(5_000))
    back = DatasetStatistics.from_json(stats.to_json())
    assert back.to_dict() == stats.to_dict()
    assert back["f"].quantiles() == stats["f"].quantiles()
    assert back.merge(stats)["s"].top_values(1)[0][1] == 2 * stats["s"].top_values(1)[0][1]
    with pytest.raises(InvalidArgument):
        DatasetStatistics.from_dict({"format": "other"})


def test_model_monitor_statistics_have_the_exact_fields() -> None:
    doc = compute_statistics(_mixed(5_000)).to_model_monitor()
    json.dumps(doc, allow_nan=False)
    assert doc["version"] == 0 and doc["dataset"] == {"item_count": 5_000}
    by_name = {f["name"]: f for f in doc["features"]}
    assert {n: f["inferred_type"] for n, f in by_name.items()} == {
        "f": "Fractional", "i": "Integral", "s": "String", "id": "String", "b": "String",
        "t": "String"}
    num = by_name["f"]["numerical_statistics"]
    assert set(num) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert set(num["common"]) == {"num_present", "num_missing"}
    kll = num["distribution"]["kll"]
    assert len(kll["buckets"]) == 10
    assert set(kll["buckets"][0]) == {"lower_bound", "upper_bound", "count"}
    assert sum(b["count"] for b in kll["buckets"]) == num["common"]["num_present"]
    assert kll["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    assert sum(len(level) for level in kll["sketch"]["data"]) > 0
    st = by_name["s"]["string_statistics"]
    assert set(st) == {"common", "distinct_count", "distribution"}
    assert st["distinct_count"] == 4.0
    assert {b["value"] for b in st["distribution"]["categorical"]["buckets"]} == \
        {"red", "green", "blue", "ü"}


@pytest.mark.parametrize("n", [1, 100, 5_000, 300_000])
def test_kll_levels_weigh_up_to_n(n: int) -> None:
    col = compute_statistics(pa.table({"x": RNG.normal(size=n)}), kll_k=200)["x"]
    levels = kll_levels(col.kll)
    assert sum(len(level) * 2**i for i, level in enumerate(levels)) == n
    assert sum(len(level) for level in levels) == col.kll.num_retained


@pytest.mark.parametrize("form", ["table", "batches", "pandas", "polars", "dataset", "reader"])
def test_every_input_form_gives_the_same_statistics(form: str) -> None:
    table = _mixed(3_000).drop_columns(["t", "i"]).append_column("n", pa.array(np.arange(3_000)))
    data = {
        "table": lambda: table,
        "batches": lambda: iter(table.to_batches(max_chunksize=500)),
        "pandas": lambda: table.to_pandas(),
        "polars": lambda: __import__("polars").from_arrow(table),
        "dataset": lambda: pads.dataset(table),
        "reader": lambda: pa.RecordBatchReader.from_batches(table.schema, table.to_batches(400)),
    }[form]()
    stats = compute_statistics(data, max_workers=1)
    ref = compute_statistics(table)
    assert stats.row_count == 3_000
    for name in table.column_names:
        got, want = stats[name], ref[name]
        assert (got.kind, got.missing, got.distinct, got.top_values(3)) == \
            (want.kind, want.missing, want.distinct, want.top_values(3))
        assert got.mean == pytest.approx(want.mean)


def test_merge_promotes_int_to_float_and_refuses_other_mixes() -> None:
    ints = compute_statistics(pa.table({"x": [1, 2, 3]}))
    floats = compute_statistics(pa.table({"x": [0.5, np.nan]}))
    both = ints.merge(floats)["x"]
    assert (both.kind, both.count, both.missing, both.mean) == (ColumnKind.FLOAT, 5, 1, 1.625)
    with pytest.raises(InvalidArgument, match="cast it"):
        ints.merge(compute_statistics(pa.table({"x": ["a"]})))
    with pytest.raises(InvalidArgument):
        compute_statistics(42)
    with pytest.raises(InvalidArgument, match="no column"):
        compute_statistics(pa.table({"x": [1]}), columns=["y"])


def test_column_absent_from_one_side_counts_as_missing() -> None:
    a = compute_statistics(pa.table({"x": [1, 2], "y": ["a", "b"]}))
    b = compute_statistics(pa.table({"x": [3]}))
    merged = a.merge(b)
    assert (merged["y"].count, merged["y"].missing, merged["x"].count) == (3, 1, 3)


@pytest.mark.parametrize("values", [
    np.arange(-40_000, 40_000, 3, dtype=np.int64),
    np.concatenate([RNG.normal(size=30_000), [0.0, -0.0, 1e300, -1e-300]]),
])
def test_vectorised_hll_equals_datasketches_item_by_item(values: np.ndarray) -> None:
    import datasketches as ds

    from kiln.prep.stats._hll import registers, sketch_from_registers

    ref = ds.hll_sketch(14, ds.tgt_hll_type.HLL_8)
    for v in values.tolist():
        ref.update(v)
    ours = sketch_from_registers(registers(values, 14), 14)
    union = ds.hll_union(14)
    union.update(ours)
    assert union.get_result().get_estimate() == ours.get_estimate()
    union.update(ref)  # identical registers: adding the reference changes nothing
    assert union.get_result().get_estimate() == ours.get_estimate()
    assert ours.get_estimate() == pytest.approx(len(np.unique(values)), rel=0.03)


def test_numeric_sketch_mode_survives_json_and_further_updates() -> None:
    x = np.arange(50_000, dtype=np.int64)
    a = compute_statistics(pa.table({"x": x[:30_000]}), max_exact=1_000)
    back = DatasetStatistics.from_json(a.to_json())
    back.update(pa.record_batch({"x": x[30_000:]}))
    assert not back["x"].distinct_exact
    assert back["x"].distinct == pytest.approx(50_000, rel=0.03)
    assert a.merge(back)["x"].distinct == pytest.approx(50_000, rel=0.03)


@pytest.mark.parametrize("max_exact", [None, 50])
def test_dictionary_strings_count_like_plain_strings(max_exact: int | None) -> None:
    rng = np.random.default_rng(11)
    words = [f"w{k}" if k % 7 else "" for k in range(120)]
    values = pa.array([None if rng.random() < 0.1 else words[int(rng.integers(0, 120))]
                       for _ in range(9_000)], type=pa.large_string())
    # Each batch encodes on its own, so dictionaries differ between batches.
    coded = [pa.RecordBatch.from_arrays([pc.dictionary_encode(values.slice(i, 2_000))], ["s"])
             for i in range(0, 9_000, 2_000)]
    plain = compute_statistics(pa.table({"s": values}), batch_size=2_000, max_exact=max_exact)["s"]
    dict_ = compute_statistics(coded, max_exact=max_exact)["s"]
    assert dict_.summary() == plain.summary()
    assert dict_.distinct_exact == (max_exact is None)
    assert (dict_.length_min, dict_.length_max) == (0, 4)
