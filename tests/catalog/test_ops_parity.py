"""The offline catalog's declared operations agree on both transports."""

from __future__ import annotations

from typing import Any

import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk

pytestmark = pytest.mark.xdist_group("parity-catalog")

EXAMPLES: dict[str, dict[str, Any]] = {
    "catalog.list": {"available": True},
    "catalog.get": {"entry_id": "sklearn-iris"},
    "catalog.import": {"entry_id": "sklearn-linnerud", "name": "gym"},
}


def _seed(client: kiln.Client) -> None:
    client.catalog.import_("sklearn-iris")  # 150 rows, shipped with scikit-learn


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)
    local, remote = clients
    assert [d.name for d in local.datasets.list()] == [d.name for d in remote.datasets.list()] == ["gym", "iris"]


@pytest.mark.parametrize(("name", "args"), [
    ("catalog.get", {"entry_id": "sklearn-ghost"}),
    ("catalog.import", {"entry_id": "sklearn-ghost"}),
    ("catalog.import", {"entry_id": "sklearn-iris", "name": "Bad Name"}),
])
def test_errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any]) -> None:
    errors_agree(clients, name, args)
