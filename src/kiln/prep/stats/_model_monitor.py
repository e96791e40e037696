"""Render statistics as SageMaker Model Monitor's ``statistics.json`` (CONTRACTS.md §5)."""

from __future__ import annotations

import datetime as dt
import struct
from typing import TYPE_CHECKING, Any

import datasketches as ds
import numpy as np

from kiln.prep.stats._column import ColumnStatistics
from kiln.prep.stats._types import ColumnKind

if TYPE_CHECKING:
    from kiln.prep.stats._dataset import DatasetStatistics

__all__ = ["INFERRED_TYPES", "kll_levels", "to_model_monitor"]

INFERRED_TYPES = {
    ColumnKind.INTEGER: "Integral",
    ColumnKind.FLOAT: "Fractional",
    ColumnKind.STRING: "String",
    # Model Monitor reads CSV/JSON, where bools and datetimes arrive as text.
    ColumnKind.BOOL: "String",
    ColumnKind.DATETIME: "String",
    ColumnKind.OTHER: "Unknown",
}
# Model Monitor (Deequ) writes its KLL compaction constant as c=0.64; readers of
# statistics.json expect the field. Apache DataSketches' KLL compacts with a
# fixed 2/3 ratio, so the same k gives at least Deequ's accuracy.
KLL_C = 0.64


def kll_levels(sketch: ds.kll_doubles_sketch) -> list[list[float]]:
    """The items a KLL sketch retains, level by level (level 0, weight 1, first).

    Read from the DataSketches serial format (the Python binding exposes no
    level accessor): 20-byte preamble, ``num_levels`` uint32 offsets, min, max,
    then the retained items. An item on level ``i`` stands for ``2**i`` values.
    """
    if sketch.is_empty():
        return []
    buf = sketch.serialize()
    if sketch.n == 1:
        return [[sketch.get_min_value()]]
    num_levels = buf[18]
    offsets = struct.unpack_from(f"<{num_levels}I", buf, 20)
    start = 20 + 4 * num_levels + 16  # skip the offsets, min and max
    items = np.frombuffer(buf, dtype="<f8", offset=start)
    bounds = [o - offsets[0] for o in offsets] + [len(items)]
    return [items[bounds[i]:bounds[i + 1]].tolist() for i in range(num_levels)]


def _common(col: ColumnStatistics) -> dict[str, int]:
    return {"num_present": col.present, "num_missing": col.missing}


def _numerical(col: ColumnStatistics, buckets: int) -> dict[str, Any]:
    out: dict[str, Any] = {"common": _common(col)}
    if col.moments.n:
        out.update(
            mean=float(col.moments.mean), sum=float(col.sum),
            # Deequ's StandardDeviation is the population one (ddof=0).
            std_dev=float(col.moments.std(0) or 0.0),
            min=float(col.min), max=float(col.max),
        )
    hist = col.histogram(buckets)
    rows = []
    if hist is not None:
        edges, counts = hist
        rows = [{"lower_bound": edges[i], "upper_bound": edges[i + 1], "count": counts[i]}
                for i in range(len(counts))]
    out["distribution"] = {"kll": {
        "buckets": rows,
        "sketch": {"parameters": {"c": KLL_C, "k": float(col.kll_k)},
                   "data": kll_levels(col.kll) if col.kll is not None else []},
    }}
    return out


def _text(v: Any) -> str:
    return v.isoformat() if isinstance(v, dt.datetime | dt.date) else str(v)


def _string(col: ColumnStatistics, max_categories: int) -> dict[str, Any]:
    top = col.top_values(max_categories)
    return {
        "common": _common(col),
        "distinct_count": float(round(col.distinct or 0.0)),
        "distribution": {"categorical": {
            "buckets": [{"value": _text(v), "count": int(c)} for v, c in top],
        }},
    }


def to_model_monitor(stats: DatasetStatistics, *, buckets: int = 10,
                     max_categories: int = 1000) -> dict[str, Any]:
    """Model Monitor's ``statistics.json`` for ``stats``.

    Args:
        stats: the dataset statistics.
        buckets: KLL histogram buckets per numeric feature (Model Monitor: 10).
        max_categories: the most categorical buckets listed per string feature.

    Returns:
        ``{"version": 0, "dataset": {"item_count"}, "features": [...]}``.
    """
    features = []
    for col in stats.columns.values():
        inferred = INFERRED_TYPES[col.kind]
        feature: dict[str, Any] = {"name": col.name, "inferred_type": inferred}
        if inferred in ("Integral", "Fractional"):
            feature["numerical_statistics"] = _numerical(col, buckets)
        elif inferred == "String":
            feature["string_statistics"] = _string(col, max_categories)
        features.append(feature)
    return {"version": 0, "dataset": {"item_count": stats.row_count}, "features": features}
