"""Modules imported on first use.

pyarrow (with numpy and pandas behind it) and duckdb take about half a second to
import, more than a command that only reads the metadata database (`kiln datasets
ls`) needs in all. Modules that use them in their functions bind them with
:func:`lazy`, and under ``TYPE_CHECKING`` import them as usual for the type checker.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__all__ = ["lazy"]


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)  # later reads are plain attribute reads
        return getattr(module, attr)


def lazy(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on its first attribute read."""
    return _LazyModule(name)
