"""The streams' declared operations agree on both transports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kiln
from tests.faces.parity import errors_agree, transports, walk
from tests.streams.test_nats import NATS_URL, subject  # noqa: F401 - the fixture

pytestmark = pytest.mark.xdist_group("parity-streams")

RECORDS = [{"user": f"u{i}", "ms": i} for i in range(5)]

EXAMPLES: dict[str, dict[str, Any]] = {
    "streams.create": {"name": "views", "columns": {"page": "string"}, "flush_rows": 100},
    "streams.list": {},
    "streams.get": {"name": "clicks"},
    "streams.update": {"name": "clicks", "retention_s": 0, "retention_bytes": 1 << 20, "flush_interval_s": 5},
    "streams.follow": {"name": "events"},
    "streams.unfollow": {"name": "events"},
    "streams.put": {"name": "clicks", "records": [{"user": "z", "ms": 9}]},
    "streams.read": {"name": "clicks", "limit": 3, "position": "TRIM_HORIZON"},
    "streams.create_consumer": {"name": "clicks", "consumer": "late", "position": "LATEST"},
    "streams.consumers": {"name": "clicks"},
    "streams.get_consumer": {"name": "clicks", "consumer": "late"},
    "streams.read_consumer": {"name": "clicks", "consumer": "etl", "limit": 2, "lease_s": 30},
    "streams.commit": {"name": "clicks", "consumer": "etl", "lease": lambda c: c.streams.read("clicks", consumer="etl", limit=2).lease},
    "streams.delete_consumer": {"name": "clicks", "consumer": "late"},
    "streams.flush": {"name": "clicks"},
    "streams.pull": {"name": "events", "max_messages": 10, "timeout_s": 0.2},
    "streams.trim": {"name": "clicks"},
    "streams.delete": {"name": "views"},
}


@pytest.fixture
def clients(tmp_path: Path, subject: str) -> Iterator[tuple[kiln.Client, kiln.Client]]:  # noqa: F811
    def seed(client: kiln.Client) -> None:
        client.streams.create("clicks", columns={"user": "string", "ms": "int64"})
        client.streams.put("clicks", RECORDS)
        client.streams.create("events", source=f"{NATS_URL}/{subject}", columns={"user": "string"})

    with transports(tmp_path, seed) as pair:
        yield pair


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


@pytest.mark.parametrize(("name", "args"), [
    ("streams.get", {"name": "ghost"}), ("streams.read", {"name": "clicks", "limit": 0}),
    ("streams.read_consumer", {"name": "clicks", "consumer": "etl", "lease_s": 0}),
    ("streams.commit", {"name": "clicks", "consumer": "etl", "lease": "not-a-lease"}),
    ("streams.create", {"name": "Bad Name"}),
    ("streams.follow", {"name": "clicks"}), ("streams.update", {"name": "clicks", "retention_s": -1}),
    ("streams.trim", {"name": "ghost"}),
])
def test_errors_agree(clients: tuple[kiln.Client, kiln.Client], name: str, args: dict[str, Any]) -> None:
    errors_agree(clients, name, args)


def test_a_value_of_the_wrong_type_is_the_same_error_class(clients: tuple[kiln.Client, kiln.Client]) -> None:
    errors_agree(clients, "streams.put", {"name": "clicks", "records": ["not an object"]}, same_message=False)
