"""Names and references: the only strings that ever become paths."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kiln.core.errors import InvalidArgument

__all__ = ["NAME_RE", "Ref", "check_name", "parse_ref"]

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # DESIGN.md §4
_ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def _short(text: str, limit: int = 80) -> str:
    """User input as an error message shows it: never thousands of characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def check_name(name: str, *, kind: str = "resource") -> str:
    """Return ``name`` if it is a valid resource name, else raise InvalidArgument."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid {kind} name {_short(name) if isinstance(name, str) else name!r}: use 1-63 lower-case letters, digits, '_' and '-', "
            "starting with a letter or digit",
            details={"name": str(name)[:200]},
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias) or alias == "latest":
        raise InvalidArgument(
            f"invalid alias {alias!r}: use lower-case letters, digits, '-' or '_', "
            "starting with a letter (and not 'latest')"
        )
    return alias


@dataclass(frozen=True)
class Ref:
    """``name`` (latest), ``name@3`` (a version) or ``name@alias``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


_MAX_VERSION = 2**63 - 1


def parse_ref(ref: str, *, kind: str = "resource") -> Ref:
    """Parse ``name``, ``name@N``, ``name@latest`` or ``name@alias``."""
    if not isinstance(ref, str):
        raise InvalidArgument(f"invalid {kind} reference {_short(repr(ref))}")
    name, sep, tail = ref.partition("@")
    check_name(name, kind=kind)
    if not sep or tail == "latest":
        return Ref(name)
    if tail.isdigit() and tail.isascii():
        if len(tail.lstrip("0")) > len(str(_MAX_VERSION)):  # before int(): Python refuses 4,300+ digits
            raise InvalidArgument(f"invalid version in {_short(ref)!r}: versions are at most {_MAX_VERSION}")
        version = int(tail)
        if version < 1:
            raise InvalidArgument(f"invalid version in {ref!r}: versions start at 1")
        if version > _MAX_VERSION:  # the metadata database stores 64-bit integers
            raise InvalidArgument(f"invalid version in {ref!r}: versions are at most {_MAX_VERSION}")
        return Ref(name, version=version)
    if _ALIAS_RE.fullmatch(tail):
        return Ref(name, alias=tail)
    raise InvalidArgument(
        f"invalid {kind} reference {_short(ref)!r}: use NAME, NAME@VERSION or NAME@ALIAS"
    )
