"""The lake's declared operations (datasets, SQL history) agree on both transports."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk

pytestmark = pytest.mark.xdist_group("parity-lake")

EXAMPLES: dict[str, dict[str, Any]] = {
    "datasets.list": {},
    "datasets.get": {"ref": "sales@1"},
    "datasets.versions": {"name": "sales"},
    "datasets.verify": {"ref": "sales@2"},
    "sql.history": {"limit": 5},
    "datasets.delete": {"ref": "sales@1"},
}


def _seed(client: kiln.Client) -> None:
    for rows in (3, 5):
        client.datasets.ingest("sales", pd.DataFrame({"city": ["paris"] * rows, "amount": [1.5] * rows}))
    client.sql("SELECT count(*) FROM sales")


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


@pytest.mark.parametrize(("name", "args"), [
    ("datasets.get", {"ref": "ghost@1"}), ("datasets.get", {"ref": "sales@9"}), ("datasets.get", {"ref": "Bad Name"}),
    ("datasets.versions", {"name": "ghost"}), ("datasets.delete", {"ref": "sales@9"}), ("sql.history", {"limit": 0}),
])
def test_errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any]) -> None:
    errors_agree(clients, name, args)
