"""The feature store's declared operations agree on both transports."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import kiln
from tests.faces.parity import clients_fixture, errors_agree, walk

pytestmark = pytest.mark.xdist_group("parity-features")

FRESH = [{"name": "id", "type": "string"}, {"name": "ts", "type": "fractional"}, {"name": "v", "type": "vector"}]

EXAMPLES: dict[str, dict[str, Any]] = {
    "features.create": {"name": "fresh", "record_id": "id", "event_time": "ts", "features": FRESH, "tags": {"team": "a"}, "description": "new"},
    "features.list": {},
    "features.describe": {"ref": "stats@1"},
    "features.update": {"name": "fresh", "features": [*FRESH, {"name": "w", "type": "boolean"}], "ttl": "3650d"},
    "features.put_records": {"name": "fresh", "records": [
        {"id": "a", "ts": 1700000000.5, "v": [1, 2.5], "w": True},
        [{"FeatureName": "id", "ValueAsString": "b"}, {"FeatureName": "ts", "ValueAsString": "2024-01-01T00:00:00Z"}, {"FeatureName": "w", "ValueAsString": "false"}],
    ]},
    "features.get_record": {"name": "stats", "record_id": "1", "features": ["rate"]},
    "features.batch_get": {"identifiers": [{"feature_group": "stats", "record_ids": [1, 2, 99]}, {"feature_group": "fresh", "record_ids": ["b"], "features": ["w"]}]},
    "features.delete_records": {"name": "fresh", "records": [{"record_id": "a", "event_time": 1700000001}], "mode": "hard"},
    "features.ingest": {"name": "stats", "dataset": "drivers@1"},
    "features.ingest_stream": {"name": "stats", "stream": "rides", "max_records": 10},
    "features.compact": {"name": "stats"},
    "features.rebuild_online": {"name": "stats"},
    "features.to_dataset": {"name": "stats", "output_dataset": "latest", "n_recent": 1},
    "features.training_set": {"entities": "ents@1", "features": ["stats:rate", "stats:city"], "output_dataset": "train", "event_time_column": "event_time"},
    "features.delete": {"name": "fresh"},
}


def _seed(client: kiln.Client) -> None:
    client.datasets.ingest("drivers", pd.DataFrame({
        "driver": [1, 2, 1], "ts": pd.to_datetime(["2024-01-01T00:00Z", "2024-01-01T06:00Z", "2024-01-03T00:00Z"]),
        "rate": [0.1, 0.2, 0.3], "city": ["a", "b", "c"],
    }))
    client.datasets.ingest("ents", pd.DataFrame({"driver": [1, 2, 3], "event_time": ["2024-01-02T00:00:00Z", "2024-01-05T00:00:00Z", "2024-01-05T00:00:00Z"]}))
    client.features.create("stats", record_id="driver", event_time="ts", dataset="drivers@1")
    client.streams.create("rides")
    client.streams.put("rides", [{"driver": 7, "ts": "2024-01-04T00:00:00Z", "rate": 0.7}, {"driver": "x", "ts": 1}])


clients = clients_fixture(_seed)


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


FAILURES: dict[str, dict[str, Any]] = {
    "features.describe": {"ref": "ghost"},
    "features.describe/bad": {"ref": "Bad Name"},
    "features.create": {"name": "stats", "record_id": "id", "event_time": "ts", "features": FRESH},
    "features.create/no id": {"name": "other", "record_id": "nope", "event_time": "ts", "features": FRESH},
    "features.put_records": {"name": "stats", "records": [{"driver": 1, "ts": 1.0}, {"driver": 2, "ts": "yesterday"}]},
    "features.put_records/type": {"name": "stats", "records": [{"driver": 1, "ts": 1.0, "rate": "fast"}]},
    "features.put_records/ghost": {"name": "ghost", "records": [{"driver": 1}]},
    "features.get_record": {"name": "stats", "record_id": "404"},
    "features.get_record/ghost": {"name": "ghost", "record_id": "1"},
    "features.to_dataset": {"name": "stats", "output_dataset": "latest", "n_recent": 0},
    "features.training_set": {"entities": "ents@1", "features": ["stats:nope"], "output_dataset": "train"},
    "features.training_set/bad ref": {"entities": "ents@1", "features": ["../x:rate"], "output_dataset": "train"},
    "features.delete_records": {"name": "stats", "records": [{"record_id": 1, "event_time": 1}], "mode": "purge"},
    "features.ingest": {"name": "stats", "dataset": "ents@1"},
    "features.ingest_stream": {"name": "stats", "stream": "ghost"},
}


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    for case, args in FAILURES.items():
        errors_agree(clients, case.split("/", 1)[0], args)
