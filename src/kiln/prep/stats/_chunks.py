"""Column-at-a-time access to data-like inputs, so a pass holds one column of one chunk.

A *chunk* is a run of rows (a record batch, a slice of a table or frame, a
Parquet row group) whose columns are materialised one at a time, on demand:
a Parquet row group reads just that column chunk. Whole row groups are never
decoded at once, which keeps a profile of a file small in memory; a pandas
frame is converted to Arrow one slice at a time, never whole.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from kiln.core.errors import InvalidArgument
from kiln.prep.stats._types import DEFAULT_BATCH_SIZE, DataLike, iter_batches

__all__ = ["Chunk", "as_chunk", "count_rows", "iter_chunks", "map_columns", "select"]

T = TypeVar("T")


class Chunk(Protocol):
    """Rows whose columns are read one by one."""

    num_rows: int
    column_names: list[str]

    def column(self, i: int) -> pa.Array | pa.ChunkedArray:
        """Column ``i`` (a chunked array only for an in-memory table)."""


class _BatchChunk:
    """A record batch (or table) already in memory."""

    def __init__(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.batch = batch
        self.num_rows = batch.num_rows
        self.column_names = list(batch.schema.names)

    def column(self, i: int) -> pa.Array | pa.ChunkedArray:
        return self.batch.column(i)


def as_chunk(data: pa.RecordBatch | pa.Table | Chunk) -> Chunk:
    """A record batch or table as a :class:`Chunk`; a chunk as itself."""
    return _BatchChunk(data) if isinstance(data, pa.RecordBatch | pa.Table) else data


class _ParquetSource:
    """One Parquet file, opened once per thread: a ``ParquetFile`` is not thread-safe."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self._open = pq.ParquetFile
        try:
            self.main = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidArgument(f"{path} is not a readable Parquet file: {exc}") from None
        self._local = threading.local()

    def file(self) -> Any:
        """This thread's handle (reads only the footer when first opened)."""
        handle = getattr(self._local, "file", None)
        if handle is None:
            handle = self._local.file = self._open(self.path, metadata=self.main.metadata)
        return handle


class _RowGroupChunk:
    """One row group of a Parquet file; each column is read only when asked for."""

    def __init__(self, source: _ParquetSource, index: int, names: list[str]) -> None:
        self.source, self.index = source, index
        self.num_rows = source.main.metadata.row_group(index).num_rows
        self.column_names = names

    def column(self, i: int) -> pa.Array:
        name = self.column_names[i]
        with _unreadable(f"column {name!r} of row group {self.index} of {self.source.path}"):
            table = self.source.file().read_row_group(self.index, columns=[name],
                                                      use_threads=False)
        return table.column(0).combine_chunks()


class _FragmentChunk:
    """One row group of a ``pyarrow.dataset`` Parquet fragment (local or remote)."""

    def __init__(self, fragment: Any, schema: pa.Schema, num_rows: int) -> None:
        self.fragment, self.schema = fragment, schema
        self.num_rows = num_rows
        self.column_names = list(schema.names)

    def column(self, i: int) -> pa.Array:
        name = self.column_names[i]
        with _unreadable(f"column {name!r} of {self.fragment.path}"):
            table = self.fragment.to_table(columns=[name], schema=self.schema, use_threads=False)
        return table.column(0).combine_chunks()


class _SelectedChunk:
    """Some columns of a chunk, by name."""

    def __init__(self, chunk: Chunk, columns: Sequence[str]) -> None:
        missing = [c for c in columns if c not in chunk.column_names]
        if missing:
            raise InvalidArgument(f"no column(s) {missing}; columns are {chunk.column_names}")
        self.chunk = chunk
        self.num_rows = chunk.num_rows
        self.column_names = list(columns)
        self.index = [chunk.column_names.index(c) for c in columns]

    def column(self, i: int) -> pa.Array | pa.ChunkedArray:
        return self.chunk.column(self.index[i])


def select(chunk: Chunk, columns: Sequence[str] | None) -> Chunk:
    """``chunk`` restricted to ``columns`` (all when None); unknown names are an error."""
    return chunk if columns is None else _SelectedChunk(chunk, columns)


@contextlib.contextmanager
def _unreadable(what: str) -> Iterator[None]:
    """Turn a read error of a column chunk into an :class:`InvalidArgument` naming it."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(f"cannot read {what}: {exc}") from None


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise InvalidArgument(f"no .parquet files under {path}")
        return files
    if not path.exists():
        raise InvalidArgument(f"no such file: {path}")
    return [path]


def _file_chunks(path: Path) -> Iterator[Chunk]:
    for file_path in _parquet_files(path):
        source = _ParquetSource(file_path)
        schema = source.main.schema_arrow
        if source.main.metadata.num_row_groups == 0:
            yield _BatchChunk(pa.RecordBatch.from_pylist([], schema=schema))
        for index in range(source.main.metadata.num_row_groups):
            yield _RowGroupChunk(source, index, list(schema.names))


def _dataset_chunks(data: Any) -> Iterator[Chunk] | None:
    """Row-group chunks of a Parquet ``pyarrow.dataset.Dataset``; None for other formats."""
    try:
        fragments = list(data.get_fragments())
    except ValueError:  # a filtered or projected dataset: read it through its scanner
        return None
    if not fragments or not all(hasattr(f, "row_groups") and hasattr(f, "subset") for f in fragments):
        return None

    def chunks() -> Iterator[Chunk]:
        empty = True
        for fragment in fragments:
            with _unreadable(str(fragment.path)):
                groups = fragment.row_groups
            for rg in groups:
                empty = False
                yield _FragmentChunk(fragment.subset(row_group_ids=[rg.id]), data.schema,
                                     rg.num_rows)
        if empty:  # still tell the schema
            yield _BatchChunk(pa.RecordBatch.from_pylist([], schema=data.schema))

    return chunks()


def iter_chunks(data: DataLike, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[Chunk]:
    """Yield the chunks of a data-like input, columns read lazily where the input allows.

    Args:
        data: anything :func:`iter_batches` takes, or a path to a Parquet file
            or a folder of them. Parquet files and Parquet datasets are read a
            column chunk at a time; pandas frames convert a slice at a time;
            everything else goes batch by batch.
        batch_size: the most rows per chunk for inputs that can be re-sliced
            (a Parquet row group is one chunk, whatever its size).

    Raises:
        InvalidArgument: for unreadable inputs.
    """
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be positive, got {batch_size}")
    if isinstance(data, str | os.PathLike):
        yield from _file_chunks(Path(data))
        return
    mod = type(data).__module__
    if mod.startswith("pandas") and hasattr(data, "iloc") and len(data) > 0:
        for start in range(0, len(data), batch_size):  # one slice in Arrow at a time
            yield from (_BatchChunk(b) for b in
                        iter_batches(data.iloc[start:start + batch_size], batch_size=batch_size))
        return
    if hasattr(data, "get_fragments") and hasattr(data, "schema"):  # pyarrow.dataset
        chunks = _dataset_chunks(data)
        if chunks is not None:
            yield from chunks
            return
    for batch in iter_batches(data, batch_size=batch_size):
        yield _BatchChunk(batch)


def count_rows(data: DataLike) -> int | None:
    """How many rows :func:`iter_chunks` will yield, where that is known without reading the
    data (tables, frames, Parquet metadata of a dataset); None for streams and paths."""
    if isinstance(data, pa.Table | pa.RecordBatch):
        return int(data.num_rows)
    mod = type(data).__module__
    if mod.startswith(("pandas", "polars")) and hasattr(data, "__len__"):
        return len(data)
    if hasattr(data, "count_rows") and hasattr(data, "get_fragments"):  # pyarrow.dataset
        return int(data.count_rows())
    return None


def map_columns(chunk: Chunk, fn: Callable[[int, pa.Array], T],
                pool: ThreadPoolExecutor | None = None, window: int = 2) -> Iterator[T]:
    """``fn(i, column i)`` for every column of ``chunk``, results in column order.

    With a ``pool``, each column is read and worked on in a pool thread, at
    most ``window + 1`` columns at once, so that many columns of the chunk
    are in memory at a time (chunks are safe to read from several threads).
    """
    if pool is None:
        for i in range(len(chunk.column_names)):
            yield fn(i, chunk.column(i))
        return
    pending: collections.deque[Future[T]] = collections.deque()
    for i in range(len(chunk.column_names)):
        pending.append(pool.submit(_read_then, fn, chunk, i))
        while len(pending) > window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _read_then(fn: Callable[[int, pa.Array], T], chunk: Chunk, i: int) -> T:
    return fn(i, chunk.column(i))
