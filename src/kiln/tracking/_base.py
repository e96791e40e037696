"""Tracking's small shared rules: what a run id, a metric key or an artifact name may be."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from kiln.core.errors import InvalidArgument

__all__ = [
    "KilnModel",
    "MAX_BATCH",
    "MAX_VALUE_LEN",
    "check_artifact_name",
    "check_key",
    "check_run_id",
    "check_run_name",
    "metric_value",
]

MAX_BATCH = 100_000
MAX_VALUE_LEN = 8000



class KilnModel(BaseModel):
    """Base of every tracking and registry model: NaN-safe JSON.

    Kept here, apart from tracking's many models, so a model worker reading a package's
    manifest (:mod:`kiln.registry._models`) builds none of them."""

    model_config = ConfigDict(ser_json_inf_nan="strings", protected_namespaces=())


_RUN_ID = re.compile(r"[0-9a-f]{32}")
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/ :]{0,249}")
_ART_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")

# Keys already checked: the metric hot path validates each key once per process.
_GOOD_KEYS: set[str] = set()


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a run id (32 lower-case hex digits), else raise."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise InvalidArgument(
            f"invalid run id {str(run_id)[:80]!r}: a run id is 32 hex digits, as `kiln runs ls EXPERIMENT` shows"
        )
    return run_id


def check_run_name(name: str) -> str:
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid run name {str(name)[:80]!r}: use up to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_key(key: str, *, kind: str = "metric") -> str:
    """Validate a metric, param or tag key (letters, digits, ``_ . - / : space``)."""
    if key in _GOOD_KEYS:
        return key
    if (
        not isinstance(key, str)
        or not _KEY.fullmatch(key)
        or ".." in key
        or "//" in key
        or key.endswith(("/", " "))
    ):
        raise InvalidArgument(
            f"invalid {kind} name {str(key)[:80]!r}: use up to 250 letters, digits, '_', '.', '-', "
            "'/', ':' or spaces, starting with a letter, digit or '_'"
        )
    if len(_GOOD_KEYS) < 100_000:
        _GOOD_KEYS.add(key)
    return key


def check_artifact_name(name: str) -> str:
    """Validate an artifact name: a relative path of plain parts (``plots/roc.png``)."""
    parts = name.split("/") if isinstance(name, str) and len(name) <= 300 else []
    if not parts or not all(_ART_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise InvalidArgument(
            f"invalid artifact name {str(name)[:80]!r}: use a relative path of parts made of letters, "
            "digits, '_', '.' and '-' (e.g. plots/roc.png); '..' and absolute paths are refused"
        )
    return name


def metric_value(value: Any, key: str) -> float:
    """A metric value as a float; NaN and infinities are kept as they are."""
    if isinstance(value, float):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise InvalidArgument(f"metric {key!r} must be a number, not {type(value).__name__}: {str(value)[:40]!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"metric {key!r} must be a number, not {type(value).__name__}") from None


def param_value(value: Any) -> str:
    """Params are stored as text: numbers by ``str``, strings as they are."""
    text = value if isinstance(value, str) else ("NaN" if isinstance(value, float) and math.isnan(value) else str(value))
    if len(text) > MAX_VALUE_LEN:
        raise InvalidArgument(f"param value is longer than {MAX_VALUE_LEN} characters; log it as an artifact")
    return text
