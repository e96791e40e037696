"""``profile()``: one pass of statistics plus sample-based analyses, as JSON and HTML."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kiln.core.errors import InvalidArgument
from kiln.core.progress import Progress
from kiln.prep.report._analysis import (
    Alert,
    AlertThresholds,
    column_alerts,
    correlations,
    missing_patterns,
)
from kiln.prep.report._html import render
from kiln.prep.report._rowhash import ColumnHash, RowHasher, column_hash
from kiln.prep.report._sample import DuplicateCounter, RowSampler, duplicate_examples
from kiln.prep.stats import ColumnKind, DatasetStatistics, DataLike
from kiln.prep.stats._chunks import Chunk, count_rows, iter_chunks, map_columns
from kiln.prep.stats._types import DEFAULT_BATCH_SIZE

__all__ = ["FORMAT", "ProfileResult", "profile"]

FORMAT = "kiln.profile/1"
SAMPLE_ROWS_SHOWN = 10
# Correlations and missing patterns from 50,000 rows are within ~0.005 of the full
# data's; the quick model of an insights report gets more rows.
SAMPLE_ROWS = 50_000
SAMPLE_ROWS_TARGET = 50_000
_ENCODE_PROBE = 4_096  # values looked at before dictionary-encoding a string column
HISTOGRAM_BINS = 24
TOP_VALUES = 10


def _clean(v: Any) -> Any:
    """JSON-safe: no NaN/inf, datetimes as ISO text, bytes as a marker."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return str(v)
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    if isinstance(v, str | int | bool) or v is None:
        return v
    return str(v)


@dataclass
class ProfileResult:
    """A dataset profile: the JSON document, the full statistics, and an HTML rendering.

    Attributes:
        document: the JSON-ready profile (what :meth:`to_json` returns).
        statistics: the full-pass statistics (sketches included); None when
            rebuilt from JSON.
    """

    document: dict[str, Any]
    statistics: DatasetStatistics | None = field(default=None, repr=False)

    @property
    def alerts(self) -> list[Alert]:
        return [Alert.from_dict(a) for a in self.document["alerts"]]

    @property
    def insights(self) -> dict[str, Any] | None:
        return self.document.get("insights")

    def to_json(self) -> dict[str, Any]:
        """The profile as a JSON-ready dict (no NaN, no sketches)."""
        return self.document

    @classmethod
    def from_json(cls, document: dict[str, Any] | str) -> ProfileResult:
        """Rebuild a result (its HTML included) from :meth:`to_json`'s output."""
        doc = json.loads(document) if isinstance(document, str) else document
        if doc.get("format") != FORMAT:
            raise InvalidArgument(f"not a Kiln profile (format {doc.get('format')!r})")
        return cls(doc)

    def to_html(self) -> str:
        """A self-contained HTML page: inline CSS and SVG, no script or network fetch."""
        return render(self.document)


def _column_section(col: Any, alerts: list[Alert]) -> dict[str, Any]:
    summary = col.summary()
    # inf is a value here, not a gap: keep it visible as text.
    summary["top_values"] = [[str(v) if isinstance(v, float) and not math.isfinite(v)
                              else _clean(v), c] for v, c in col.top_values(TOP_VALUES)]
    few = col.distinct_exact and (col.distinct or 0) <= TOP_VALUES
    if col.kind in (ColumnKind.STRING, ColumnKind.BOOL) or few or col.kind is ColumnKind.OTHER:
        summary["chart"] = "bars"
    else:
        hist = col.histogram(HISTOGRAM_BINS)
        summary["chart"] = "histogram" if hist else None
        if hist:
            edges, counts = hist
            if col.kind is ColumnKind.DATETIME:  # bins are epoch seconds; label as dates
                edges = [dt.datetime.fromtimestamp(e, dt.UTC).isoformat()[:19] for e in edges]
            summary["histogram"] = {"edges": edges, "counts": counts}
    summary["alerts"] = [a.to_dict() for a in alerts]
    return summary


def _sample_rows(sample: pa.Table | None, n: int, seed: int) -> dict[str, Any]:
    """``n`` rows drawn at random from the (uniform) sample, in data order."""
    if sample is None:
        return {"columns": [], "rows": []}
    picked = np.random.default_rng(seed).choice(sample.num_rows, min(n, sample.num_rows),
                                                replace=False)
    head = sample.take(pa.array(np.sort(picked)))
    cols = head.column_names
    return {"columns": cols, "rows": [[_clean(r[c]) for c in cols] for r in head.to_pylist()]}


def profile(
    data: DataLike,
    *,
    title: str = "Dataset profile",
    target: str | None = None,
    sample_rows: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_workers: int | None = None,
    thresholds: AlertThresholds | None = None,
    seed: int = 0,
) -> ProfileResult:
    """Profile a dataset: statistics of every column, alerts, and (with a target) insights.

    Per-column statistics come from one full pass over the data (bounded
    memory, see :func:`kiln.prep.stats.compute_statistics`); duplicate rows are
    counted exactly over all rows by 64-bit row hashes. Correlations, missing
    patterns, sample rows, outliers, anomalies and the target model use a
    uniform sample of at most ``sample_rows`` rows; the report says so.

    Args:
        data: a path to a Parquet file or folder (read a column chunk at a
            time), a pyarrow Table / RecordBatch / Dataset / RecordBatchReader,
            a pandas or polars DataFrame, or an iterable of ``RecordBatch``.
        title: the report's title.
        target: a column to predict; adds problem type, a quick model
            (gradient-boosted trees), per-feature prediction power (flagging
            possible leakage), outliers and anomalous rows.
        sample_rows: the most rows kept for sample-based analyses (default
            50,000).
        batch_size: rows per batch for inputs that can be re-sliced.
        max_workers: threads for the statistics pass (default: the CPUs, at most 8).
        thresholds: when alerts fire (default :class:`AlertThresholds`).
        seed: seed of the sample and the models, for repeatable reports.

    Returns:
        A :class:`ProfileResult`; ``.to_json()`` and ``.to_html()`` render it.

    Raises:
        InvalidArgument: unreadable input, or a ``target`` not in the data.
    """
    th = thresholds or AlertThresholds()
    stats = DatasetStatistics()
    if sample_rows is None:
        sample_rows = SAMPLE_ROWS_TARGET if target is not None else SAMPLE_ROWS
    sampler = RowSampler(sample_rows, seed=seed)
    dups = DuplicateCounter()
    # The pass over the rows is most of the work; with a target the insights take about as long.
    progress = Progress()
    passed = 0.5 if target is not None else 0.9
    scan = progress.part(0.0, passed, (count_rows(data) or 0) if progress.active else 0)
    # Parquet reads, numpy and Arrow kernels run off the GIL; the KLL sketch holds it.
    workers = max_workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for chunk in iter_chunks(data, batch_size=batch_size):
            _profile_chunk(chunk, stats, sampler, dups, pool, workers)
            scan.advance(chunk.num_rows)
    if target is not None and target not in stats.columns:
        raise InvalidArgument(f"target {target!r} is not a column; columns are "
                              f"{', '.join(stats.columns)}")
    scan.finish()
    sample = sampler.result()
    document = _document(stats, sample, sampler, dups, title, target, th, seed,
                         progress.part(passed, 1.0))
    progress.finish()
    return ProfileResult(document, stats)


def _profile_chunk(chunk: Chunk, stats: DatasetStatistics, sampler: RowSampler,
                   dups: DuplicateCounter, pool: ThreadPoolExecutor | None, workers: int) -> None:
    """One chunk, a column at a time: its statistics, its share of the row hash and sample.

    Columns are worked on in ``pool``, ``workers`` at a time (see
    :func:`map_columns`), so only that many columns of the chunk are in
    memory at once, plus the sampled rows.
    """
    names = chunk.column_names
    keep, keys = sampler.select(chunk.num_rows)
    take = None if len(keep) == chunk.num_rows else pa.array(keep)

    def one(i: int, arr: pa.Array | pa.ChunkedArray) -> tuple[ColumnHash, pa.Array]:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        coded = _dictionary_encoded(arr)
        stats.update_column(names[i], coded, nbytes=arr.nbytes)
        return column_hash(coded), arr if take is None else arr.take(take)

    hasher = RowHasher(chunk.num_rows)
    kept: list[pa.Array] = []
    for hashed, part in map_columns(chunk, one, pool, workers):
        hasher.add(hashed)  # in column order
        kept.append(part)
    stats.end_chunk(names, chunk.num_rows)
    hashes = hasher.result()
    dups.add(hashes)
    if len(keep):
        sampler.add(pa.RecordBatch.from_arrays(kept, names=names), keys, hashes[keep])


def _dictionary_encoded(arr: pa.Array) -> pa.Array:
    """Strings with few distinct values, dictionary-encoded; anything else as it is.

    Counting and hashing then work once per distinct value plus a pass over
    small integer indices, ~3x faster than over the strings; a probe of the
    first values decides, since encoding many distinct values gains nothing.
    """
    if len(arr) < 4 * _ENCODE_PROBE or not (pa.types.is_string(arr.type)
                                            or pa.types.is_large_string(arr.type)):
        return arr
    if pc.count_distinct(arr.slice(0, _ENCODE_PROBE)).as_py() > _ENCODE_PROBE // 4:
        return arr
    return pc.dictionary_encode(arr)


def _document(stats: DatasetStatistics, sample: pa.Table | None, sampler: RowSampler,
              dups: DuplicateCounter, title: str, target: str | None, th: AlertThresholds,
              seed: int, progress: Progress) -> dict[str, Any]:
    alerts: list[Alert] = []
    columns = []
    for col in stats:
        found = column_alerts(col, th)
        alerts.extend(found)
        columns.append(_column_section(col, found))
    corr, corr_alerts = correlations(stats, sample, th)
    alerts.extend(corr_alerts)
    n_dups = dups.duplicates
    rows = stats.row_count
    if n_dups:
        alerts.append(Alert("duplicates", (), f"{n_dups:,} rows ({n_dups / rows:.1%}) repeat an "
                            "earlier row", n_dups / rows))
    cells = rows * len(stats)
    missing_cells = sum(c.missing for c in stats)
    sample_n = sample.num_rows if sample is not None else 0
    doc: dict[str, Any] = {
        "format": FORMAT,
        "title": title,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "overview": {
            "rows": rows, "columns": len(stats), "cells": cells,
            "missing_cells": missing_cells,
            "missing_cells_share": missing_cells / cells if cells else 0.0,
            "duplicate_rows": n_dups, "duplicate_share": n_dups / rows if rows else 0.0,
            "bytes": stats.nbytes,
            "types": dict(Counter(c.kind.value for c in stats)),
            "sample_rows": sample_n, "sampled": not sampler.complete,
        },
        "columns": columns,
        "correlations": corr,
        "missing": missing_patterns(stats, sample),
        "duplicates": {"count": n_dups, "share": n_dups / rows if rows else 0.0,
                       "exact": True, "examples": duplicate_examples(sample, sampler.tags, dups)},
        "sample": _sample_rows(sample, SAMPLE_ROWS_SHOWN, seed),
        "alerts": [a.to_dict() for a in alerts],
        "insights": None,
    }
    if target is not None and sample is not None:
        from kiln.prep.report._insights import target_insights

        progress.update(0.1)
        doc["insights"] = target_insights(stats, sample, target, seed=seed, progress=progress.part(0.1, 1.0))
        doc["insights"]["duplicate_share"] = doc["overview"]["duplicate_share"]
        for p in doc["insights"]["feature_power"]:
            if p["leakage"]:
                what = "R²" if doc["insights"]["problem_type"] == "regression" else "accuracy gain"
                doc["alerts"].append(Alert(
                    "leakage", (p["column"], target),
                    f"{p['column']} alone predicts {target} ({what} {p['power']:.3f}): "
                    "check it is known before the target, or drop it", p["power"]).to_dict())
    return _clean(doc)
