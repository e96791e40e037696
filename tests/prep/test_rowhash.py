"""Row hashes for exact duplicate counts: numpy + pyarrow, deterministic across batches."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pytest

from kiln.prep.report._rowhash import RowHasher, column_hash, hash_rows


def _mixed_table(n: int, seed: int = 0) -> pa.Table:
    """Low-cardinality mixed columns, so many rows repeat by chance."""
    rng = np.random.default_rng(seed)

    def pick(values: list) -> list:
        return [values[i] for i in rng.integers(0, len(values), n)]

    return pa.table({
        "f_nan": pa.array(pick([0.0, -0.0, np.nan, 1.5, -np.inf]), pa.float64()),
        "f_null": pa.array(pick([None, 2.5, 0.0]), pa.float32()),
        "i": pa.array(pick([None, 0, -1, 7]), pa.int16()),
        "u": pa.array(pick([0, 255]), pa.uint8()),
        "b": pa.array(pick([True, False, None])),
        "s": pa.array(pick(["", None, "a", "ab", "long string past eight bytes", "é€"])),
        "c": pa.array(pick(["x", "y", None])).dictionary_encode(),
        "t": pa.array(pick([None, dt.datetime(2024, 1, 1), dt.datetime(1969, 12, 31)]),
                      pa.timestamp("us")),
    })


def _distinct(h: np.ndarray) -> int:
    return len(np.unique(h))


def test_duplicate_count_matches_pandas():
    table = _mixed_table(3000)
    table = pa.concat_tables([table, table.slice(100, 500)])  # explicit repeats too
    expected = int(table.to_pandas().duplicated().sum())
    assert 0 < expected < table.num_rows
    assert table.num_rows - _distinct(hash_rows(table)) == expected


@pytest.mark.parametrize("size", [1, 7, 256, 1000])
def test_batches_and_slices_hash_as_the_whole(size):
    table = _mixed_table(1500, seed=1)
    whole = hash_rows(table)
    batches = [hash_rows(b) for b in table.slice(0, 300).to_batches(max_chunksize=size)]
    np.testing.assert_array_equal(np.concatenate(batches), whole[:300])
    np.testing.assert_array_equal(hash_rows(table.slice(size, 500)), whole[size:size + 500])
    rechunked = pa.concat_tables([table.slice(0, size), table.slice(size)])  # chunked columns
    np.testing.assert_array_equal(hash_rows(rechunked), whole)


def test_sliced_arrays_hash_like_fresh_ones():
    strings = pa.array(["", "abc", None, "a" * 9, "x" * 40, "yz", "0123456789abcdef0"] * 3)
    for start in range(len(strings)):
        part = strings.slice(start, 9)
        fresh = pa.array(part.to_pylist(), pa.string())
        np.testing.assert_array_equal(hash_rows(pa.table({"s": part})),
                                      hash_rows(pa.table({"s": fresh})))
    bools = pa.array([True, None, False, True, False] * 5)
    np.testing.assert_array_equal(hash_rows(pa.table({"b": bools.slice(3)})),
                                  hash_rows(pa.table({"b": pa.array(bools.slice(3).to_pylist())})))


def test_a_string_hashes_alike_whatever_its_batch():
    # Long strings among short ones take the sparse path; among long ones, the dense one.
    strings = ["", "a", "12345678", "123456789", "x" * 33, "y" * 100 + "z", "é" * 40]
    short = [hash_rows(pa.table({"s": [s] + ["a"] * 50}))[0] for s in strings]
    long = [hash_rows(pa.table({"s": [s] + ["w" * 60] * 50}))[0] for s in strings]
    assert short == long
    assert len(set(short)) == len(strings)


def test_word_order_within_a_string_matters():
    strings = ["AAAAAAAABBBBBBBB", "BBBBBBBBAAAAAAAA", "AAAAAAAABBBBBBBBCC", "BBBBBBBBAAAAAAAACC"]
    assert _distinct(hash_rows(pa.table({"s": strings}))) == 4


def test_null_empty_zero_and_nan_all_differ():
    cases = {
        "s": pa.array([None, ""]),
        "i": pa.array([None, 0]),
        "f": pa.array([None, np.nan, 0.0, -0.0]),
        "b": pa.array([None, False]),
        "c": pa.array([None, ""]).dictionary_encode(),
    }
    for name, arr in cases.items():
        h = hash_rows(pa.table({name: arr}))
        expected = 3 if name == "f" else 2  # -0.0 is 0.0
        assert _distinct(h) == expected, name


def test_nans_and_zeros_are_equal_whatever_their_bits():
    bits = np.array([0x7FF8000000000000, 0xFFF8000000000001, 0x7FF0000000000123], dtype=np.uint64)
    nans = pa.array(bits.view(np.float64))
    assert _distinct(hash_rows(pa.table({"f": nans}))) == 1
    assert _distinct(hash_rows(pa.table({"f": [0.0, -0.0]}))) == 1


def test_null_position_matters():
    table = pa.table({"a": [None, 1], "b": [1, None]})
    h = hash_rows(table)
    assert h[0] != h[1]


def test_column_order_matters():
    h = hash_rows(pa.table({"a": [1, 2], "b": [2, 1]}))
    assert h[0] != h[1]
    swapped = hash_rows(pa.table({"b": ["x"], "a": [1]}))
    assert swapped[0] != hash_rows(pa.table({"a": [1], "b": ["x"]}))[0]


@pytest.mark.parametrize("typ", [pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint32(),
                                 pa.uint64()])
def test_integer_widths_agree(typ):
    values = [0, 1, 100, None] + ([-5] if pa.types.is_signed_integer(typ) else [])
    expected = hash_rows(pa.table({"x": pa.array(values, pa.int64()), "y": ["k"] * len(values)}))
    got = hash_rows(pa.table({"x": pa.array(values, typ), "y": ["k"] * len(values)}))
    np.testing.assert_array_equal(got, expected)


def test_float_widths_agree():
    values = np.array([0.5, -0.0, 0.0, np.nan, 3.0])
    mask = np.array([False, False, True, False, False])  # a null
    expected = hash_rows(pa.table({"f": pa.array(values, mask=mask)}))
    for dtype in (np.float32, np.float16):
        got = hash_rows(pa.table({"f": pa.array(values.astype(dtype), mask=mask)}))
        np.testing.assert_array_equal(got, expected)


def test_dictionary_hashes_like_its_decoded_values():
    values = pa.array(["b", None, "a", "", "b", "long value of many bytes", None])
    for dict_arr in (values.dictionary_encode(),
                     pa.DictionaryArray.from_arrays(pa.array([1, None, 0, 2, 1, 3, 4], pa.int8()),
                                                    pa.array(["a", "b", "", "long value of many "
                                                              "bytes", None]))):
        np.testing.assert_array_equal(hash_rows(pa.table({"c": dict_arr})),
                                      hash_rows(pa.table({"c": values})))
        for part in (slice(2, None), slice(5, 6)):  # the second is decoded: dictionary > rows
            np.testing.assert_array_equal(hash_rows(pa.table({"c": dict_arr[part]})),
                                          hash_rows(pa.table({"c": values[part]})))
    # Whatever sits in an index slot under a null (here 99, out of range) is ignored.
    garbage = pa.Array.from_buffers(pa.int8(), 3, [pa.py_buffer(bytes([0b101])),
                                                   pa.py_buffer(bytes([1, 99, 0]))])
    with_garbage = pa.DictionaryArray.from_arrays(garbage, pa.array(["a", "b"]))
    np.testing.assert_array_equal(hash_rows(pa.table({"c": with_garbage})),
                                  hash_rows(pa.table({"c": ["b", None, "a"]})))
    ints = pa.array([3, 1, 3, None])
    np.testing.assert_array_equal(hash_rows(pa.table({"x": ints.dictionary_encode()})),
                                  hash_rows(pa.table({"x": ints})))


def test_no_collisions_among_distinct_rows():
    n = 200_000
    i = np.arange(n)
    table = pa.table({
        "k": pa.array(i % 1000),
        "f": pa.array((i // 1000) * 0.25),
        "s": pa.array([f"v{j:x}" * (1 + j % 5) for j in i % 4099]),
    })
    assert _distinct(hash_rows(table)) == n
    assert _distinct(hash_rows(table.select(["s"]))) == 4099


@pytest.mark.parametrize("typ", [pa.large_string(), pa.string_view()])
def test_other_string_types_hash_like_string(typ):
    values = ["", None, "abc", "z" * 50, "ünïcode"]
    np.testing.assert_array_equal(hash_rows(pa.table({"s": pa.array(values, typ)})),
                                  hash_rows(pa.table({"s": pa.array(values, pa.string())})))


@pytest.mark.parametrize("typ", [pa.binary(), pa.large_binary(), pa.binary_view()])
def test_binary_columns(typ):
    values = [b"", None, b"\x00", b"\x00\x00", b"\xff" * 20, b"\x00"]
    h = hash_rows(pa.table({"b": pa.array(values, typ)}))
    assert h[1] != h[0] and _distinct(h) == 5 and h[2] == h[5]


def test_fixed_size_binary_and_decimal():
    fixed = pa.array([b"ab", b"cd", None, b"ab"], pa.binary(2))
    assert _distinct(hash_rows(pa.table({"x": fixed}))) == 3
    dec = pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("-2.25"),
                    decimal.Decimal("1.5")], pa.decimal128(10, 2))
    h = hash_rows(pa.table({"x": dec}))
    assert h[0] == h[3] and _distinct(h) == 3


def test_temporal_columns():
    table = pa.table({
        "d": pa.array([dt.date(2024, 1, 1), None, dt.date(2024, 1, 1)], pa.date32()),
        "t": pa.array([dt.time(1, 2), dt.time(0, 0), dt.time(1, 2)], pa.time64("us")),
        "u": pa.array([dt.timedelta(1), None, dt.timedelta(1)], pa.duration("s")),
    })
    h = hash_rows(table)
    assert h[0] == h[2] and h[0] != h[1]


def test_nested_columns_fall_back():
    lists = pa.array([[1, 2], [1, 2], [], None, [2, 1], [None]])
    h = hash_rows(pa.table({"l": lists}))
    assert h[0] == h[1] and _distinct(h) == 5
    structs = pa.array([{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, None, {"a": 2, "b": None}])
    h = hash_rows(pa.table({"s": structs, "k": [1, 1, 1, 1]}))
    assert h[0] == h[1] and _distinct(h) == 3
    np.testing.assert_array_equal(hash_rows(pa.table({"l": lists.slice(1)})),
                                  hash_rows(pa.table({"l": pa.array(lists.slice(1).to_pylist())})))


def test_null_typed_column_hashes_like_nulls():
    nulls = hash_rows(pa.table({"x": pa.nulls(3)}))
    typed = pa.array([None] * 3, pa.int64())
    np.testing.assert_array_equal(nulls, hash_rows(pa.table({"x": typed})))
    assert _distinct(nulls) == 1


def test_empty_shapes():
    assert hash_rows(pa.table({"a": pa.array([], pa.string())})).dtype == np.uint64
    assert len(hash_rows(pa.table({"a": pa.array([], pa.string())}))) == 0
    no_columns = pa.RecordBatch.from_pydict({"a": [1, 2, 3]}).select([])
    np.testing.assert_array_equal(hash_rows(no_columns), np.zeros(3, np.uint64))
    all_empty = hash_rows(pa.table({"s": ["", "", ""]}))
    assert _distinct(all_empty) == 1


def test_fixed_values_are_stable_across_processes():
    # No per-process seed: these values are the same in every run and every machine.
    table = pa.table({"i": [1, None], "f": [0.5, float("nan")], "s": ["héllo, world!", ""],
                      "c": pa.array(["a", None]).dictionary_encode()})
    assert hash_rows(table).tolist() == GOLDEN


GOLDEN = [2809687432167366416, 7160104498869103630]


def test_row_hasher_folds_columns_like_hash_rows():
    table = _mixed_table(500, seed=2)
    hasher = RowHasher(table.num_rows)
    for col in table.columns:
        hasher.add(column_hash(col))
    np.testing.assert_array_equal(hasher.result(), hash_rows(table))
    np.testing.assert_array_equal(hasher.result(), hash_rows(table))  # result() is repeatable
    with pytest.raises(ValueError, match="rows"):
        hasher.add(column_hash(pa.array([1, 2])))
