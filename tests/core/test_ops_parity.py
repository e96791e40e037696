"""The system operations (tokens, audit, gc) agree on both transports."""

from __future__ import annotations

from typing import Any

import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk

pytestmark = pytest.mark.xdist_group("parity-core")

EXAMPLES: dict[str, dict[str, Any]] = {
    "tokens.create": {"name": "ci-bot", "role": "editor"},
    "tokens.list": {},
    "tokens.revoke": {"name": "ci-bot"},
    "audit.list": {"action": "tokens.revoke", "limit": 5},
    "audit.verify": {},
    "system.gc": {"grace_s": 0, "dry_run": True},
}


clients = clients_fixture(lambda client: None)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


@pytest.mark.parametrize(("name", "args"), [
    ("tokens.revoke", {"name": "ghost"}),
    ("tokens.create", {"name": "Bad Name"}),
    ("tokens.create", {"name": "bot", "role": "root"}),
    ("audit.list", {"limit": 0}),
    ("system.gc", {"grace_s": -1}),
])
def test_errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any]) -> None:
    errors_agree(clients, name, args)
