"""Registry: model packages with safe flavors, versions, approval and aliases."""

from typing import Any

from kiln.core.gc_roots import register_gc_root

# Names load on first use: a model worker that only loads a package (kiln.registry._flavors,
# kiln.registry._package) does not import the service, SQLAlchemy and the workspace with the
# package.
_LAZY = {
    "package_model": "_build", "prepare_folder": "_build",
    "Flavor": "_flavors", "FlavorCapabilities": "_flavors", "LoadOptions": "_flavors", "Predictor": "_flavors",
    "known_flavors": "_flavors", "register_flavor": "_flavors",
    "APPROVAL_STATUSES": "_models", "ColumnSpec": "_models", "Lineage": "_models", "Manifest": "_models", "Model": "_models",
    "ModelFile": "_models", "ModelVersion": "_models", "Signature": "_models",
    "load_folder": "_load", "ModelService": "_service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.registry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"kiln.registry.{module}"), name)


def _referenced_prefixes(conn: Any) -> set[str]:
    from kiln.registry._service import referenced_prefixes

    return referenced_prefixes(conn)


__all__ = [
    "APPROVAL_STATUSES",
    "ColumnSpec",
    "Flavor",
    "FlavorCapabilities",
    "Lineage",
    "LoadOptions",
    "Manifest",
    "Model",
    "ModelFile",
    "ModelService",
    "ModelVersion",
    "Predictor",
    "Signature",
    "known_flavors",
    "load_folder",
    "package_model",
    "prepare_folder",
    "register_flavor",
]

register_gc_root("models/", _referenced_prefixes)
