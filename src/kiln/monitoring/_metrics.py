"""A monitoring result as numeric metrics (CloudWatch's shape: name, value, dimensions,
timestamp), for a metrics store to keep and alarms to watch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MetricDatum", "run_metrics"]


@dataclass(frozen=True)
class MetricDatum:
    """One value of one metric at one time."""

    name: str
    value: float
    dimensions: dict[str, str] = field(default_factory=dict)
    timestamp: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "dimensions": dict(self.dimensions), "timestamp": self.timestamp}


def run_metrics(result: Any) -> list[MetricDatum]:
    """The metrics of a monitoring result (a run, or its ``result`` document).

    Names follow Model Monitor's where it has one: ``feature_baseline_drift`` (the distance)
    and ``feature_drift_score`` (the chosen test's score), one per column with the column in a
    ``feature`` dimension (a column name may hold spaces, which a metric name may not),
    ``dataset_drift_share``, ``dataset_drift``, ``drifted_columns``, ``constraint_violations``,
    ``rows``, ``capture_faults`` and each model quality metric (``accuracy``, ``rmse`` ...).
    Dimensions: ``monitor`` and ``endpoint`` when the result has them.
    """
    doc = getattr(result, "result", result)
    if not isinstance(doc, dict):
        return []
    dims = {k: str(doc[k]) for k in ("monitor", "endpoint") if doc.get(k)}
    when = float(doc.get("window_end") or doc.get("created_at") or 0.0)
    out: list[MetricDatum] = []

    def add(name: str, value: Any, feature: str | None = None) -> None:
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, int | float) and math.isfinite(value):
            out.append(MetricDatum(name, float(value), dims if feature is None else {**dims, "feature": feature}, when))

    for col in doc.get("columns", []):
        if "distance" in col:
            add("feature_baseline_drift", col.get("distance"), str(col["name"]))
            add("feature_drift_score", col.get("score"), str(col["name"]))
    dd = doc.get("dataset_drift") or {}
    if dd:
        add("dataset_drift_share", dd.get("share"))
        add("dataset_drift", dd.get("drift"))
        add("drifted_columns", dd.get("drifted_columns"))
    add("constraint_violations", (doc.get("violations") or {}).get("count"))
    add("rows", (doc.get("current") or {}).get("rows"))
    faults = doc.get("faults") or {}
    add("capture_faults", sum(v for v in (faults.get("capture") or {}).values() if isinstance(v, int)))
    for name, value in ((doc.get("model_quality") or {}).get("metrics") or {}).items():
        add(name, value)
    return out
