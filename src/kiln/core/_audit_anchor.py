"""The audit trail's key and its anchor: the two things kept outside the metadata database.

The key MACs every event (see :mod:`kiln.core.audit`); it comes from the
``audit_key`` setting (``KILN_AUDIT_KEY``) or from ``KILN_HOME/audit.key``, a file
only its owner may read, made when the workspace is first opened. Processes on
several machines sharing one database must share the key: set ``KILN_AUDIT_KEY``
(or copy the file) on each.

The anchor is one small object in the workspace's object store
(``audit/anchor.json``) holding the latest anchored sequence number and that
event's MAC, itself MACed with the key. An attacker who can rewrite the database
cannot move it, so deleting the tail or rolling the tables back shows. Writers
read it first and only move it forward; the store offers no compare-and-swap, so
two writers racing may briefly leave it a little behind, never ahead or wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kiln.core.config import Settings
from kiln.core.errors import InvalidArgument, KilnError, NotFound, PermissionDenied, Unavailable
from kiln.core.storage import ObjectStore

__all__ = ["ANCHOR_KEY", "KEY_FILE", "Anchor", "AnchorRead", "load_key", "read_anchor", "write_anchor"]

KEY_FILE = "audit.key"
ANCHOR_KEY = "audit/anchor.json"
MIN_KEY_CHARS = 16
_HOW_TO_MAKE = "python -c 'import secrets; print(secrets.token_hex(32))'"


# -- the key ------------------------------------------------------------------------------


def load_key(settings: Settings, *, create: bool) -> bytes:
    """The MAC key: the ``audit_key`` setting, else the key file in ``KILN_HOME``.

    Args:
        settings: resolved settings (``home`` is where the key file lives).
        create: make the key file (mode 0600) when it is missing; only right for a
            trail that no key has MACed yet.

    Returns:
        The key bytes.

    Raises:
        InvalidArgument: ``audit_key`` is too short, or the key file is not a key.
        PermissionDenied: the key file is readable by group or others, or unreadable.
        NotFound: the key file is missing and ``create`` is false.
    """
    if settings.audit_key:
        if len(settings.audit_key) < MIN_KEY_CHARS:
            raise InvalidArgument(
                f"KILN_AUDIT_KEY is shorter than {MIN_KEY_CHARS} characters; use a long random "
                f"secret, e.g. {_HOW_TO_MAKE}"
            )
        return settings.audit_key.encode()
    path = settings.home / KEY_FILE
    if not path.exists():
        if not create:
            raise NotFound(
                f"the audit key file {path} is missing, but this workspace's audit trail was "
                "MACed with a key: restore the file from a backup (mode 0600), or set "
                "KILN_AUDIT_KEY to the key it was made with"
            )
        _create_key_file(path)
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    # Written under a temporary name, then linked: two processes starting at once
    # agree on one key, and nobody reads a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first; use theirs
    finally:
        tmp.unlink(missing_ok=True)


def _read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionDenied(
                f"the audit key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"anyone who reads it can forge the audit trail: run `chmod 600 {path}` "
                "(and rotate the key if others may have read it)"
            )
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise PermissionDenied(
            f"cannot read the audit key file {path}: {exc.strerror or exc}; run Kiln as the "
            "user who owns it, or set KILN_AUDIT_KEY"
        ) from None
    except UnicodeDecodeError:
        text = ""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < MIN_KEY_CHARS:
        raise InvalidArgument(
            f"the audit key file {path} does not hold a key (expected 64 hex digits): restore it "
            "from a backup, or set KILN_AUDIT_KEY to the key the trail was made with"
        )
    return key


# -- the anchor ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The newest event anchored outside the database: its ``seq`` and ``mac``."""

    seq: int
    mac: str
    time: float


@dataclass(frozen=True)
class AnchorRead:
    """What reading the anchor found: an ``anchor``, nothing, or ``damage`` (why not)."""

    anchor: Anchor | None
    damage: str = ""


def _anchor_mac(key: bytes, seq: int, mac: str, when: float) -> str:
    body = orjson.dumps(["kiln.audit.anchor/v1", seq, mac, repr(float(when))])
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def read_anchor(store: ObjectStore, key: bytes) -> AnchorRead:
    """Read and check the anchor object; never raises for a missing or damaged one.

    Raises:
        Unavailable: the object store does not answer.
    """
    try:
        raw = store.read_bytes(ANCHOR_KEY)
    except NotFound:
        return AnchorRead(None)
    except KilnError:
        raise
    except Exception as exc:  # noqa: BLE001 - any transport failure
        raise Unavailable(f"cannot read the audit anchor from {store.url}: {exc}") from None
    return _parse_anchor(raw, key, store.path(ANCHOR_KEY))


def _parse_anchor(raw: bytes, key: bytes, where: str) -> AnchorRead:
    try:
        data: Any = orjson.loads(raw)
        anchor = Anchor(seq=int(data["seq"]), mac=str(data["mac"]), time=float(data["time"]))
        given = str(data["anchor_mac"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return AnchorRead(None, f"the audit anchor {where} is damaged: it is not a Kiln anchor object")
    if anchor.seq < 1 or not hmac.compare_digest(given, _anchor_mac(key, anchor.seq, anchor.mac, anchor.time)):
        return AnchorRead(
            None,
            f"the audit anchor {where} does not carry a valid MAC: it was altered or forged, "
            "or this workspace's audit key is not the one the trail was made with",
        )
    return AnchorRead(anchor)


def write_anchor(store: ObjectStore, key: bytes, anchor: Anchor) -> None:
    """Write ``anchor`` (one atomic object PUT); the caller checks it moves forward."""
    body = {
        "seq": anchor.seq,
        "mac": anchor.mac,
        "time": anchor.time,
        "anchor_mac": _anchor_mac(key, anchor.seq, anchor.mac, anchor.time),
    }
    store.put_bytes(ANCHOR_KEY, orjson.dumps(body, option=orjson.OPT_INDENT_2))
