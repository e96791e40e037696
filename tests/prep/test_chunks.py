"""Column-at-a-time chunks (Parquet files, folders, datasets, frames) and their users."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from kiln.core.errors import InvalidArgument
from kiln.prep.report import profile
from kiln.prep.stats import DatasetStatistics, compute_statistics
from kiln.prep.stats._chunks import iter_chunks, map_columns

N = 3_000
RG = 700  # row groups of 700, 700, 700, 700, 200 rows
RG_SIZES = [700, 700, 700, 700, 200]


def _mixed(n: int = N, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    f[rng.random(n) < 0.05] = np.nan
    return pa.table({
        "f": pa.array(f, mask=rng.random(n) < 0.05),  # NaNs and nulls
        "i": rng.integers(-50, 50, n),
        "b": rng.random(n) < 0.3,
        "s": pa.array(rng.choice(["red", "green", "blue", "ü"], n), mask=rng.random(n) < 0.1),
        "cat": pa.array(rng.choice(["x", "y", "z"], n)).dictionary_encode(),
        "ts": pa.array(1_600_000_000_000_000 + rng.integers(0, 10**12, n))
        .cast(pa.timestamp("us", tz="Europe/Paris")),
        "d": pa.array(rng.integers(0, 20_000, n).astype(np.int32)).cast(pa.date32()),
    })


def _write(path: Path, table: pa.Table, row_group_size: int = RG) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _decoded(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _assert_same_array(got: pa.Array, want: pa.Array) -> None:
    """Equal values and type, nulls where nulls, NaN where NaN."""
    assert got.type == want.type
    if pa.types.is_floating(want.type):  # Arrow's equals says NaN != NaN
        got, want = (pc.if_else(pc.is_nan(a), pa.scalar(-1e300), a) for a in (got, want))
    assert got.equals(want)


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats up to rounding (sums of differently cut chunks), recursively."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{k}]")
    else:
        assert a == b, path


def _summaries(stats: DatasetStatistics) -> dict[str, dict[str, Any]]:
    return {c.name: c.summary() for c in stats}


# -- iter_chunks: Parquet files and folders ----------------------------------------


def test_parquet_file_is_one_chunk_per_row_group_with_every_column_intact(
        tmp_path: Path) -> None:
    table = _mixed()
    path = _write(tmp_path / "m.parquet", table)
    chunks = list(iter_chunks(path))
    assert [c.num_rows for c in chunks] == RG_SIZES
    assert all(c.column_names == table.column_names for c in chunks)
    for i, name in enumerate(table.column_names):
        got = pa.chunked_array([_decoded(c.column(i)) for c in chunks]).combine_chunks()
        _assert_same_array(got, _decoded(table.column(i).combine_chunks()))
        if name == "cat":  # still dictionary-typed, or decoded: the values are what count
            assert pa.types.is_dictionary(chunks[0].column(i).type) or \
                chunks[0].column(i).type == pa.string()


def test_path_as_str_and_pathlike_agree(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.parquet", _mixed(500), 200)
    assert [c.num_rows for c in iter_chunks(str(path))] == [200, 200, 100]
    assert [c.num_rows for c in iter_chunks(path)] == [200, 200, 100]


def test_folder_reads_its_parquet_files_in_sorted_order_and_skips_others(
        tmp_path: Path) -> None:
    ids = pa.array(np.arange(2_000))
    _write(tmp_path / "part-1.parquet", pa.table({"id": ids[1_000:]}), 300)  # written first
    _write(tmp_path / "part-0.parquet", pa.table({"id": ids[:1_000]}), 300)
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not data")
    chunks = list(iter_chunks(tmp_path))
    assert [c.num_rows for c in chunks] == [300, 300, 300, 100] * 2
    got = pa.chunked_array([c.column(0) for c in chunks]).combine_chunks()
    assert got.equals(ids)


def test_empty_folder_and_missing_path_are_invalid_arguments(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no parquet here")
    with pytest.raises(InvalidArgument, match="no .parquet files under .*empty"):
        list(iter_chunks(tmp_path / "empty"))
    with pytest.raises(InvalidArgument, match="no such file: .*nope.parquet"):
        list(iter_chunks(tmp_path / "nope.parquet"))
    with pytest.raises(InvalidArgument, match="nope.parquet"):
        compute_statistics(tmp_path / "nope.parquet")


@pytest.mark.parametrize("content", [b"", b"name,value\n1,2\n", b"PAR1" + b"\0" * 64])
def test_a_non_parquet_file_named_parquet_is_an_invalid_argument(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(content)
    with pytest.raises(InvalidArgument, match="x.parquet is not a readable Parquet file"):
        list(iter_chunks(path))
    with pytest.raises(InvalidArgument, match="x.parquet is not a readable Parquet file"):
        profile(path, max_workers=1)


def test_corrupt_pages_are_an_invalid_argument(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.parquet", pa.table({"a": np.arange(1_000)}), 100)
    raw = bytearray(path.read_bytes())
    footer_len = int.from_bytes(raw[-8:-4], "little")
    raw[4:len(raw) - 8 - footer_len] = b"\xab" * (len(raw) - 12 - footer_len)  # every page
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidArgument, match="c.parquet"):
        compute_statistics(path, max_workers=1)


def test_batch_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="batch_size must be positive"):
        list(iter_chunks(pa.table({"a": [1]}), batch_size=0))


# -- zero rows --------------------------------------------------------------------


def _no_row_groups(path: Path, schema: pa.Schema) -> None:
    pq.ParquetWriter(path, schema).close()


def _one_empty_row_group(path: Path, schema: pa.Schema) -> None:
    pq.write_table(schema.empty_table(), path)


@pytest.mark.parametrize("write", [_no_row_groups, _one_empty_row_group])
def test_parquet_file_without_rows_keeps_its_schema(tmp_path: Path, write: Any) -> None:
    schema = pa.schema([("a", pa.float64()), ("s", pa.string()), ("t", pa.timestamp("us"))])
    path = tmp_path / "empty.parquet"
    write(path, schema)
    stats = compute_statistics(path)
    assert stats.row_count == 0
    assert list(stats.columns) == ["a", "s", "t"]
    assert [(c.kind.value, c.count, c.missing) for c in stats] == \
        [("float", 0, 0), ("string", 0, 0), ("datetime", 0, 0)]
    doc = profile(path, max_workers=1).to_json()
    assert doc["overview"]["rows"] == 0 and doc["overview"]["columns"] == 3


def test_dataset_without_row_groups_keeps_its_schema(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.float64()), ("s", pa.string())])
    _no_row_groups(tmp_path / "empty.parquet", schema)
    stats = compute_statistics(pads.dataset(tmp_path))
    assert list(stats.columns) == ["a", "s"]


# -- pyarrow.dataset input -----------------------------------------------------------


def test_parquet_dataset_is_one_chunk_per_row_group(tmp_path: Path) -> None:
    table = _mixed()
    _write(tmp_path / "a.parquet", table.slice(0, 1_000), 400)
    _write(tmp_path / "b.parquet", table.slice(1_000), 900)
    dataset = pads.dataset(tmp_path)
    chunks = list(iter_chunks(dataset))
    assert sorted(c.num_rows for c in chunks) == sorted([400, 400, 200, 900, 900, 200])
    assert all(c.column_names == table.column_names for c in chunks)
    assert sum(c.num_rows for c in chunks) == N
    for i in range(table.num_columns):
        assert sum(len(c.column(i)) for c in chunks) == N
    from_dataset = compute_statistics(dataset, max_workers=1)
    from_folder = compute_statistics(tmp_path, max_workers=1)
    assert list(from_dataset.columns) == table.column_names
    _assert_close(_summaries(from_dataset), _summaries(from_folder))


def test_hive_partition_columns_come_through_row_group_chunks(tmp_path: Path) -> None:
    table = pa.table({"a": np.arange(100), "year": np.repeat([2020, 2021], 50)})
    pads.write_dataset(table, tmp_path, format="parquet", partitioning=["year"],
                       partitioning_flavor="hive")
    dataset = pads.dataset(tmp_path, partitioning="hive")
    stats = compute_statistics(dataset, max_workers=1)
    assert (stats["year"].count, stats["year"].missing) == (100, 0)
    assert (stats["year"].min, stats["year"].max) == (2020, 2021)
    assert dict(stats["year"].top_values()) == {2020: 50, 2021: 50}


def test_filtered_dataset_counts_only_the_kept_rows(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", pa.table({"a": np.arange(1_000)}), 300)
    filtered = pads.dataset(tmp_path).filter(pc.field("a") < 10)
    stats = compute_statistics(filtered, max_workers=1)
    assert (stats.row_count, stats["a"].max) == (10, 9)


# -- pandas input --------------------------------------------------------------------


def _frame(n: int = N, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "f": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "i": rng.integers(0, 40, n),
        "b": rng.random(n) < 0.4,
        "s": pd.Series(np.where(rng.random(n) < 0.1, None,
                                rng.choice(["alpha", "beta", "gamma"], n)), dtype=object),
        "cat": pd.Categorical(rng.choice(["lo", "mid", "hi"], n)),
    })


def test_frame_converts_a_slice_at_a_time_with_the_whole_frames_statistics() -> None:
    df = _frame()
    chunks = list(iter_chunks(df, batch_size=RG))
    assert [c.num_rows for c in chunks] == RG_SIZES
    assert all(c.column_names == list(df.columns) for c in chunks)
    sliced = compute_statistics(df, batch_size=RG, max_workers=1)
    whole = compute_statistics(pa.Table.from_pandas(df), max_workers=1)
    assert list(sliced.columns) == list(df.columns)
    _assert_close(_summaries(sliced), _summaries(whole))
    f = sliced["f"]
    assert (f.count, f.missing) == (N, int(df["f"].isna().sum()))
    assert f.mean == pytest.approx(df["f"].mean(), rel=1e-9)
    assert (f.min, f.max) == (df["f"].min(), df["f"].max())
    assert sliced["s"].distinct == 3
    assert dict(sliced["s"].top_values()) == df["s"].value_counts().to_dict()
    assert dict(sliced["cat"].top_values()) == df["cat"].value_counts().to_dict()


def test_empty_frame_keeps_its_columns() -> None:
    df = pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="int64")})
    stats = compute_statistics(df)
    assert [(c.name, c.count) for c in stats] == [("a", 0), ("b", 0)]


# -- statistics: threads, paths and tables agree --------------------------------------


def test_statistics_from_path_threads_and_table_agree_in_column_order(
        tmp_path: Path) -> None:
    table = _mixed()
    path = _write(tmp_path / "m.parquet", table)
    serial = compute_statistics(path, max_workers=1)
    threaded = compute_statistics(path, max_workers=4)
    in_memory = compute_statistics(table, max_workers=4)
    for stats in (serial, threaded, in_memory):
        assert list(stats.columns) == table.column_names
        assert stats.row_count == N
    # Same chunks, each column fed in the same order: identical to the last bit.
    assert _summaries(threaded) == _summaries(serial)
    assert serial.nbytes == threaded.nbytes
    _assert_close(_summaries(in_memory), _summaries(serial))
    f = serial["f"]
    values = table.column("f").to_numpy(zero_copy_only=False)
    assert (f.count, f.missing) == (N, int(np.isnan(values).sum()))  # nulls come back as NaN


def test_many_columns_keep_their_order_on_many_threads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"c{k:02d}" for k in range(40)][::-1]  # not sorted, so order must be kept
    table = pa.table({n: rng.normal(size=300) for n in names})
    path = _write(tmp_path / "wide.parquet", table, 100)
    for workers in (1, 8):
        assert list(compute_statistics(path, max_workers=workers).columns) == names



def test_end_chunk_orders_new_columns_as_the_chunk_does_whatever_thread_came_first() -> None:
    stats = DatasetStatistics()
    for name in ("b", "a"):  # the thread of column b got there first
        stats.update_column(name, pa.array([1, 2, 3]))
    stats.end_chunk(["a", "b"], 3)
    assert list(stats.columns) == ["a", "b"]
    stats.update_column("c", pa.array(["x"]))
    stats.update_column("a", pa.array([4]))
    stats.end_chunk(["c", "a"], 1)  # b is absent, c is new: old columns keep their places
    assert list(stats.columns) == ["a", "b", "c"]
    assert [(c.count, c.missing) for c in stats] == [(4, 0), (4, 1), (4, 3)]

# -- profile --------------------------------------------------------------------------


def _with_duplicates(n: int = 2_500, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = pd.DataFrame({
        "x": np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 30, n) / 2),
        "k": rng.integers(0, 6, n),
        "s": pd.Series(np.where(rng.random(n) < 0.1, None, rng.choice(["a", "b", "c"], n)),
                       dtype=object),
        "flag": rng.random(n) < 0.5,
    })
    again = base.iloc[rng.integers(0, n, 400)]  # copies land in other row groups once shuffled
    rows = pd.concat([base, again], ignore_index=True)
    return rows.iloc[rng.permutation(len(rows))].reset_index(drop=True)


def _without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    doc = {k: v for k, v in doc.items() if k != "created_at"}
    doc["overview"] = {k: v for k, v in doc["overview"].items() if k not in keys}
    return doc


def test_profile_of_parquet_counts_duplicates_across_row_groups(tmp_path: Path) -> None:
    df = _with_duplicates()
    path = _write(tmp_path / "d.parquet", pa.Table.from_pandas(df, preserve_index=False), 600)
    assert pq.ParquetFile(path).metadata.num_row_groups == 5
    serial = profile(path, max_workers=1, sample_rows=800).to_json()
    assert serial["overview"]["rows"] == len(df)
    assert serial["overview"]["duplicate_rows"] == int(df.duplicated().sum()) > 0
    assert serial["overview"]["sampled"] and serial["overview"]["sample_rows"] == 800
    threaded = profile(path, max_workers=3, sample_rows=800).to_json()
    assert _without(threaded) == _without(serial)
    # The frame cut at the row groups' boundaries draws the same sample keys; Arrow's
    # in-memory sizes of the two inputs may differ, so "bytes" is left out.
    frame = profile(df, max_workers=3, sample_rows=800, batch_size=600).to_json()
    assert _without(frame, "bytes") == _without(serial, "bytes")


# -- map_columns ----------------------------------------------------------------------


class _RecordingChunk:
    """A chunk that notes which columns were read, and on which threads."""

    def __init__(self, n: int) -> None:
        self.num_rows = 1
        self.column_names = [f"c{i}" for i in range(n)]
        self.reads: list[int] = []
        self.threads: set[int] = set()

    def column(self, i: int) -> pa.Array:
        self.reads.append(i)
        self.threads.add(threading.get_ident())
        return pa.array([i * 10])


@pytest.mark.parametrize("window", [0, 1, 2, 5])
def test_map_columns_keeps_order_and_bounds_read_ahead(window: int) -> None:
    n = 8
    chunk = _RecordingChunk(n)
    running, most = 0, 0
    lock = threading.Lock()

    def fn(i: int, arr: pa.Array) -> tuple[int, int]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.004 * (n - i))  # earlier columns are slower
        with lock:
            running -= 1
        return i, arr[0].as_py()

    out = []
    with ThreadPoolExecutor(4) as pool:
        for result in map_columns(chunk, fn, pool, window):
            assert len(chunk.reads) <= len(out) + window + 1
            out.append(result)
    assert out == [(i, i * 10) for i in range(n)]
    assert sorted(chunk.reads) == list(range(n))
    assert threading.get_ident() not in chunk.threads  # reads run on the pool too
    assert most <= window + 1


def test_map_columns_without_pool_reads_one_column_per_result() -> None:
    chunk = _RecordingChunk(5)
    for k, (i, v) in enumerate(map_columns(chunk, lambda i, a: (i, a[0].as_py()))):
        assert (i, v, len(chunk.reads)) == (k, k * 10, k + 1)


@pytest.mark.parametrize("workers", [0, 3])
def test_map_columns_passes_errors_on(workers: int) -> None:
    def fn(i: int, arr: pa.Array) -> int:
        if i == 2:
            raise ValueError("column 2 is bad")
        return i

    with ThreadPoolExecutor(max(workers, 1)) as pool:
        results = map_columns(_RecordingChunk(6), fn, pool if workers else None, 2)
        assert [next(results), next(results)] == [0, 1]
        with pytest.raises(ValueError, match="column 2 is bad"):
            next(results)


# -- columns missing in part of the data --------------------------------------------


@pytest.mark.parametrize("workers", [1, 4])
def test_column_all_null_in_the_first_row_group(tmp_path: Path, workers: int) -> None:
    schema = pa.schema([("n", pa.int64()), ("s", pa.string())])
    path = tmp_path / "late.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        writer.write_table(pa.table({"n": range(100), "s": pa.nulls(100, pa.string())}))
        writer.write_table(pa.table({"n": range(50), "s": ["a", "b", None, "a", "c"] * 10}))
    assert pq.ParquetFile(path).metadata.num_row_groups == 2
    s = compute_statistics(path, max_workers=workers)["s"]
    assert (s.kind.value, s.count, s.missing, s.distinct) == ("string", 150, 110, 3)
    assert dict(s.top_values()) == {"a": 20, "b": 10, "c": 10}


@pytest.mark.parametrize("workers", [1, 4])
def test_record_batches_with_a_column_absent_from_some(workers: int) -> None:
    batches = [
        pa.record_batch({"a": [1, 2, 3], "c": [1.0, 2.0, 3.0]}),
        pa.record_batch({"a": [4, 5], "b": ["x", None], "c": [4.0, 5.0]}),
        pa.record_batch({"a": [6], "c": [6.0]}),
    ]
    stats = compute_statistics(batches, max_workers=workers)
    assert stats.row_count == 6
    assert list(stats.columns) == ["a", "c", "b"]
    b = stats["b"]
    assert (b.kind.value, b.count, b.missing, b.present) == ("string", 6, 5, 1)
    assert [(c.count, c.missing) for c in (stats["a"], stats["c"])] == [(6, 0), (6, 0)]


def test_frame_column_all_none_in_the_first_slice() -> None:
    # The first slice's column converts to Arrow's null type, the next ones to strings.
    df = pd.DataFrame({"n": range(10),
                       "s": pd.Series([None] * 5 + ["a", "b", "a", None, "a"], dtype=object)})
    s = compute_statistics(df, batch_size=5, max_workers=1)["s"]
    assert (s.kind.value, s.count, s.missing, dict(s.top_values())) == \
        ("string", 10, 6, {"a": 3, "b": 1})
    doubled = pd.concat([df, df], ignore_index=True)
    doc = profile(doubled, batch_size=5, max_workers=2).to_json()
    assert doc["overview"]["duplicate_rows"] == int(doubled.duplicated().sum()) == 10


def test_columns_option_works_with_a_parquet_path(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.parquet", _mixed(500), 200)
    stats = compute_statistics(path, columns=["i", "s"])
    assert list(stats.columns) == ["i", "s"] and stats.row_count == 500
