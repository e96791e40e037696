"""The registry's declared operations agree on both transports."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk

pytestmark = pytest.mark.xdist_group("parity-registry")

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


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


@pytest.mark.parametrize("name", [n for n, a in EXAMPLES.items() if "name" in a or "ref" in a])
def test_errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str) -> None:
    args = {**EXAMPLES[name], **({"name": "ghost"} if "name" in EXAMPLES[name] else {"ref": "ghost@1"})}
    errors_agree(clients, name, args)
