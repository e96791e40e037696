"""Every declared operation, walked on both transports: in-process and over HTTP give the
same answer, and each is mounted with the method, path and role it declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import kiln
import kiln.registry._ops  # noqa: F401 - declares the registry's operations
from kiln.core.auth import TokenService
from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.errors import KilnError
from kiln.core.ops import OPERATIONS
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

from .conftest import SyncASGI

pytestmark = pytest.mark.xdist_group("operations")

# One call per declared operation, in an order that works on a freshly seeded workspace.
# A new operation without an example here fails test_every_operation_has_an_example.
EXAMPLES: dict[str, dict[str, Any]] = {
    "models.list": {},
    "models.get": {"name": "iris"},
    "models.versions": {"name": "iris"},
    "models.get_version": {"ref": "iris@1"},
    "models.describe": {"ref": "iris", "description": "the iris model"},
    "models.describe_version": {"ref": "iris@1", "description": "first"},
    "models.set_alias": {"name": "iris", "alias": "prod", "version": 1},
    "models.delete_alias": {"name": "iris", "alias": "prod"},
    "models.status": {"ref": "iris@2", "status": "PendingManualApproval", "comment": "look again"},
    "models.approve": {"ref": "iris@1", "comment": "good"},
    "models.reject": {"ref": "iris@2"},
    "models.trust": {"ref": "iris@1", "trusted": True, "comment": "reviewed"},
}


def _seed(client: kiln.Client) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    for c in (0.5, 1.0):
        client.models.register("iris", model=LogisticRegression(C=c, max_iter=300).fit(X, y), sample_input=X[:3])


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[kiln.Client, kiln.Client]]:
    here = Workspace(load_settings(home=str(tmp_path / "local")))
    there = Workspace(load_settings(home=str(tmp_path / "remote")))
    token = TokenService(there, local_context()).create(name="parity", role="admin").token
    local = kiln.Client(settings=here.settings)
    remote = kiln.Client("http://127.0.0.1:8300", token=token, http_transport=SyncASGI(create_app(there, auth=True)))
    for c in (local, remote):
        _seed(c)
    yield local, remote
    for c in (local, remote):
        c.close()
    here.close()
    there.close()


def _same(value: Any) -> Any:
    """What both transports must agree on: everything but who and when (actors and clocks
    differ) and files' hashes (a skops file is a zip, stamped with the time it was written)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return [_same(v) for v in value]
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items() if not k.endswith(("_at", "_by", "sha256"))}
    return value


def test_every_operation_has_an_example() -> None:
    assert set(EXAMPLES) == set(OPERATIONS)


def test_every_operation_is_mounted_as_declared(tmp_path: Path) -> None:
    ws = Workspace(load_settings(home=str(tmp_path / "k")))
    spec = create_app(ws).openapi()
    for op in OPERATIONS.values():
        entry = spec["paths"][op.path][op.method.lower()]
        assert (entry["operationId"], entry["x-kiln-role"]) == (op.name, op.role)
    ws.close()


def test_both_transports_agree_on_every_operation(clients: tuple[kiln.Client, kiln.Client]) -> None:
    local, remote = clients
    for name, args in EXAMPLES.items():
        op = OPERATIONS[name]
        here, there = local._t.call(op, **args), remote._t.call(op, **args)
        assert type(here) is type(there), name
        assert _same(here) == _same(there), name
    assert _same(local.models.versions("iris")) == _same(remote.models.versions("iris"))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_errors_agree_too(clients: tuple[kiln.Client, kiln.Client], name: str) -> None:
    """A reference to nothing fails alike on both transports, with the same class and message."""
    op = OPERATIONS[name]
    args = dict(EXAMPLES[name])
    for key in ("name", "ref"):
        if key in args:
            args[key] = "ghost" if key == "name" else "ghost@1"
    if args == EXAMPLES[name]:
        pytest.skip(f"{name} names no resource")
    outcomes = []
    for client in clients:
        with pytest.raises(KilnError) as info:
            client._t.call(op, **args)
        outcomes.append((type(info.value), info.value.message))
    assert outcomes[0] == outcomes[1]
