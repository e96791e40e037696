"""Monitoring (Model Monitor): baselines and constraints, drift and data quality checks of
endpoints' captured data, model quality against ground truth, scheduled monitors, and each
run's metrics (:func:`run_metrics`) for a metrics store.

The statistics come from :mod:`kiln.prep.stats`, the one statistics engine; the drift tests
(``_drift``) are pure functions over Arrow / numpy.
"""

from typing import Any

from kiln.core.gc_roots import register_gc_root

_LAZY = {
    "MonitoringService": "_service", "MetricDatum": "_metrics", "run_metrics": "_metrics",
    "compare": "_compare", "baseline_files": "_compare", "Comparison": "_compare",
    "DriftOptions": "_drift", "column_drift": "_drift", "table_drift": "_drift", "sample_of": "_drift",
    "suggest_constraints": "_constraints", "read_capture": "_capture",
    "BaselineFiles": "_models", "CompareResult": "_models", "GroundTruthUpload": "_models", "Monitor": "_models",
    "MonitorRun": "_models", "RunReport": "_models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.monitoring' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.monitoring.{module}"), name)


def _referenced_keys(conn: Any) -> set[str]:
    from kiln.monitoring._service import referenced_keys

    return referenced_keys(conn)


__all__ = sorted(_LAZY)

register_gc_root("monitoring/", _referenced_keys)
