"""Kiln's one statistics engine: mergeable per-column statistics of record batches.

Profiling, Model Monitor baselines and drift detection all read these.
One pass over ``pyarrow.RecordBatch`` es keeps, per column, exact moments
(Chan/Pébay merge), a KLL quantile sketch, exact value counts or HLL +
frequent-items sketches, and counts of nulls, NaNs, zeros and infinities::

    stats = compute_statistics(table)
    both = stats.merge(compute_statistics(other_chunk))
    stats["price"].quantiles(), stats["price"].kll.get_cdf([10.0])
    json.dump(stats.to_model_monitor(), f)   # SageMaker statistics.json
"""

from kiln.prep.stats._column import DEFAULT_KLL_K, QUANTILES, ColumnStatistics
from kiln.prep.stats._dataset import DatasetStatistics, compute_statistics
from kiln.prep.stats._model_monitor import kll_levels, to_model_monitor
from kiln.prep.stats._moments import Moments
from kiln.prep.stats._types import ColumnKind, DataLike, infer_kind, iter_batches
from kiln.prep.stats._values import ValueCounter

__all__ = [
    "DEFAULT_KLL_K",
    "QUANTILES",
    "ColumnKind",
    "ColumnStatistics",
    "DataLike",
    "DatasetStatistics",
    "Moments",
    "ValueCounter",
    "compute_statistics",
    "infer_kind",
    "iter_batches",
    "kll_levels",
    "to_model_monitor",
]
