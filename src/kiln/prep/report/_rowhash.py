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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["hash_rows"]

_U64 = np.dtype("<u8")
_MASK64 = (1 << 64) - 1
_FMIX1 = 0xFF51AFD7ED558CCD  # MurmurHash3 fmix64 multipliers
_FMIX2 = 0xC4CEB9FE1A85EC53
_ROW_SEED = 0x243F6A8885A308D3  # the fold's start, so no row is all zeros
_ROW_MUL = 0x9E3779B97F4A7C15  # odd multiplier of the fold
_VALUE_SALT = 0x3C6EF372FE94F82B  # added to a scalar's bits before mixing (fmix64(0) == 0)
_NULL_SALT = 0xD6E8FEB86659FD93  # seeds the per-column null constants
_WORD_MUL = 0xA0761D6478BD642F  # salts a string word by the bytes left from it
_LEN_MUL = 0xE7037ED1A0B428DB  # salts a string hash by its length
_HEAD_WORDS = 4  # a string's first words go in one numpy pass each; the rest in one pass
# _BYTE_MASKS[k] keeps the low k bytes of a little-endian word.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=_U64)


def hash_rows(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    """A deterministic 64-bit hash per row.

    Args:
        table: the rows; a column may be chunked, sliced or dictionary-encoded.

    Returns:
        A ``uint64`` array with one hash per row: zeros when there are no
        columns, empty when there are no rows. Equal rows (nulls equal nulls,
        NaN equals NaN, ``-0.0`` equals ``0.0``) hash equally in any batch.
    """
    n = table.num_rows
    if n == 0 or table.num_columns == 0:
        return np.zeros(n, dtype=_U64)
    acc = np.full(n, _ROW_SEED, dtype=_U64)
    null_mix: np.ndarray | None = None  # sum of per-column keys over a row's null columns
    with np.errstate(over="ignore"):
        for i in range(table.num_columns):
            values, valid = _column_hash(table.column(i))
            acc *= np.uint64(_ROW_MUL)
            if valid is None:
                acc += values
                continue
            null_key = _fmix_int(_NULL_SALT + i)
            acc += np.where(valid, values, null_key)
            if null_mix is None:
                null_mix = np.zeros(n, dtype=_U64)
            null_mix[~valid] += null_key
        if null_mix is not None:
            # fmix64(0) | 1 == 1, so rows without nulls are left as they were.
            acc *= _fmix64(null_mix) | np.uint64(1)
        return _fmix64(acc)


def _column_hash(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray | None]:
    """Value hashes (anything under nulls) and validity (None when no nulls)."""
    if not isinstance(col, pa.ChunkedArray):
        return _array_hash(col)
    parts = [_array_hash(chunk) for chunk in col.chunks if len(chunk)]
    if len(parts) == 1:
        return parts[0]
    values = np.concatenate([v for v, _ in parts])
    if all(m is None for _, m in parts):
        return values, None
    return values, np.concatenate([np.ones(len(v), bool) if m is None else m for v, m in parts])


def _array_hash(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Value hashes and validity of one array, dispatched on its type."""
    t = arr.type
    if isinstance(t, pa.ExtensionType):
        return _array_hash(arr.storage)
    if pa.types.is_dictionary(t):
        return _dictionary_hash(arr)
    if pa.types.is_null(t):
        return np.zeros(len(arr), dtype=_U64), np.zeros(len(arr), dtype=bool)
    if (pa.types.is_decimal(t) or pa.types.is_string_view(t) or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)):
        return _array_hash(pc.cast(arr, pa.large_binary() if _is_binary_like(t) else pa.large_string()))
    if _is_bytes(t):
        return _bytes_hash(*_offsets_and_data(arr)), _validity(arr)
    if pa.types.is_boolean(t):
        return _scalar_mix(_bits(arr.buffers()[1], arr.offset, len(arr))), _validity(arr)
    if pa.types.is_floating(t):
        return _scalar_mix(_float_bits(_fixed_values(arr))), _validity(arr)
    if _is_integral(t):
        return _scalar_mix(_fixed_values(arr)), _validity(arr)
    return _fallback_hash(arr)


def _is_binary_like(t: pa.DataType) -> bool:
    """True for the view and fixed-size binary types (cast to large_binary)."""
    return pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t)


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


def _float_bits(values: np.ndarray) -> np.ndarray:
    """Float64 bits with ``-0.0`` folded into ``0.0`` and all NaNs into one."""
    x = np.add(values, 0.0, dtype=np.float64)  # a float64 copy, and -0.0 + 0.0 == +0.0
    x[np.isnan(x)] = np.nan
    return x.view(_U64)


def _scalar_mix(values: np.ndarray) -> np.ndarray:
    """Mix integer-like values by their value: widths and signedness agree."""
    bits = values.astype(np.int64).view(_U64)  # sign-extends, and always copies
    with np.errstate(over="ignore"):
        bits += np.uint64(_VALUE_SALT)
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

    A string of length L is cut into ceil(L/8) little-endian words (the last
    one zero-padded); each word is mixed with the count of bytes left from its
    start, and the hash is the sum of those mixes plus a multiple of L. Only
    the string's own bytes matter, so the hash is the same in any batch.
    """
    starts, lengths = offsets[:-1], np.diff(offsets)
    with np.errstate(over="ignore"):
        sums = lengths.astype(_U64) * np.uint64(_LEN_MUL)
        if len(data):
            padded = np.zeros(len(data) + 8, dtype=np.uint8)  # every 8-byte read stays inside
            padded[:len(data)] = data
            # An unaligned uint64 view starting at every byte: window[p] is bytes p..p+7.
            window = np.ndarray((len(data) + 1,), dtype=_U64, buffer=padded, strides=(1,))
            _add_head_words(sums, window, starts, lengths)
            _add_tail_words(sums, window, starts, lengths)
    return sums


def _add_head_words(sums: np.ndarray, window: np.ndarray, starts: np.ndarray,
                    lengths: np.ndarray) -> None:
    """Add the mixes of each string's first ``_HEAD_WORDS`` words, one word per pass."""
    # Pass 0 runs over every row: an empty string's word is masked to 0 with 0 bytes
    # left, and fmix64(0) == 0, so it adds nothing.
    sums += _word_mix(window[starts], lengths)
    rows = np.flatnonzero(lengths > 8)
    for k in range(1, _HEAD_WORDS):
        if len(rows) == 0:
            return
        sums[rows] += _word_mix(window[starts[rows] + 8 * k], lengths[rows] - 8 * k)
        rows = rows[lengths[rows] > 8 * (k + 1)]


def _add_tail_words(sums: np.ndarray, window: np.ndarray, starts: np.ndarray,
                    lengths: np.ndarray) -> None:
    """Add the mixes of the words past the head, for the few long strings, in one pass."""
    head = 8 * _HEAD_WORDS
    rows = np.flatnonzero(lengths > head)
    if len(rows) == 0:
        return
    tail_start, tail_len = starts[rows] + head, lengths[rows] - head
    n_words = (tail_len + 7) >> 3
    first_word = np.cumsum(n_words) - n_words
    word_start = np.repeat(tail_start - 8 * first_word, n_words)
    word_start += 8 * np.arange(int(n_words.sum()), dtype=np.int64)
    left = np.repeat(tail_start + tail_len, n_words) - word_start
    sums[rows] += np.add.reduceat(_word_mix(window[word_start], left), first_word)


def _word_mix(words: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Mix each word (owned), keeping only the ``left`` bytes that belong to its string."""
    words &= _BYTE_MASKS[np.minimum(left, 8)]
    words ^= left.astype(_U64) * np.uint64(_WORD_MUL)
    return _fmix64(words)


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
