"""Statistics of a whole dataset: one pass over record batches, mergeable, serialisable."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from kiln.core.errors import InvalidArgument
from kiln.prep.stats._chunks import (
    Chunk,
    as_chunk,
    iter_chunks,
    map_columns,
    select,
)
from kiln.prep.stats._column import DEFAULT_KLL_K, ColumnStatistics
from kiln.prep.stats._types import DEFAULT_BATCH_SIZE, DataLike, infer_kind

__all__ = ["DatasetStatistics", "compute_statistics"]

FORMAT = "kiln.statistics/1"


class DatasetStatistics:
    """Per-column statistics of a dataset, built from record batches.

    Feed batches with :meth:`update`; combine statistics of separate chunks
    with :meth:`merge` (the result equals one pass over all chunks, up to
    float rounding and sketch error); save with :meth:`to_json`.

    Args:
        kll_k: the KLL sketch's k for numeric columns.
        max_exact: distinct values counted exactly per column before sketching
            (default: 10,000 for numbers, 65,536 for strings).
    """

    def __init__(self, *, kll_k: int = DEFAULT_KLL_K, max_exact: int | None = None) -> None:
        self.kll_k = kll_k
        self.max_exact = max_exact
        self.row_count = 0
        self.nbytes = 0
        self.columns: dict[str, ColumnStatistics] = {}
        self._lock = threading.Lock()
        self._fresh: set[str] = set()  # columns first seen in the current chunk

    def __getitem__(self, name: str) -> ColumnStatistics:
        try:
            return self.columns[name]
        except KeyError:
            raise InvalidArgument(
                f"no column {name!r}; columns are {', '.join(self.columns) or '(none)'}"
            ) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.columns.values())

    def __len__(self) -> int:
        return len(self.columns)

    def _column(self, name: str, arr: pa.Array | pa.ChunkedArray) -> ColumnStatistics:
        col = self.columns.get(name)
        if col is None:
            with self._lock:  # column threads may meet a new column at once
                col = self.columns.get(name)
                if col is None:
                    col = ColumnStatistics(name, infer_kind(arr.type), kll_k=self.kll_k,
                                           max_exact=self.max_exact,
                                           tz=getattr(arr.type, "tz", None))
                    # A column first seen late was missing from every earlier row.
                    col.count = col.null_count = self.row_count
                    self.columns[name] = col
                    self._fresh.add(name)
        return col

    def update_column(self, name: str, arr: pa.Array | pa.ChunkedArray,
                      nbytes: int | None = None) -> None:
        """Add one chunk's values of one column; finish the chunk with :meth:`end_chunk`.

        Different columns may be updated from different threads. ``nbytes`` is
        the size to count for the values (default: ``arr``'s), for a caller
        that re-encoded them.
        """
        self._column(name, arr).update(arr)
        with self._lock:
            self.nbytes += arr.nbytes if nbytes is None else nbytes

    def end_chunk(self, names: list[str], num_rows: int) -> None:
        """Close a chunk of ``num_rows`` rows whose columns ``names`` were all updated."""
        seen = set(names)
        for name, col in self.columns.items():
            if name not in seen:  # absent from this chunk: all missing
                col.count += num_rows
                col.null_count += num_rows
        if self._fresh:  # created by column threads in any order: use the chunk's order
            old = [n for n in self.columns if n not in self._fresh]
            self.columns = {n: self.columns[n] for n in old + [n for n in names if n in self._fresh]}
            self._fresh.clear()
        self.row_count += num_rows

    def update(self, batch: pa.RecordBatch | pa.Table | Chunk, *,
               executor: ThreadPoolExecutor | None = None, window: int = 4) -> DatasetStatistics:
        """Add one batch (or chunk); columns are processed on ``executor`` when given.

        Args:
            batch: the rows.
            executor: threads for the columns (None: this thread).
            window: the most columns in flight on ``executor``.

        Returns:
            self, so calls chain.
        """
        chunk = as_chunk(batch)
        names = chunk.column_names
        for _ in map_columns(chunk, lambda i, arr: self.update_column(names[i], arr),
                             executor, window):
            pass
        self.end_chunk(names, chunk.num_rows)
        return self

    def merge(self, other: DatasetStatistics) -> DatasetStatistics:
        """New statistics of both datasets' rows (columns matched by name).

        A column present in only one side counts as missing in the other's rows.
        """
        out = DatasetStatistics(kll_k=self.kll_k, max_exact=self.max_exact)
        out.row_count = self.row_count + other.row_count
        out.nbytes = self.nbytes + other.nbytes
        names = list(self.columns) + [n for n in other.columns if n not in self.columns]
        for name in names:
            a, b = self.columns.get(name), other.columns.get(name)
            if a is not None and b is not None:
                out.columns[name] = a.merge(b)
            else:
                col, rows = (a, other.row_count) if a is not None else (b, self.row_count)
                empty = ColumnStatistics(name, col.kind, kll_k=col.kll_k,
                                         max_exact=col.max_exact, tz=col.tz)
                empty.count = empty.null_count = rows
                out.columns[name] = col.merge(empty) if a is not None else empty.merge(col)
        return out

    # -- serialising -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sketches as base64) that :meth:`from_dict` reads back."""
        return {
            "format": FORMAT, "row_count": self.row_count, "nbytes": self.nbytes,
            "kll_k": self.kll_k, "max_exact": self.max_exact,
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetStatistics:
        if d.get("format") != FORMAT:
            raise InvalidArgument(f"not Kiln statistics (format {d.get('format')!r}, "
                                  f"expected {FORMAT!r})")
        max_exact = d.get("max_exact")
        out = cls(kll_k=int(d["kll_k"]), max_exact=None if max_exact is None else int(max_exact))
        out.row_count, out.nbytes = int(d["row_count"]), int(d["nbytes"])
        for c in d["columns"]:
            out.columns[c["name"]] = ColumnStatistics.from_dict(c)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetStatistics:
        return cls.from_dict(json.loads(text))

    def to_model_monitor(self, *, buckets: int = 10, max_categories: int = 1000) -> dict[str, Any]:
        """SageMaker Model Monitor's ``statistics.json`` document (see CONTRACTS.md §5)."""
        from kiln.prep.stats._model_monitor import to_model_monitor

        return to_model_monitor(self, buckets=buckets, max_categories=max_categories)

    def summary(self) -> dict[str, Any]:
        """Human-facing figures of every column, without sketches."""
        return {"row_count": self.row_count, "nbytes": self.nbytes,
                "columns": [c.summary() for c in self.columns.values()]}


def compute_statistics(
    data: DataLike,
    *,
    columns: Sequence[str] | None = None,
    kll_k: int = DEFAULT_KLL_K,
    max_exact: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_workers: int | None = None,
) -> DatasetStatistics:
    """Compute :class:`DatasetStatistics` in one pass, one batch in memory at a time.

    Args:
        data: a path to a Parquet file or folder, a pyarrow Table /
            RecordBatch / Dataset / RecordBatchReader, a pandas or polars
            DataFrame, or any iterable of ``RecordBatch``.
        columns: only these columns (default: all).
        kll_k: KLL sketch accuracy parameter (2048: rank error ~0.1%).
        max_exact: per column, distinct values counted exactly before
            switching to HLL + frequent-items sketches.
        batch_size: rows per batch for inputs that can be re-sliced.
        max_workers: threads used across columns (default: the CPUs, at most 8; 1 = serial).

    Returns:
        The statistics, mergeable with those of other chunks.

    Raises:
        InvalidArgument: for an unreadable input or a column not in it.
    """
    stats = DatasetStatistics(kll_k=kll_k, max_exact=max_exact)
    # Parquet reads, numpy and Arrow kernels run off the GIL; the KLL sketch holds it.
    workers = max_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as executor:
        for chunk in iter_chunks(data, batch_size=batch_size):
            stats.update(select(chunk, columns), executor=executor, window=workers)
    return stats
