"""Column kinds, input normalisation and turning data-like inputs into batches."""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from kiln.core.errors import InvalidArgument

__all__ = ["ColumnKind", "DataLike", "infer_kind", "iter_batches", "normalize_array"]

#: Anything the engine can read: Arrow tables, batches, readers, datasets,
#: pandas / polars frames, or any iterable of record batches.
DataLike: TypeAlias = Any

# Rows per batch: about a Parquet row group of Kiln's lake (DuckDB writes 122,880);
# per-batch costs (merging counts, drawing the sample) fade at this size.
DEFAULT_BATCH_SIZE = 131_072


class ColumnKind(str, enum.Enum):
    """The inferred kind of a column, from its Arrow type."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    DATETIME = "datetime"
    OTHER = "other"

    @property
    def is_numeric(self) -> bool:
        return self in (ColumnKind.INTEGER, ColumnKind.FLOAT)


# Datetimes are kept as microseconds since the epoch: wide enough for any
# timestamp pandas can hold and exact for every unit coarser than ns.
DATETIME_UNIT = "us"


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def infer_kind(t: pa.DataType) -> ColumnKind:
    """Map an Arrow type to the kind the statistics engine treats it as."""
    t = _value_type(t)
    if pa.types.is_boolean(t):
        return ColumnKind.BOOL
    if pa.types.is_integer(t):
        return ColumnKind.INTEGER
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return ColumnKind.FLOAT
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return ColumnKind.STRING
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return ColumnKind.DATETIME
    return ColumnKind.OTHER


def canonical_type(kind: ColumnKind, tz: str | None = None) -> pa.DataType | None:
    """The one Arrow type every array of ``kind`` is cast to before counting."""
    return {
        ColumnKind.INTEGER: pa.int64(),
        ColumnKind.FLOAT: pa.float64(),
        ColumnKind.BOOL: pa.bool_(),
        ColumnKind.STRING: pa.string(),
        ColumnKind.DATETIME: pa.timestamp(DATETIME_UNIT, tz=tz),
    }.get(kind)


def normalize_array(arr: pa.Array | pa.ChunkedArray) -> tuple[ColumnKind, pa.Array, str | None]:
    """Return (kind, array cast to its canonical type, timezone).

    Canonical types let counters of different chunks concatenate and merge.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    kind = infer_kind(arr.type)
    tz = getattr(arr.type, "tz", None) if kind is ColumnKind.DATETIME else None
    target = canonical_type(kind, tz)
    if target is None or arr.type == target:
        return kind, arr, tz
    if kind is ColumnKind.INTEGER and arr.type == pa.uint64():
        try:
            return kind, pc.cast(arr, target), tz
        except pa.ArrowInvalid:  # values past 2**63 only fit a float
            return ColumnKind.FLOAT, pc.cast(arr, pa.float64()), tz
    if pa.types.is_date(arr.type):
        # date -> timestamp is not a direct cast in every Arrow version.
        arr = pc.cast(arr, pa.date32())
        days = pc.cast(arr, pa.int32()).cast(pa.int64())
        micros = pc.multiply(days, pa.scalar(86_400_000_000, pa.int64()))
        return kind, micros.cast(target), tz
    return kind, pc.cast(arr, target, safe=False), tz


def _from_frame(data: Any) -> pa.Table | None:
    mod = type(data).__module__
    if mod.startswith("pandas") and hasattr(data, "columns"):
        with warnings.catch_warnings():
            # pyarrow reads tz-aware columns through .values and re-applies the
            # timezone itself; pandas 3.1 warns about that read, needlessly here.
            warnings.filterwarnings("ignore", message=".*drops timezone information")
            return pa.Table.from_pandas(data, preserve_index=False)
    if mod.startswith("polars") and hasattr(data, "to_arrow"):
        return data.to_arrow()
    return None


def iter_batches(data: DataLike, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[pa.RecordBatch]:
    """Yield record batches of at most ``batch_size`` rows from a data-like input.

    Args:
        data: a ``pyarrow.Table``, ``RecordBatch``, ``RecordBatchReader``,
            ``pyarrow.dataset.Dataset``, pandas or polars DataFrame, or any
            iterable of record batches (read lazily, so memory stays bounded).
        batch_size: the most rows per batch for inputs that can be re-sliced.

    Raises:
        InvalidArgument: when ``data`` is none of these.
    """
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be positive, got {batch_size}")
    frame = _from_frame(data)
    if frame is not None:
        data = frame
    if isinstance(data, pa.Table):
        if data.num_rows == 0:  # still tell the schema
            yield pa.RecordBatch.from_pylist([], schema=data.schema)
        yield from data.to_batches(max_chunksize=batch_size)
        return
    if isinstance(data, pa.RecordBatch):
        yield from pa.Table.from_batches([data]).to_batches(max_chunksize=batch_size)
        return
    if hasattr(data, "to_batches") and hasattr(data, "schema"):  # pyarrow.dataset.Dataset
        yield from data.to_batches(batch_size=batch_size)
        return
    if isinstance(data, pa.RecordBatchReader) or isinstance(data, Iterable):
        for batch in data:
            if isinstance(batch, pa.Table):
                yield from batch.to_batches(max_chunksize=batch_size)
            elif isinstance(batch, pa.RecordBatch):
                yield batch
            else:
                raise InvalidArgument(
                    f"expected record batches, got {type(batch).__name__}; "
                    "pass a pyarrow Table, Dataset or an iterable of RecordBatch"
                )
        return
    raise InvalidArgument(
        f"cannot read statistics from {type(data).__name__}; pass a pyarrow Table, "
        "RecordBatch, Dataset, pandas/polars DataFrame or an iterable of RecordBatch"
    )
