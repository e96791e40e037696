"""Deterministic 64-bit row hashes in numpy + pyarrow, for exact duplicate counts.

Each column gives one well-mixed ``uint64`` per row (its "value hash"); the
row hash folds them left to right as ``acc * K + v`` and ends with
MurmurHash3's ``fmix64``. Every constant is fixed, so a row hashes the same in
any batch, slice or process, given the same column types.

Value hashes: integers, temporals and bools by their integer value (so
``int32`` and ``int64`` agree); floats by their bits after folding ``-0.0``
into ``0.0`` and every NaN into one NaN; strings and binaries by their bytes,
read as 8-byte words straight off the Arrow buffers; dictionaries by hashing
the dictionary once and taking by index. Other types (lists, structs, maps…)
fall back to hashing ``str()`` of each Python value: slow, but exact.

Nulls: a null takes a per-column constant in the fold, and the row's pattern
of null columns also scales the folded sum by an odd factor of its own, so a
null differs from ``""``, ``0`` and NaN, not merely from their value hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ColumnHash", "RowHasher", "column_hash", "hash_rows"]

_U64 = np.dtype("<u8")
_MASK64 = (1 << 64) - 1
_FMIX1 = 0xFF51AFD7ED558CCD  # MurmurHash3 fmix64 multipliers
_FMIX2 = 0xC4CEB9FE1A85EC53
_ROW_SEED = 0x243F6A8885A308D3  # the fold's start, so no row is all zeros
_ROW_MUL = 0x9E3779B97F4A7C15  # odd multiplier of the fold
_VALUE_SALT = 0x3C6EF372FE94F82B  # added to a scalar's bits before mixing (fmix64(0) == 0)
_NULL_SALT = 0xD6E8FEB86659FD93  # seeds the per-column null constants
_WORD_MUL = 0xA0761D6478BD642F  # salts a string's word k by (k + 1) times this
_LEN_MUL = 0xE7037ED1A0B428DB  # salts a string hash by its length
_DENSE_WORDS = 4  # a string's first words go one numpy pass each over all rows
# _BYTE_MASKS[k] keeps the low k bytes of a little-endian word.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=_U64)
# _DENSE_MASKS[k, n] keeps the bytes of word k that belong to a string of n bytes.
_DENSE_MASKS = _BYTE_MASKS[np.clip(np.arange(8 * _DENSE_WORDS + 1) - 8 * np.arange(
    _DENSE_WORDS)[:, None], 0, 8)]


def hash_rows(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """A deterministic 64-bit hash per row.

    Args:
        table: the rows; a column may be chunked, sliced or dictionary-encoded.

    Returns:
        A ``uint64`` array with one hash per row: zeros when there are no
        columns, empty when there are no rows. Equal rows (nulls equal nulls,
        NaN equals NaN, ``-0.0`` equals ``0.0``) hash equally in any batch.
    """
    hasher = RowHasher(table.num_rows)
    if table.num_rows:
        for i in range(table.num_columns):
            hasher.add(column_hash(table.column(i)))
    return hasher.result()


@dataclass(frozen=True)
class ColumnHash:
    """One column's share of the row hashes (from :func:`column_hash`).

    Attributes:
        values: a ``uint64`` value hash per row (meaningless under nulls).
        valid: which rows are not null, or None when none is null.
    """

    values: np.ndarray
    valid: np.ndarray | None


def column_hash(col: pa.Array | pa.ChunkedArray) -> ColumnHash:
    """Hash one column's values, to fold into row hashes with :class:`RowHasher`.

    Columns are independent, so they may be hashed on several threads (numpy
    releases the GIL for the heavy work).
    """
    if not isinstance(col, pa.ChunkedArray):
        return ColumnHash(*_array_hash(col))
    parts = [_array_hash(chunk) for chunk in col.chunks if len(chunk)]
    if len(parts) <= 1:
        return ColumnHash(*parts[0]) if parts else ColumnHash(np.zeros(0, dtype=_U64), None)
    values = np.concatenate([v for v, _ in parts])
    if all(m is None for _, m in parts):
        return ColumnHash(values, None)
    valid = np.concatenate([np.ones(len(v), bool) if m is None else m for v, m in parts])
    return ColumnHash(values, valid)


class RowHasher:
    """Folds column hashes, added in column order, into one hash per row.

    ``hash_rows(t)`` is ``RowHasher(n)`` given ``column_hash`` of each column
    of ``t`` in turn; column order matters.
    """

    def __init__(self, num_rows: int) -> None:
        self.num_rows = num_rows
        self.columns_ = 0
        self.acc_ = np.full(num_rows, _ROW_SEED, dtype=_U64)
        self.null_mix_: np.ndarray | None = None  # sum of the null columns' keys, per row

    def add(self, column: ColumnHash) -> None:
        """Fold in the next column (``column`` is left as it was)."""
        if len(column.values) != self.num_rows:
            raise ValueError(f"column hash has {len(column.values)} rows, "
                             f"expected {self.num_rows}")
        with np.errstate(over="ignore"):
            self.acc_ *= np.uint64(_ROW_MUL)
            if column.valid is None:
                self.acc_ += column.values
            else:
                null_key = _fmix_int(_NULL_SALT + self.columns_)
                nulls = ~column.valid
                self.acc_ += np.where(nulls, null_key, column.values)
                if self.null_mix_ is None:
                    self.null_mix_ = np.zeros(self.num_rows, dtype=_U64)
                np.add(self.null_mix_, null_key, out=self.null_mix_, where=nulls)
        self.columns_ += 1

    def result(self) -> np.ndarray:
        """The row hashes (``uint64``): zeros when no column was added."""
        if self.columns_ == 0:
            return np.zeros(self.num_rows, dtype=_U64)
        acc = self.acc_.copy()
        with np.errstate(over="ignore"):
            if self.null_mix_ is not None:
                # fmix64(0) | 1 == 1: rows without nulls are left as they were.
                acc *= _fmix64(self.null_mix_.copy()) | np.uint64(1)
            return _fmix64(acc)


def _array_hash(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Value hashes and validity of one array, dispatched on its type."""
    t = arr.type
    if isinstance(t, pa.ExtensionType):
        return _array_hash(arr.storage)
    if pa.types.is_dictionary(t):
        return _dictionary_hash(arr)
    if pa.types.is_null(t):
        return np.zeros(len(arr), dtype=_U64), np.zeros(len(arr), dtype=bool)
    if pa.types.is_decimal(t) or pa.types.is_string_view(t):
        return _array_hash(pc.cast(arr, pa.large_string()))
    if pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return _array_hash(pc.cast(arr, pa.large_binary()))
    if _is_bytes(t):
        return _bytes_hash(*_offsets_and_data(arr)), _validity(arr)
    if pa.types.is_boolean(t):
        return _int_mix(_bits(arr.buffers()[1], arr.offset, len(arr))), _validity(arr)
    if pa.types.is_floating(t):
        return _float_mix(_fixed_values(arr)), _validity(arr)
    if _is_integral(t):
        return _int_mix(_fixed_values(arr)), _validity(arr)
    return _fallback_hash(arr)


def _is_bytes(t: pa.DataType) -> bool:
    """True for the offset-based byte types (string, binary and their large forms)."""
    return (pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_binary(t) or pa.types.is_large_binary(t))


def _is_integral(t: pa.DataType) -> bool:
    """True for types stored as one plain integer per value."""
    return (pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)
            or pa.types.is_time(t) or pa.types.is_duration(t))


def _dictionary_hash(arr: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Hash the dictionary once, then take per row by index."""
    if len(arr.dictionary) > len(arr):  # e.g. a small slice of a big column: decode instead
        return _array_hash(arr.dictionary_decode())
    indices = arr.indices
    valid = _validity(indices)
    if len(arr.dictionary) == 0:  # then every index is null
        return np.zeros(len(arr), dtype=_U64), np.zeros(len(arr), dtype=bool)
    idx = _fixed_values(indices)
    if valid is not None:
        idx = np.where(valid, idx, 0)  # slots under nulls may hold any index
    dict_values, dict_valid = _array_hash(arr.dictionary)
    values = dict_values[idx]
    if dict_valid is not None:
        row_valid = dict_valid[idx]
        valid = row_valid if valid is None else valid & row_valid
    return values, valid


def _fallback_hash(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Hash ``str()`` of each Python value through the byte path (slow, any type)."""
    text = pa.array([str(v) for v in arr.to_pylist()], type=pa.large_string())
    valid = np.asarray(arr.is_valid(), dtype=bool) if arr.null_count else None
    return _bytes_hash(*_offsets_and_data(text)), valid


def _validity(arr: pa.Array) -> np.ndarray | None:
    """The validity bitmap as a bool array, or None when nothing is null."""
    if arr.null_count == 0:
        return None
    buf = arr.buffers()[0]
    if buf is None:
        return np.asarray(arr.is_valid(), dtype=bool)
    return _bits(buf, arr.offset, len(arr)).view(bool)


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """``n`` bits of an Arrow (LSB-first) bitmap from bit ``offset``, as uint8 0/1."""
    first, last = offset // 8, (offset + n + 7) // 8
    raw = np.frombuffer(buf, dtype=np.uint8, count=last)[first:]
    skip = offset - 8 * first
    return np.unpackbits(raw, bitorder="little")[skip:skip + n]


def _fixed_values(arr: pa.Array) -> np.ndarray:
    """The values buffer of a fixed-width array as numpy, zero-copy (anything under nulls)."""
    t = arr.type
    width = t.bit_width // 8
    if pa.types.is_floating(t):
        dtype = np.dtype(f"<f{width}")
    elif pa.types.is_unsigned_integer(t):
        dtype = np.dtype(f"<u{width}")
    else:
        dtype = np.dtype(f"<i{width}")
    buf = arr.buffers()[1]
    if buf is None:
        return np.zeros(len(arr), dtype=dtype)
    return np.frombuffer(buf, dtype=dtype, count=arr.offset + len(arr))[arr.offset:]


def _float_mix(values: np.ndarray) -> np.ndarray:
    """Mix floats by their float64 bits, with ``-0.0`` as ``0.0`` and one NaN for all."""
    with np.errstate(invalid="ignore"):  # signalling NaNs
        x = np.add(values, 0.0, dtype=np.float64)  # a float64 copy, and -0.0 + 0.0 == +0.0
    np.copyto(x, np.nan, where=np.isnan(x))
    bits = x.view(_U64)
    with np.errstate(over="ignore"):
        bits += np.uint64(_VALUE_SALT)
        return _fmix64(bits)


def _int_mix(values: np.ndarray) -> np.ndarray:
    """Mix integer-like values by their value, so widths and signedness agree."""
    with np.errstate(over="ignore"):
        # The unsafe cast sign-extends signed ints (C semantics): -1 is 2**64 - 1 at any width.
        bits = np.add(values, np.uint64(_VALUE_SALT), dtype=_U64, casting="unsafe")
        return _fmix64(bits)


def _offsets_and_data(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets rebased to 0 (int64, n + 1) and the bytes they index."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    _, off_buf, data_buf = arr.buffers()
    n = len(arr)
    if off_buf is None:  # only an empty array may lack its offsets
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(off_buf, dtype="<i8" if large else "<i4",
                            count=arr.offset + n + 1)[arr.offset:]
    begin, end = int(offsets[0]), int(offsets[-1])
    if data_buf is None or end == begin:
        data = np.zeros(0, dtype=np.uint8)
    else:
        data = np.frombuffer(data_buf, dtype=np.uint8, count=end)[begin:]
    return offsets.astype(np.int64) - begin, data


def _bytes_hash(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each byte string, from 8-byte words read off the buffer.

    A string of length L is cut into ceil(L/8) little-endian words; word k is
    xored with a salt for k, cut to the string's own bytes (so the last word is
    zero-padded) and mixed with fmix64. The hash is the sum of those mixes plus
    a multiple of L. Only the string's own bytes matter, so it is the same in
    any batch, whichever of the two passes below a word went through.
    """
    starts, lengths = offsets[:-1], np.diff(offsets)
    with np.errstate(over="ignore"):
        sums = lengths.astype(_U64) * np.uint64(_LEN_MUL)
        if len(data) == 0:
            return sums
        reader = _WordReader(data, starts)
        k = _add_dense_words(sums, reader, lengths)
        _add_sparse_words(sums, reader, starts, lengths, k)
    return sums


class _WordReader:
    """Reads the 8 bytes at any byte position as a little-endian uint64.

    Numpy gathers from an unaligned view are slow, so each read takes the two
    aligned words around the position and shifts them together.
    """

    def __init__(self, data: np.ndarray, starts: np.ndarray) -> None:
        # Zero padding: reads past a string's end, up to _DENSE_WORDS words on from
        # any start, stay inside (and are masked off by the caller).
        n_aligned = (len(data) + 8 * _DENSE_WORDS + 15) // 8
        padded = np.zeros(8 * n_aligned, dtype=np.uint8)
        padded[:len(data)] = data
        self.aligned = padded.view(_U64)
        self.start_word = starts >> 3
        self.shift = ((starts & 7) << 3).astype(_U64)
        self.unshift = np.uint64(64) - self.shift  # 64 shifts to 0 in numpy, as needed

    def at(self, pos: np.ndarray) -> np.ndarray:
        """The words at arbitrary byte positions ``pos``."""
        q = pos >> 3
        shift = ((pos & 7) << 3).astype(_U64)
        lo = np.take(self.aligned, q) >> shift
        return lo | (np.take(self.aligned, q + 1) << (np.uint64(64) - shift))


def _add_dense_words(sums: np.ndarray, reader: _WordReader, lengths: np.ndarray) -> int:
    """Add word k of every string, one pass per k, while most strings have one.

    A string without word k adds fmix64(0) == 0: no bytes left, all masked off.

    Returns:
        The first word index left to :func:`_add_sparse_words`.
    """
    capped = np.minimum(lengths, 8 * _DENSE_WORDS)
    # longer[k]: how many strings have a word k (are longer than 8k bytes).
    longer = len(lengths) - np.cumsum(np.bincount(capped, minlength=8 * _DENSE_WORDS + 1))
    aligned_k = np.take(reader.aligned, reader.start_word)  # the aligned word at k = 0
    for k in range(_DENSE_WORDS):
        if k and 2 * longer[8 * k] < len(lengths):
            return k
        aligned_next = np.take(reader.aligned[k + 1:], reader.start_word)
        words = aligned_k >> reader.shift
        words |= aligned_next << reader.unshift
        words ^= _word_salt(k)
        words &= np.take(_DENSE_MASKS[k], capped)
        sums += _fmix64(words)
        aligned_k = aligned_next
    return _DENSE_WORDS


def _add_sparse_words(sums: np.ndarray, reader: _WordReader, starts: np.ndarray,
                      lengths: np.ndarray, k: int) -> None:
    """Add words ``k`` on of the strings that have them, all in one pass."""
    rows = np.flatnonzero(lengths > 8 * k)
    if len(rows) == 0:
        return
    n_words = (lengths[rows] - 8 * k + 7) >> 3
    first_word = np.cumsum(n_words) - n_words
    word_k = np.arange(int(n_words.sum()), dtype=np.int64)  # becomes k within the string
    word_k -= np.repeat(first_word - k, n_words)
    word_start = np.repeat(starts[rows], n_words) + 8 * word_k
    left = np.repeat(starts[rows] + lengths[rows], n_words) - word_start
    mixed = _word_mix(reader.at(word_start), left, _word_salt(word_k))
    sums[rows] += np.add.reduceat(mixed, first_word)


def _word_mix(words: np.ndarray, left: np.ndarray, salt: np.ndarray | np.uint64) -> np.ndarray:
    """Salt and mix each word (owned), keeping only the ``left`` bytes of its string."""
    words ^= salt
    words &= np.take(_BYTE_MASKS, np.minimum(left, 8))
    return _fmix64(words)


def _word_salt(k: np.ndarray | int) -> np.ndarray | np.uint64:
    """The salt of word ``k`` of a string, so words at other positions mix otherwise."""
    if isinstance(k, int):
        return np.uint64(((k + 1) * _WORD_MUL) & _MASK64)
    with np.errstate(over="ignore"):
        return (k + 1).astype(_U64) * np.uint64(_WORD_MUL)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, overwriting ``h`` (which the caller owns)."""
    shifted = h >> np.uint64(33)
    h ^= shifted
    h *= np.uint64(_FMIX1)
    np.right_shift(h, np.uint64(33), out=shifted)
    h ^= shifted
    h *= np.uint64(_FMIX2)
    np.right_shift(h, np.uint64(33), out=shifted)
    h ^= shifted
    return h


def _fmix_int(x: int) -> np.uint64:
    """``fmix64`` of one Python int, as a numpy scalar."""
    x &= _MASK64
    x ^= x >> 33
    x = (x * _FMIX1) & _MASK64
    x ^= x >> 33
    x = (x * _FMIX2) & _MASK64
    x ^= x >> 33
    return np.uint64(x)
