"""Bounds on what an upload may unpack to, checked while streaming, before it fills a disk."""

from __future__ import annotations

__all__ = ["MAX_RATIO", "MIN_UNPACKED", "unpacked_limit"]

# Model files and Parquet compress a few times at most (weights ~1-2x, JSON trees ~5-10x);
# a gzip bomb compresses a thousand times and more.
MAX_RATIO = 50
# Below this an upload may unpack to this much whatever its ratio (tiny packages of text).
MIN_UNPACKED = 64 << 20


def unpacked_limit(packed_bytes: int, cap: int) -> int:
    """How many bytes an archive of ``packed_bytes`` may unpack to: a ratio, a floor and ``cap``."""
    return min(cap, max(MIN_UNPACKED, packed_bytes * MAX_RATIO))
