"""The prep stage's declared operations (profiles and recipes) agree on both transports."""

from __future__ import annotations

from typing import Any

import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk
from tests.prep.test_recipes_service import CLEAN, PLAIN, people

pytestmark = pytest.mark.xdist_group("parity-prep")

YAML = """description: people, tidied
steps:
  - op: drop_missing
    params: {columns: [age]}
  - op: one_hot
    params: {columns: [city]}
"""

EXAMPLES: dict[str, dict[str, Any]] = {
    "recipes.create": {"name": "plain", **PLAIN, "format": 1},  # the REST document's shape: steps, format
    "recipes.list": {},
    "recipes.get": {"ref": "clean@1"},
    "recipes.versions": {"name": "clean"},
    "recipes.preview": {"ref": "clean", "dataset": "people", "n": 5, "sample_rows": 100},
    "recipes.apply": {"ref": "clean@1", "dataset": "people@1", "output_dataset": "people-clean", "description": "for training"},
    "recipes.fitted": {"ref": "clean", "dataset": "people"},
    "recipes.fits": {"ref": "clean"},
    "profiles.create": {"ref": "people-clean"},
    "profiles.get": {"ref": "people-clean@1"},
    "profiles.list": {"name": "people-clean"},
}


def _seed(client: kiln.Client) -> None:
    client.datasets.ingest("people", people(300))
    client.recipes.create("clean", CLEAN)
    client.recipes.create("tidy", YAML)  # YAML text travels as it is and is parsed by the service


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)
    local, remote = clients
    assert local.recipes.fitted("clean", "people").to_dict() == remote.recipes.fitted("clean", "people").to_dict()
    assert local.datasets.read("people-clean").equals(remote.datasets.read("people-clean"))


ERRORS: list[tuple[str, dict[str, Any]]] = [
    *((n, {**a, **({"name": "ghost"} if "name" in a else {"ref": "ghost"})}) for n, a in EXAMPLES.items() if ("name" in a or "ref" in a) and n != "recipes.create"),
    ("recipes.get", {"ref": "clean@7"}),
    ("recipes.get", {"ref": "clean@champion"}),
    ("recipes.create", {"name": "bad", "steps": [{"op": "explode"}]}),
    ("recipes.create", {"name": "bad", "recipe": "steps: [{op: one_hot, params: {columns: city, max_categories: 1.5}}]"}),
    ("recipes.create", {"name": "bad"}),
    ("recipes.create", {"name": "bad", "steps": [], "description": "x" * 10_001}),
    ("recipes.create", {"name": "Bad_Name", **PLAIN}),
    ("recipes.preview", {"ref": "clean", "dataset": "people", "n": 5000}),
    ("recipes.preview", {"ref": "clean", "dataset": "people", "sample_rows": 0}),
    ("recipes.preview", {"ref": "clean", "dataset": "p" * 201}),
    ("recipes.apply", {"ref": "clean", "dataset": "people", "output_dataset": "Out"}),
    ("recipes.apply", {"ref": "clean", "dataset": "ghost", "output_dataset": "out"}),
    ("recipes.fitted", {"ref": "clean", "dataset": "ghost"}),
    ("profiles.create", {"ref": "people", "target": "nope"}),
    ("profiles.create", {"ref": "../people"}),
    ("profiles.get", {"ref": "people"}),
    ("profiles.list", {"name": "a/b"}),
]


@pytest.mark.parametrize(("name", "args"), ERRORS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ERRORS)])
def test_errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any]) -> None:
    errors_agree(clients, name, args)
    local, remote = clients
    assert [r.name for r in local.recipes.list()] == [r.name for r in remote.recipes.list()] == ["clean", "tidy"]
