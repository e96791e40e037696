"""Feature store: feature groups, an offline store (append-only Parquet partitioned by event
date), online stores (SQLite, Redis, PostgreSQL), point-in-time training sets."""

from typing import Any

from kiln.core.gc_roots import register_gc_root

_LAZY = {
    "FeatureService": "_service", "TrainingSetService": "_training", "OnlineStore": "_base", "OnlineRow": "_base",
    "Capabilities": "_base", "open_online_store": "_base", "register_online_store": "_base",
    "BatchGetResult": "_models", "CompactResult": "_models", "FeatureDefinition": "_models", "FeatureGroup": "_models",
    "FeatureRecord": "_models", "IngestResult": "_models", "RecordIdentifier": "_models", "WriteResult": "_models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.features' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.features.{module}"), name)


def _referenced_keys(conn: Any) -> set[str]:
    from kiln.features._service import referenced_keys

    return referenced_keys(conn)


__all__ = sorted(_LAZY)

register_gc_root("features/", _referenced_keys)
