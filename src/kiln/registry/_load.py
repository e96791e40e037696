"""Loading a verified package by its flavor: what a model worker needs, without the service."""

from __future__ import annotations

from pathlib import Path

from kiln.registry._flavors import LoadOptions, Predictor, get_flavor
from kiln.registry._models import Manifest
from kiln.registry._package import verify_folder

__all__ = ["load_folder"]


def load_folder(folder: Path, manifest: Manifest, options: LoadOptions) -> Predictor:
    """Verify a downloaded package against ``manifest`` and load it by its flavor."""
    verify_folder(folder, manifest, exact=False)
    return get_flavor(manifest.flavor).load(folder, manifest, options)
