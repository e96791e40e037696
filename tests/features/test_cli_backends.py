"""The CLI face (one-line errors, exit codes, JSON) and the service on the Redis and
PostgreSQL online stores."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.errors import NotFound
from kiln.core.workspace import Workspace
from kiln.features._service import FeatureService, reads_inline

REDIS_URL = os.environ.get("KILN_TEST_REDIS", "redis://127.0.0.1:6379/0")


def test_cli_create_put_get_and_train(cli: Any, tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    pd.DataFrame({"driver": [1, 2], "ts": [1.7e9, 1.7e9 + 60], "rate": [0.5, 1.5]}).to_parquet(data)
    assert cli("datasets", "ingest", "drivers", str(data)).code == 0
    assert cli("features", "create", "stats", "--dataset", "drivers@1", "--record-id", "driver", "--event-time", "ts").code == 0
    got = cli("features", "get", "stats", "2", "--json", "-f", "rate")
    assert got.code == 0 and json.loads(got.out)["features"] == {"rate": 1.5}
    bad = cli("features", "put", "stats", '{"driver": 3, "ts": "2024-01-01T00:00:00", "rate": 1}')
    assert bad.code == 2 and "has no time zone" in bad.err and "Traceback" not in bad.err + bad.out
    assert cli("features", "put", "stats", '[{"driver": 3, "ts": "2024-01-01T00:00:00Z", "rate": 1}]').code == 0
    missing = cli("features", "get", "stats", "404")
    assert missing.code == 3 and "no record '404'" in missing.err
    ents = tmp_path / "e.csv"
    ents.write_text("driver,event_time\n1,1700000030\n2,1700000030\n")
    assert cli("datasets", "ingest", "ents", str(ents)).code == 0
    made = cli("features", "training-set", "ents", "-f", "stats:rate", "-o", "train", "--json")
    assert made.code == 0 and json.loads(made.out)["row_count"] == 2
    assert cli("features", "describe", "../etc").code == 2
    rebuilt = cli("features", "rebuild-online", "stats", "--json")
    assert rebuilt.code == 0 and json.loads(rebuilt.out)["ids"] == 3  # drivers 1, 2 and the put 3
    ghost = cli("features", "rebuild-online", "ghost")
    assert ghost.code == 3 and "does not exist" in ghost.err and "Traceback" not in ghost.err + ghost.out


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_the_service_on_a_shared_online_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "redis":
        url = f"{REDIS_URL}?prefix=kiln-test-{uuid.uuid4().hex[:8]}"
    else:
        pg = request.getfixturevalue("pg_url")
        url = f"{pg}{'&' if '?' in pg else '?'}table=online_{uuid.uuid4().hex[:8]}"
    ws = Workspace(load_settings(home=str(tmp_path / "k"), online_store_url=url))
    try:
        svc = FeatureService(ws, local_context())
        assert not reads_inline(ws)  # a network store's reads keep the server's thread pool
        svc.create("g", record_id="uid", event_time="ts", features=[{"name": "uid", "type": "string"}, {"name": "ts", "type": "fractional"}, {"name": "x", "type": "vector"}], ttl=3600)
        now = time.time()
        assert svc.put_records("g", records=[{"uid": "a", "ts": now, "x": [1, 2]}, {"uid": "b", "ts": now - 7200}]).online == 2
        assert svc.get_record("g", "a").features["x"] == [1.0, 2.0]
        with pytest.raises(NotFound):  # expired: 2 h old with a 1 h TTL
            svc.get_record("g", "b")
        svc.delete_records("g", records=[{"record_id": "a", "event_time": now + 1}], mode="hard")
        assert svc.batch_get(identifiers=[{"feature_group": "g", "record_ids": ["a"]}]).missing[0].record_ids == ["a"]
        svc.delete("g")
        # A bulk ingest (PostgreSQL: one transaction beside the offline write; Redis: batch by
        # batch after it) and a rebuild: the latest record per id, ties to the later row.
        from kiln.lake.datasets import DatasetService

        DatasetService(ws, local_context()).write_table("d", pd.DataFrame({"id": [1, 2, 1, 2], "ts": [now, now, now + 5, now], "v": [0.0, 1.0, 2.0, 3.0]}))
        assert svc.create("h", record_id="id", event_time="ts", dataset="d@1").offline_rows == 4
        assert [svc.get_record("h", i).features["v"] for i in (1, 2)] == [2.0, 3.0]
        assert svc.rebuild_online("h").ids == 2 and svc.get_record("h", 1).features["v"] == 2.0
        svc.delete("h")
    finally:
        ws.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis", "unreachable"])
def test_doctor_checks_the_online_store(cli: Any, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = {"sqlite": "", "redis": f"{REDIS_URL}?prefix=kiln-test-{uuid.uuid4().hex[:8]}", "unreachable": "redis://:secret@127.0.0.1:9/0"}[backend]
    if url:
        monkeypatch.setenv("KILN_ONLINE_STORE_URL", url)
    got = cli("doctor", "--json")
    check = next(c for c in json.loads(got.out)["checks"] if c["part"] == "online features")
    assert check["ok"] is (backend != "unreachable"), check
    assert check["backend"] == ("sqlite" if backend == "sqlite" else "redis") and "secret" not in got.out
    if backend == "unreachable":
        assert "does not answer" in check["detail"] and "redis://:***@127.0.0.1:9/0" in check["detail"]
