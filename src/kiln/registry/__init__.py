"""Registry: model packages with safe flavors, versions, approval and aliases."""

from kiln.core.gc_roots import register_gc_root
from kiln.registry._build import package_model, prepare_folder
from kiln.registry._flavors import (
    Flavor,
    FlavorCapabilities,
    LoadOptions,
    Predictor,
    known_flavors,
    register_flavor,
)
from kiln.registry._models import (
    APPROVAL_STATUSES,
    ColumnSpec,
    Lineage,
    Manifest,
    Model,
    ModelFile,
    ModelVersion,
    Signature,
)
from kiln.registry._service import ModelService, load_folder, referenced_prefixes

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

register_gc_root("models/", referenced_prefixes)
