"""Walk declared operations on both transports (see each stage's ``test_ops_parity.py``).

A stage's parity module defines ``EXAMPLES`` (one call per operation it declares,
in an order that works on its seeded workspaces) and a ``clients`` fixture built
with :func:`transports`; ``tests/faces/test_operations.py`` checks that the
examples of all stages cover every declared operation.
"""

from __future__ import annotations

import re
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

_RANDOM_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as Kiln makes ids


@contextmanager
def transports(tmp_path: Path, seed: Callable[[kiln.Client], None]) -> Iterator[tuple[kiln.Client, kiln.Client]]:
    """An in-process client and a client over HTTP (auth on, an admin token), each on a
    workspace of its own, seeded alike."""
    here = Workspace(load_settings(home=str(tmp_path / "local")))
    there = Workspace(load_settings(home=str(tmp_path / "remote")))
    token = TokenService(there, local_context()).create(name="parity", role="admin").token
    TokenService(here, local_context()).create(name="parity", role="admin")  # both hold the same tokens
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


_PER_WORKSPACE = {"actor", "source", "time", "seq", "hash", "prev_hash", "elapsed_ms", "lease"}


def clients_fixture(seed: Callable[[kiln.Client], None]) -> Any:
    """A stage module's ``clients`` fixture: :func:`transports` seeded with ``seed``."""

    @pytest.fixture
    def clients(tmp_path: Path) -> Iterator[tuple[kiln.Client, kiln.Client]]:
        with transports(tmp_path, seed) as pair:
            yield pair

    return clients


def same(value: Any) -> Any:
    """What both transports must agree on: everything but who, where and when (actors,
    sources and clocks differ: ``*_at``, ``*_time``), ids made at random (under an ``*id``
    key, or a uuid's hex as a value: a recipe output's lineage names its fit), and hashes
    (a skops file is a zip stamped with the time it was written; audit MACs chain those
    times). NaN equals no NaN: it is compared as the JSON string it travels as."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [same(v) for v in value]
    if isinstance(value, dict):
        return {k: same(v) for k, v in value.items() if k not in _PER_WORKSPACE and not k.endswith(("_at", "_by", "_time", "sha256", "id", "_ids", "token", "key", "keys"))}
    if isinstance(value, str) and _RANDOM_ID.fullmatch(value):
        return "<random id>"
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def resolve(client: kiln.Client, args: dict[str, Any]) -> dict[str, Any]:
    """An example's arguments for one client: a callable value (``lambda client: ...``)
    is asked of that client, for what each workspace made itself (a run id, a lease)."""
    return {k: v(client) if callable(v) else v for k, v in args.items()}


def walk(clients: tuple[kiln.Client, kiln.Client], examples: dict[str, dict[str, Any]]) -> None:
    """Call every example on both transports; the answers must agree."""
    local, remote = clients
    for name, args in examples.items():
        op = OPERATIONS[name]
        here, there = (client._t.call(op, **resolve(client, args)) for client in (local, remote))
        assert type(here) is type(there), name
        assert same(here) == same(there), name


def errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any], *, same_message: bool = True) -> None:
    """A call that fails fails alike on both transports: same class and, where the service
    itself refused it, the same message. (A value of the wrong JSON type is refused over
    HTTP by the route's request model, before the service: same class, pydantic's words.)"""
    outcomes = []
    for client in clients:
        with pytest.raises(KilnError) as info:
            client._t.call(OPERATIONS[name], **resolve(client, args))
        outcomes.append((type(info.value), info.value.message if same_message else ""))
    assert outcomes[0] == outcomes[1], name
