"""The workspace's online store: opened once, whether the server may read it on its event
loop, and the purge of expired rows that writes run now and then."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

from kiln.core.workspace import Workspace
from kiln.features._base import OnlineStore, open_online_store

__all__ = ["online_store", "purge_now_and_then", "reads_inline"]

_STORES: weakref.WeakKeyDictionary[Workspace, OnlineStore] = weakref.WeakKeyDictionary()
_PURGED: weakref.WeakKeyDictionary[OnlineStore, float] = weakref.WeakKeyDictionary()
PURGE_EVERY_S = 60.0
PURGE_BATCH = 10_000
log = logging.getLogger("kiln.features")


def online_store(ws: Workspace) -> OnlineStore:
    """The workspace's online store, opened once (``KILN_ONLINE_STORE_URL``; default a SQLite
    file in KILN_HOME)."""
    store = _STORES.get(ws)
    if store is None:
        url = getattr(ws.settings, "online_store_url", "") or f"sqlite:///{ws.settings.home / 'online.db'}"
        store = open_online_store(url)
        _STORES[ws] = store
        ws.on_close(store.close)
    return store


def purge_now_and_then(store: OnlineStore, now: float) -> int:
    """Purge expired online rows after a write, at most once a minute per store and a bounded
    batch each time, so a store without native expiry (SQLite, PostgreSQL) does not keep every
    expired record forever. A purge that fails leaves the write it follows done."""
    if store.capabilities.native_expiry or _PURGED.get(store, 0.0) > now - PURGE_EVERY_S:
        return 0
    _PURGED[store] = now
    try:
        return store.purge_expired(now=now, limit=PURGE_BATCH)
    except Exception as exc:  # the write succeeded; the next purge tries again
        log.warning("purging expired online records failed: %s", exc)
        return 0


def reads_inline(ws: Workspace, args: Mapping[str, Any] | None = None) -> bool:
    """Online reads may run on the server's event loop: the store is a local SQLite file (a
    primary-key lookup, tens of microseconds), and so is the metadata (the group definitions,
    read once a second). A network store (Redis, PostgreSQL) may stall, so its reads keep the
    thread pool; so does a read of a group whose definition is not cached yet, or that has a
    feature a function computes (a call to a function worker)."""
    if ws.db.dialect != "sqlite" or online_store(ws).capabilities.shared:
        return False
    if args is None:
        return True
    from kiln.features._service import cached_definition

    names = [args.get("name")] if "name" in args else [i.get("feature_group") if isinstance(i, dict) else None for i in args.get("identifiers") or []]
    for name in names:
        g = cached_definition(ws, name) if isinstance(name, str) else None
        if g is None or g.functions:
            return False
    return True
