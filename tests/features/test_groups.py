"""Feature groups and records: SageMaker's PutRecord / DeleteRecord semantics, bad records
refused whole with the field named, TTL, versions, compaction, roles and audit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from kiln.core.config import load_settings
from kiln.core.context import Context, local_context
from kiln.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from kiln.core.workspace import Workspace
from kiln.features._service import FeatureService, reads_inline
from kiln.lake.datasets import DatasetService

NOW = time.time()
FEATURES = [{"name": "uid", "type": "string"}, {"name": "ts", "type": "fractional"}, {"name": "n", "type": "integral"},
            {"name": "ok", "type": "boolean"}, {"name": "emb", "type": "vector"}, {"name": "seen", "type": "timestamp"}]


@pytest.fixture
def svc(ws: Workspace) -> FeatureService:
    s = FeatureService(ws, local_context())
    s.create("g", record_id="uid", event_time="ts", features=FEATURES)
    return s


def _offline(svc: FeatureService, name: str = "g") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in svc.offline_files(svc.get_group(name)):
        with svc.ws.store.open(f.key) as fh:
            rows += pq.read_table(fh).to_pylist()
    return rows


def test_newer_goes_online_older_offline_only(svc: FeatureService) -> None:
    assert svc.put_records("g", records=[{"uid": "a", "ts": NOW, "n": 1}]).online == 1
    res = svc.put_records("g", records=[{"uid": "a", "ts": NOW - 10, "n": 0}])
    assert (res.offline, res.online) == (1, 0)
    assert svc.get_record("g", "a").features["n"] == 1
    assert svc.put_records("g", records=[{"uid": "a", "ts": "2099-01-01T00:00:00+02:00", "n": 2, "ok": "true", "emb": [1, 2], "seen": "2024-01-01T00:00:00Z"}]).online == 1
    rec = svc.get_record("g", "a")
    assert rec.features == {"uid": "a", "ts": 4070901600.0, "n": 2, "ok": True, "emb": [1.0, 2.0], "seen": 1704067200.0}
    assert sorted(r["n"] for r in _offline(svc)) == [0, 1, 2]


@pytest.mark.parametrize(("record", "field"), [
    ({"ts": NOW}, "uid"), ({"uid": "", "ts": NOW}, "uid"), ({"uid": "a"}, "ts"), ({"uid": "a", "ts": "2024-01-01T00:00:00"}, "ts"),
    ({"uid": "a", "ts": "soon"}, "ts"), ({"uid": "a", "ts": NOW, "n": "1.5"}, "n"), ({"uid": "a", "ts": NOW, "ok": 1}, "ok"),
    ({"uid": "a", "ts": NOW, "emb": ["x"]}, "emb"), ({"uid": "a", "ts": NOW, "nope": 1}, "nope"), ({"uid": "a", "ts": NOW, "n": True}, "n"),
])
def test_a_bad_record_refuses_the_whole_batch_naming_the_field(svc: FeatureService, record: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        svc.put_records("g", records=[{"uid": "first", "ts": NOW}, record])
    assert info.value.details["field"] == field and info.value.details["record"] == 1 and "record 1" in info.value.message
    assert _offline(svc) == []
    with pytest.raises(NotFound):
        svc.get_record("g", "first")


def test_deletes_soft_and_hard(svc: FeatureService) -> None:
    svc.put_records("g", records=[{"uid": "a", "ts": NOW}, {"uid": "b", "ts": NOW}])
    assert svc.delete_records("g", records=[{"record_id": "a", "event_time": NOW - 5}]).online == 0  # older: online unchanged
    svc.get_record("g", "a")
    svc.delete_records("g", records=[{"record_id": "a", "event_time": NOW + 1}])
    with pytest.raises(NotFound):
        svc.get_record("g", "a")
    assert svc.put_records("g", records=[{"uid": "a", "ts": NOW + 0.5}]).online == 0  # a soft delete keeps its time
    svc.delete_records("g", records=[{"record_id": "b", "event_time": NOW + 1}], mode="hard")
    assert svc.put_records("g", records=[{"uid": "b", "ts": NOW + 0.5}]).online == 1  # a hard delete forgets it
    deleted = [r for r in _offline(svc) if r["is_deleted"]]
    assert len(deleted) == 3 and all(r["n"] is None for r in deleted)


def test_ttl_of_the_group_and_of_a_record(ws: Workspace) -> None:
    svc = FeatureService(ws, local_context())
    svc.create("t", record_id="uid", event_time="ts", features=FEATURES, ttl="1h")
    svc.put_records("t", records=[{"uid": "old", "ts": NOW - 7200}, {"uid": "new", "ts": NOW - 60}])
    svc.put_records("t", records=[{"uid": "short", "ts": NOW - 60}], ttl=30)
    with pytest.raises(NotFound):
        svc.get_record("t", "old")
    with pytest.raises(NotFound):
        svc.get_record("t", "short")
    assert svc.get_record("t", "new").expires_at == pytest.approx(NOW - 60 + 3600)


def test_batch_get_across_groups_with_selection(svc: FeatureService) -> None:
    svc.create("h", record_id="uid", event_time="ts", features=FEATURES[:3])
    svc.put_records("g", records=[{"uid": "a", "ts": NOW, "n": 1, "ok": False}])
    svc.put_records("h", records=[{"uid": "a", "ts": NOW, "n": 7}])
    res = svc.batch_get(identifiers=[{"feature_group": "g", "record_ids": ["a", "zz"], "features": ["ok"]}, {"feature_group": "h", "record_ids": ["a"]}])
    assert [(r.feature_group, r.features) for r in res.records] == [("g", {"ok": False}), ("h", {"uid": "a", "ts": NOW, "n": 7})]
    assert [(m.feature_group, m.record_ids) for m in res.missing] == [("g", ["zz"])]
    with pytest.raises(InvalidArgument, match="no feature 'nope'"):
        svc.get_record("g", "a", features=["nope"])
    with pytest.raises(NotFound, match="does not exist"):
        svc.batch_get(identifiers=[{"feature_group": "ghost", "record_ids": [1]}])


def test_create_from_a_dataset_versions_and_delete(ws: Workspace) -> None:
    ctx = local_context()
    lake = DatasetService(ws, ctx)
    lake.write_table("d", pd.DataFrame({"id": [1, 2, 2], "when": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"], "v": [0.5, 1.5, 2.5], "s": ["x", None, "z"]}))
    svc = FeatureService(ws, ctx)
    g = svc.create("d", record_id="id", event_time="when", dataset="d@1", description="from d", tags={"team": "risk"})
    assert [(f.name, f.type) for f in g.features] == [("id", "integral"), ("when", "timestamp"), ("v", "fractional"), ("s", "string")]
    assert (g.offline_rows, g.offline_files, g.source) == (3, 3, {"dataset": "d@1"})
    assert svc.get_record("d", 2).features["v"] == 2.5
    with pytest.raises(AlreadyExists):
        svc.create("d", record_id="id", event_time="when", dataset="d@1")
    with pytest.raises(InvalidArgument, match="keeps its type"):
        svc.update("d", features=[{"name": "id", "type": "integral"}, {"name": "when", "type": "timestamp"}, {"name": "v", "type": "string"}])
    v2 = svc.update("d", features=[*[f.model_dump() for f in g.features], {"name": "w", "type": "vector"}], ttl="7d")
    assert (v2.version, v2.ttl_s, svc.describe("d@1").features == g.features) == (2, 604800.0, True)
    svc.delete("d")
    with pytest.raises(NotFound):
        svc.describe("d")
    svc.create("d", record_id="id", event_time="when", dataset="d@1", ingest=False)
    with pytest.raises(NotFound, match="no record"):  # nothing of the old group is left online
        svc.get_record("d", 2)


def test_ingest_refuses_nulls_and_missing_columns(ws: Workspace) -> None:
    ctx = local_context()
    lake = DatasetService(ws, ctx)
    lake.write_table("d", pd.DataFrame({"id": [1, None], "when": [1.0e9, 1.0e9]}))
    lake.write_table("e", pd.DataFrame({"key": [1], "when": [1.0e9]}))
    svc = FeatureService(ws, ctx)
    svc.create("g", record_id="id", event_time="when", features=[{"name": "id", "type": "integral"}, {"name": "when", "type": "fractional"}])
    with pytest.raises(InvalidArgument, match="1 null values") as info:
        svc.ingest("g", dataset="d@1")
    assert info.value.details["field"] == "id" and svc.describe("g").offline_rows == 0
    with pytest.raises(InvalidArgument, match="no column 'id'"):
        svc.ingest("g", dataset="e@1")


def test_compaction_keeps_every_row(svc: FeatureService) -> None:
    for i in range(5):
        svc.put_records("g", records=[{"uid": str(i), "ts": NOW + i}])
    before = sorted((r["uid"], r["write_time"]) for r in _offline(svc))
    res = svc.compact("g")
    assert res.files_after < res.files_before and svc.describe("g").offline_files == res.files_after
    assert sorted((r["uid"], r["write_time"]) for r in _offline(svc)) == before


def test_roles_before_any_work_and_audit(ws: Workspace, svc: FeatureService) -> None:
    viewer = FeatureService(ws, Context(actor="v", role="viewer"))
    with pytest.raises(PermissionDenied):
        viewer.put_records("g", records=[{"uid": "a", "ts": NOW}])
    with pytest.raises(PermissionDenied):
        viewer.create("x", record_id="uid", event_time="ts", features=FEATURES)
    svc.put_records("g", records=[{"uid": "a", "ts": NOW}])
    assert viewer.get_record("g", "a").record_id == "a"
    with ws.db.read() as conn:
        events = [tuple(r) for r in conn.exec_driver_sql("SELECT action, outcome FROM kiln_audit_events ORDER BY seq")]
    assert ("features.put_records", "success") in events
    assert ("features.create", "failure") in events  # the refusal, audited


def test_online_store_is_chosen_by_url(tmp_path: Path) -> None:
    ws = Workspace(load_settings(home=str(tmp_path / "k"), online_store_url=f"sqlite:///{tmp_path / 'elsewhere.db'}"))
    svc = FeatureService(ws, local_context())
    svc.create("g", record_id="uid", event_time="ts", features=FEATURES)
    svc.put_records("g", records=[{"uid": "a", "ts": NOW}])
    assert (tmp_path / "elsewhere.db").exists() and not (tmp_path / "k" / "online.db").exists()
    assert reads_inline(ws)  # a local SQLite store is read on the server's event loop
    ws.close()


def test_derived_features_are_the_same_online_and_offline(ws: Workspace) -> None:
    ctx = local_context()
    svc = FeatureService(ws, ctx)
    feats = [{"name": "uid", "type": "integral"}, {"name": "ts", "type": "fractional"}, {"name": "rate", "type": "fractional"}, {"name": "trips", "type": "integral"},
             {"name": "revenue", "type": "fractional", "expression": "rate * trips"}, {"name": "busy", "type": "boolean", "expression": "coalesce(trips, 0) > 3"}]
    svc.create("d", record_id="uid", event_time="ts", features=feats)
    svc.put_records("d", records=[{"uid": 1, "ts": NOW, "rate": 2.5, "trips": 4}, {"uid": 2, "ts": NOW, "rate": 1.0}])
    online = {r: svc.get_record("d", r, features=["revenue", "busy"]).features for r in (1, 2)}
    assert online == {1: {"revenue": 10.0, "busy": True}, 2: {"revenue": None, "busy": False}}
    DatasetService(ws, ctx).write_table("e", pd.DataFrame({"uid": [1, 2], "event_time": [NOW + 1, NOW + 1]}))
    from kiln.features._training import TrainingSetService

    v = TrainingSetService(ws, ctx).training_set(entities="e", features=["d:revenue", "d:busy"], output_dataset="t")
    assert [{k: r[k] for k in ("revenue", "busy")} for r in DatasetService(ws, ctx).read_table(v.ref).to_pylist()] == [online[1], online[2]]
    with pytest.raises(InvalidArgument, match="derived"):
        svc.put_records("d", records=[{"uid": 1, "ts": NOW, "revenue": 1.0}])


@pytest.mark.parametrize(("expression", "match"), [
    ("read_csv('/etc/passwd')", "not allowed"), ("rate * ghost", "not a stored feature"), ("(SELECT 1)", "not a stored feature"),
    ("rate; DROP TABLE x", "cannot read"), ("sqrt(rate, rate)", "No function matches"), ("   ", "needs an expression"),
])
def test_bad_derived_expressions_are_refused(ws: Workspace, expression: str, match: str) -> None:
    feats = [{"name": "uid", "type": "integral"}, {"name": "ts", "type": "fractional"}, {"name": "rate", "type": "fractional"},
             {"name": "x", "type": "fractional", "expression": expression}]
    with pytest.raises(InvalidArgument, match=match):
        FeatureService(ws, local_context()).create("d", record_id="uid", event_time="ts", features=feats)


def test_gc_removes_what_compaction_and_delete_left(svc: FeatureService) -> None:
    from kiln.core.gc import collect_garbage

    for i in range(3):
        svc.put_records("g", records=[{"uid": str(i), "ts": NOW}])
    old = {f.key for f in svc.offline_files(svc.get_group("g"))}
    svc.compact("g")
    live = {f.key for f in svc.offline_files(svc.get_group("g"))}
    report = collect_garbage(svc.ws, svc.ctx, grace_s=0, dry_run=False, now=time.time() + 60)
    assert set(report.removed) == old and all(svc.ws.store.exists(k) for k in live)
    svc.delete("g")
    assert set(collect_garbage(svc.ws, svc.ctx, grace_s=0, dry_run=True, now=time.time() + 60).removed) == live


def test_create_that_cannot_ingest_leaves_no_group_and_ids_are_normalised(ws: Workspace) -> None:
    ctx = local_context()
    lake = DatasetService(ws, ctx)
    lake.write_table("bad", pd.DataFrame({"id": pd.Series([1, None], dtype="Int64"), "when": [1.0e9, 1.0e9]}))
    svc = FeatureService(ws, ctx)
    with pytest.raises(InvalidArgument, match="null values"):
        svc.create("g", record_id="id", event_time="when", dataset="bad@1")
    with pytest.raises(NotFound):
        svc.describe("g")
    lake.write_table("good", pd.DataFrame({"id": [7], "when": [1.0e9]}))
    svc.create("g", record_id="id", event_time="when", dataset="good@1")
    assert svc.get_record("g", "007").record_id == "7"
    with pytest.raises(InvalidArgument, match="must be integral"):
        svc.get_record("g", "seven")


def _fail_online_writes(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    from kiln.core.errors import Unavailable
    from kiln.features._service import online_store

    def down(*_: Any, **__: Any) -> int:
        raise Unavailable("the online store did not answer")

    monkeypatch.setattr(online_store(ws), "write", down)


def test_rebuild_online_restores_what_failed_online_writes_lost(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.core.errors import Unavailable
    from kiln.features._base import OnlineRow
    from kiln.features._service import online_store

    svc = FeatureService(ws, local_context())
    svc.create("r", record_id="uid", event_time="ts", features=FEATURES, ttl="1h")
    svc.put_records("r", records=[{"uid": "a", "ts": NOW - 60, "n": 1}, {"uid": "b", "ts": NOW - 60, "n": 1}, {"uid": "old", "ts": NOW - 7200, "n": 1}])
    with monkeypatch.context() as m:  # offline commits, online fails: a 503 that kept the offline rows
        _fail_online_writes(m, ws)
        with pytest.raises(Unavailable):
            svc.put_records("r", records=[{"uid": "a", "ts": NOW - 30, "n": 2}, {"uid": "c", "ts": NOW - 30, "n": 3}])
        with pytest.raises(Unavailable):
            svc.delete_records("r", records=[{"record_id": "b", "event_time": NOW - 30}])
    assert svc.get_record("r", "a").features["n"] == 1  # stale
    assert svc.get_record("r", "b").features["n"] == 1  # deleted offline only
    with pytest.raises(NotFound):
        svc.get_record("r", "c")
    online_store(ws).write("r", [OnlineRow("z", NOW, NOW + 3600, b'{"uid": "z", "ts": 0, "n": 9}')])  # newer than anything offline: kept
    result = svc.rebuild_online("r")
    assert (result.ids, result.deleted) == (4, 1) and result.online == 4  # a, b (deleted), c, old (expired, written expired)
    assert svc.get_record("r", "a").features["n"] == 2 and svc.get_record("r", "c").features["n"] == 3
    for gone in ("b", "old"):
        with pytest.raises(NotFound):
            svc.get_record("r", gone)
    assert svc.get_record("r", "z").features["n"] == 9
    assert svc.rebuild_online("r").online == 4  # idempotent: the same rows again (not older), nothing else changes
    assert svc.get_record("r", "a").features["n"] == 2


def test_rebuild_online_refuses_an_offline_only_group_and_is_audited(ws: Workspace) -> None:
    svc = FeatureService(ws, local_context())
    svc.create("off", record_id="uid", event_time="ts", features=FEATURES, online=False)
    with pytest.raises(InvalidArgument, match="has no online store"):
        svc.rebuild_online("off")
    with pytest.raises(NotFound):
        svc.rebuild_online("ghost")
    with pytest.raises(PermissionDenied):
        FeatureService(ws, Context(actor="v", role="viewer")).rebuild_online("off")
    svc.create("on", record_id="uid", event_time="ts", features=FEATURES)
    svc.rebuild_online("on")
    with ws.db.read() as conn:
        events = [tuple(r) for r in conn.exec_driver_sql("SELECT action, outcome FROM kiln_audit_events WHERE action = 'features.rebuild_online' ORDER BY seq")]
    assert events == [("features.rebuild_online", "failure"), ("features.rebuild_online", "success")]


def test_writes_purge_expired_online_rows_now_and_then(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from kiln.features import _stores

    svc = FeatureService(ws, local_context())
    svc.create("p", record_id="uid", event_time="ts", features=FEATURES, ttl=60)
    monkeypatch.setattr(_stores, "_PURGED", __import__("weakref").WeakKeyDictionary())
    db = sqlite3.connect(ws.settings.home / "online.db")
    count = "SELECT count(*) FROM online_records WHERE grp = 'p'"
    svc.put_records("p", records=[{"uid": "live", "ts": time.time()}])  # purges (nothing expired yet)
    svc.put_records("p", records=[{"uid": f"x{i}", "ts": NOW - 3600} for i in range(5)])  # already expired
    assert db.execute(count).fetchone()[0] == 6  # within the minute: no purge
    monkeypatch.setattr(_stores, "PURGE_EVERY_S", 0.0)
    svc.put_records("p", records=[{"uid": "live2", "ts": time.time()}])
    assert sorted(r[0] for r in db.execute("SELECT rid FROM online_records WHERE grp = 'p'")) == ["live", "live2"]


def test_a_bulk_ingest_goes_online_whole_and_only_after_its_offline_rows(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The online load runs beside the offline write, in one transaction that commits only
    after the offline files do: a failed offline commit leaves the online store as it was."""
    ctx = local_context()
    lake = DatasetService(ws, ctx)
    # Ids repeat: the latest event time wins, a tie goes to the later row of the dataset.
    lake.write_table("d", pd.DataFrame({"id": [1, 2, 1, 3, 2, 2], "when": [1.0e9, 1.0e9, 2.0e9, 1.0e9, 1.5e9, 1.5e9], "v": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}))
    lake.write_table("d2", pd.DataFrame({"id": [1, 4], "when": [3.0e9, 1.0e9], "v": [9.0, 9.0]}))
    svc = FeatureService(ws, ctx)
    res = svc.create("g", record_id="id", event_time="when", dataset="d@1")
    assert res.offline_rows == 6
    assert {i: svc.get_record("g", i).features["v"] for i in (1, 2, 3)} == {1: 2.0, 2: 5.0, 3: 3.0}

    def refuse(*_: Any, **__: Any) -> None:
        raise RuntimeError("the metadata store went away")

    monkeypatch.setattr(FeatureService, "_commit_files", refuse)
    with pytest.raises(RuntimeError, match="went away"):
        svc.ingest("g", dataset="d2@1")
    monkeypatch.undo()
    assert svc.describe("g").offline_rows == 6 and svc.get_record("g", 1).features["v"] == 2.0
    with pytest.raises(NotFound):
        svc.get_record("g", 4)
    assert svc.ingest("g", dataset="d2@1").online == 2
    assert svc.get_record("g", 1).features["v"] == 9.0 and svc.get_record("g", 4).features["v"] == 9.0


def test_a_write_kept_waiting_past_a_bulk_loads_lock_is_a_503_and_keeps_its_offline_rows(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite has one writer, and a bulk ingest holds the online store's lock until it commits:
    a PutRecord that waits past the busy timeout is refused as unavailable (503), naming what
    to do, with its rows kept offline; never a 500."""
    import sqlite3

    import httpx

    from kiln.core.errors import Unavailable
    from kiln.features import _online
    from kiln.features._stores import online_store
    from kiln.server.app import create_app
    from tests.faces.conftest import SyncASGI

    monkeypatch.setattr(_online, "_BUSY_S", 0.2)
    svc = FeatureService(ws, local_context())
    svc.create("g", record_id="uid", event_time="ts", features=FEATURES)
    holder = sqlite3.connect(online_store(ws).path, isolation_level=None)  # type: ignore[attr-defined]
    holder.execute("BEGIN IMMEDIATE")  # as a bulk load's transaction does
    try:
        with pytest.raises(Unavailable, match="could not be written .*rebuild-online"):
            svc.put_records("g", records=[{"uid": "a", "ts": NOW, "n": 1}])
        app = create_app(ws, auth=False, allowed_hosts=["testserver"])
        with httpx.Client(transport=SyncASGI(app, raise_app_exceptions=False), base_url="http://testserver") as http:
            resp = http.post("/v1/feature-groups/g/records", json={"records": [{"uid": "b", "ts": NOW, "n": 2}]}, headers={"x-kiln-client": "test"})
        assert resp.status_code == 503 and "rebuild-online" in resp.json()["error"]["message"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sorted(r["uid"] for r in _offline(svc)) == ["a", "b"]  # offline first: kept
    with pytest.raises(NotFound):
        svc.get_record("g", "a")
    svc.rebuild_online("g")
    assert (svc.get_record("g", "a").features["n"], svc.get_record("g", "b").features["n"]) == (1, 2)
