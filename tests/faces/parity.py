"""Walk declared operations on both transports (see each stage's ``test_ops_parity.py``).

A stage's parity module defines ``EXAMPLES`` (one call per operation it declares,
in an order that works on its seeded workspaces) and a ``clients`` fixture built
with :func:`transports`; ``tests/faces/test_operations.py`` checks that the
examples of all stages cover every declared operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import kiln
from kiln.core.auth import TokenService
from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.errors import KilnError
from kiln.core.ops import OPERATIONS
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

from .conftest import SyncASGI


@contextmanager
def transports(tmp_path: Path, seed: Callable[[kiln.Client], None]) -> Iterator[tuple[kiln.Client, kiln.Client]]:
    """An in-process client and a client over HTTP (auth on, an admin token), each on a
    workspace of its own, seeded alike."""
    here = Workspace(load_settings(home=str(tmp_path / "local")))
    there = Workspace(load_settings(home=str(tmp_path / "remote")))
    token = TokenService(there, local_context()).create(name="parity", role="admin").token
    local = kiln.Client(settings=here.settings)
    remote = kiln.Client("http://127.0.0.1:8300", token=token, http_transport=SyncASGI(create_app(there, auth=True)))
    try:
        for c in (local, remote):
            seed(c)
        yield local, remote
    finally:
        for c in (local, remote):
            c.close()
        here.close()
        there.close()


def same(value: Any) -> Any:
    """What both transports must agree on: everything but who and when (actors and clocks
    differ: ``*_at``, ``*_time``), ids made at random, and files' hashes (a skops file is a zip, stamped with
    the time it was written)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [same(v) for v in value]
    if isinstance(value, dict):
        return {k: same(v) for k, v in value.items() if not k.endswith(("_at", "_by", "_time", "sha256", "id", "_ids", "token", "key", "keys"))}
    if isinstance(value, float) and value != value:
        return "NaN"  # NaN equals no NaN: compare it as the JSON string it travels as
    return value


def resolve(client: kiln.Client, args: dict[str, Any]) -> dict[str, Any]:
    """An example's arguments for one client: a callable value (``lambda client: ...``)
    is called with it, for what differs between workspaces (a run's random id)."""
    return {k: v(client) if callable(v) else v for k, v in args.items()}


def walk(clients: tuple[kiln.Client, kiln.Client], examples: dict[str, dict[str, Any]]) -> None:
    """Call every example on both transports; the answers must agree."""
    local, remote = clients
    for name, args in examples.items():
        op = OPERATIONS[name]
        here, there = local._t.call(op, **resolve(local, args)), remote._t.call(op, **resolve(remote, args))
        assert type(here) is type(there), name
        assert same(here) == same(there), name


def errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any]) -> None:
    """A call that fails fails alike on both transports: same class, same message."""
    outcomes = []
    for client in clients:
        with pytest.raises(KilnError) as info:
            client._t.call(OPERATIONS[name], **resolve(client, args))
        outcomes.append((type(info.value), info.value.message))
    assert outcomes[0] == outcomes[1], name
