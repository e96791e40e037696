"""Streaming helpers for the profile: a uniform row sample and exact duplicate counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["DuplicateCounter", "RowSampler"]


class RowSampler:
    """A uniform sample of at most ``size`` rows, drawn in one pass.

    Each row gets a random key and the ``size`` rows with the smallest keys
    are kept (bottom-k sampling): uniform without replacement, mergeable, and
    vectorised per batch, since once full only rows whose key beats the
    current k-th key are looked at. Each row may carry a tag (its row hash),
    returned beside the sample by :attr:`tags`.
    """

    def __init__(self, size: int, *, seed: int = 0) -> None:
        self.size = size
        self.rng_ = np.random.default_rng(seed)
        self.parts_: list[pa.Table] = []
        self.keys_: list[np.ndarray] = []
        self.tags_: list[np.ndarray] = []
        self.buffered_ = 0
        self.threshold_ = np.inf  # k-th smallest key once the sample is full
        self.seen_ = 0

    def select(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw keys for the next ``n`` rows: (indices of rows that may enter, their keys).

        Pass those rows to :meth:`add`; the others are already out.
        """
        self.seen_ += n
        if n == 0 or self.size <= 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        keys = self.rng_.random(n)
        if not np.isfinite(self.threshold_):
            return np.arange(n), keys
        keep = np.flatnonzero(keys < self.threshold_)
        return keep, keys[keep]

    def add(self, rows: pa.RecordBatch | pa.Table, keys: np.ndarray,
            tags: np.ndarray | None = None) -> None:
        """Offer the rows :meth:`select` let in, with their keys (and tags)."""
        if len(keys) == 0:
            return
        self.parts_.append(rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows]))
        self.keys_.append(keys)
        self.tags_.append(np.zeros(len(keys), dtype=np.uint64) if tags is None else tags)
        self.buffered_ += len(keys)
        if self.buffered_ >= self.size + max(self.size // 2, 1):
            self._compact()

    def update(self, batch: pa.RecordBatch, tags: np.ndarray | None = None) -> None:
        """Offer a whole batch (``tags``: one per row)."""
        keep, keys = self.select(batch.num_rows)
        if len(keep) == batch.num_rows:
            self.add(batch, keys, tags)
        elif len(keep):
            self.add(batch.take(pa.array(keep)), keys, None if tags is None else tags[keep])

    def _compact(self) -> None:
        table = pa.concat_tables(self.parts_, promote_options="permissive")
        keys, tags = np.concatenate(self.keys_), np.concatenate(self.tags_)
        if len(keys) > self.size:
            idx = np.argpartition(keys, self.size - 1)[: self.size]
            idx.sort()  # keep arrival order, so an unsampled input comes back as it was
            table, keys, tags = table.take(pa.array(idx)), keys[idx], tags[idx]
            self.threshold_ = float(keys.max())
        self.parts_, self.keys_, self.tags_ = [table], [keys], [tags]
        self.buffered_ = len(keys)

    @property
    def complete(self) -> bool:
        """True when every row seen is in the sample."""
        return self.seen_ <= self.size

    def result(self) -> pa.Table | None:
        """The sampled rows (None when no batch had rows)."""
        if not self.parts_:
            return None
        self._compact()
        return self.parts_[0].combine_chunks()

    @property
    def tags(self) -> np.ndarray:
        """The sampled rows' tags, in :meth:`result`'s order."""
        if not self.parts_:
            return np.zeros(0, dtype=np.uint64)
        self._compact()
        return self.tags_[0]


class DuplicateCounter:
    """Exact count of duplicate rows over a stream, by 64-bit row hashes.

    Memory is 8 bytes per distinct row (hashes are compacted as they come);
    a 64-bit hash collides with odds ~n²/2⁶⁵, negligible below billions of rows.
    """

    COMPACT_EVERY = 4_000_000

    def __init__(self) -> None:
        self.hashes_: list[np.ndarray] = []
        self.buffered_ = 0
        self.rows_ = 0
        self.unique_: np.ndarray | None = None
        self.counts_: np.ndarray | None = None

    def add(self, hashes: np.ndarray) -> None:
        """Count rows by their hashes (from :mod:`kiln.prep.report._rowhash`)."""
        if len(hashes) == 0:
            return
        self.hashes_.append(hashes)
        self.rows_ += len(hashes)
        self.buffered_ += len(hashes)
        if self.buffered_ >= self.COMPACT_EVERY:
            self._compact()

    def _compact(self) -> None:
        if not self.hashes_ and self.unique_ is not None:
            return
        hashes = np.concatenate(self.hashes_) if self.hashes_ else np.zeros(0, np.uint64)
        weights = np.ones(len(hashes), dtype=np.int64)
        if self.unique_ is not None:
            hashes = np.concatenate([self.unique_, hashes])
            weights = np.concatenate([self.counts_, weights])
        # One sort, then run boundaries: cheaper than np.unique(return_inverse=True).
        order = np.argsort(hashes, kind="stable")
        hashes, weights = hashes[order], weights[order]
        starts = np.flatnonzero(np.concatenate([[True], hashes[1:] != hashes[:-1]])) \
            if len(hashes) else np.zeros(0, np.intp)
        self.unique_ = hashes[starts]
        self.counts_ = np.add.reduceat(weights, starts) if len(starts) else weights
        self.hashes_, self.buffered_ = [], 0

    @property
    def duplicates(self) -> int:
        """Rows that repeat an earlier row (rows minus distinct rows)."""
        self._compact()
        return self.rows_ - len(self.unique_)

    def repeated(self) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of the rows that occur more than once (sorted), with their counts."""
        self._compact()
        many = self.counts_ > 1
        return self.unique_[many], self.counts_[many]


def duplicate_examples(sample: pa.Table | None, hashes: np.ndarray, counter: DuplicateCounter,
                       *, limit: int = 5) -> list[dict[str, Any]]:
    """Up to ``limit`` sampled rows that occur more than once in the whole data.

    ``hashes`` are the sampled rows' hashes (:attr:`RowSampler.tags`).
    """
    if sample is None or sample.num_rows == 0 or counter.duplicates == 0:
        return []
    dup, dup_counts = counter.repeated()
    pos = np.searchsorted(dup, hashes).clip(0, len(dup) - 1)
    idx = np.flatnonzero(dup[pos] == hashes)
    counts = dup_counts[pos[idx]]
    _, first = np.unique(hashes[idx], return_index=True)  # one example per distinct row
    keep = np.sort(first)
    idx, counts = idx[keep], counts[keep]
    best = np.argsort(-counts, kind="stable")[:limit]
    rows = sample.take(pa.array(idx[best])).to_pylist()
    return [{"row": row, "count": int(c)} for row, c in zip(rows, counts[best], strict=True)]
