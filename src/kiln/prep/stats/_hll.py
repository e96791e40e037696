"""Vectorised HLL updates that produce Apache DataSketches ``hll_sketch`` es.

DataSketches' Python binding hashes one item per call. For numbers the item
is 8 bytes, so the same hash (MurmurHash3 x64-128, seed 9001) and the same
register rule can run over a whole numpy array at once; the registers are
then handed to DataSketches through its HLL_8 serial format. The result is
bit-for-bit the sketch item-by-item updates would build (tests check this),
so it unions with sketches made anywhere else.
"""

from __future__ import annotations

import struct

import datasketches as ds
import numpy as np

__all__ = ["hash_keys", "registers", "sketch_from_registers"]

_SEED = np.uint64(9001)  # DataSketches' default hash seed
_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_OUT_OF_ORDER = 16  # flag: estimate from registers (composite), not the HIP accumulator


def _fmix(k: np.ndarray, tmp: np.ndarray) -> None:
    """MurmurHash3's fmix64, in place (``tmp`` is scratch of the same shape)."""
    np.right_shift(k, np.uint64(33), out=tmp)
    k ^= tmp
    k *= np.uint64(0xFF51AFD7ED558CCD)
    np.right_shift(k, np.uint64(33), out=tmp)
    k ^= tmp
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    np.right_shift(k, np.uint64(33), out=tmp)
    k ^= tmp


def hash_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MurmurHash3 x64-128 of 8-byte keys (uint64 view), as two uint64 arrays.

    In-place steps (a quarter of the allocations of the textbook form); for an
    8-byte key the second lane starts as the constant ``seed ^ 8``.
    """
    lane = _SEED ^ np.uint64(8)
    with np.errstate(over="ignore"):
        h1 = keys * _C1
        tmp = h1 >> np.uint64(33)
        h1 <<= np.uint64(31)
        h1 |= tmp  # rotl(k1 * c1, 31)
        h1 *= _C2
        h1 ^= lane  # h1 = seed ^ k1, then ^= len
        h1 += lane  # h1 += h2
        h2 = h1 + lane  # h2 += h1
        _fmix(h1, tmp)
        _fmix(h2, tmp)
        h1 += h2
        h2 += h1
    return h1, h2


def _leading_zeros(v: np.ndarray) -> np.ndarray:
    """Leading zero bits of each uint64: smear the top bit down, then count ones."""
    v = v.copy()
    for shift in (1, 2, 4, 8, 16, 32):
        v |= v >> np.uint64(shift)
    return 64 - np.bitwise_count(v).astype(np.int64)


def to_keys(values: np.ndarray) -> np.ndarray:
    """The 8-byte keys DataSketches hashes: int64 as is, doubles with -0.0 as 0.0."""
    if values.dtype.kind == "f":
        values = np.where(values == 0.0, 0.0, values.astype(np.float64, copy=False))
    else:
        values = values.astype(np.int64, copy=False)
    return np.ascontiguousarray(values).view(np.uint64)


def registers(values: np.ndarray, lg_k: int) -> np.ndarray:
    """HLL_8 registers (uint8, 2**lg_k) of an int or float array."""
    h1, h2 = hash_keys(to_keys(values))
    slot = (h1 & np.uint64((1 << lg_k) - 1)).astype(np.intp)
    value = (np.minimum(_leading_zeros(h2), 62) + 1).astype(np.uint8)
    out = np.zeros(1 << lg_k, dtype=np.uint8)
    np.maximum.at(out, slot, value)
    return out


def sketch_from_registers(regs: np.ndarray, lg_k: int) -> ds.hll_sketch:
    """A DataSketches HLL_8 sketch holding exactly these registers."""
    inv = np.ldexp(1.0, -regs.astype(np.int32))
    low = regs < 32
    header = struct.pack(
        "<BBBBBBBBdddII", 10, 1, 7, lg_k, 0, _OUT_OF_ORDER, 0, 2 | (2 << 2),
        0.0, float(inv[low].sum()), float(inv[~low].sum()), int(np.count_nonzero(regs == 0)), 0,
    )
    return ds.hll_sketch.deserialize(header + regs.tobytes())
