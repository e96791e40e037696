"""Point-in-time training sets against a brute-force reference on random data: ties of event
time (broken by write time), deletes, TTL edges, late-arriving records, as_of, event-time
ranges and skipped deletes; on SQLite + a folder and on PostgreSQL + S3."""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument
from kiln.core.workspace import Workspace
from kiln.features._service import FeatureService
from kiln.features import _training
from kiln.features._training import OrderKey, TrainingSetService
from kiln.lake.datasets import DatasetService

T0 = 1_700_000_000
TTL = 100
FEATURES = [{"name": "uid", "type": "integral"}, {"name": "ts", "type": "integral"}, {"name": "x", "type": "fractional"}, {"name": "tag", "type": "string"}]


def _offline_rows(ws: Workspace, svc: FeatureService, name: str) -> list[dict[str, Any]]:
    g = svc.get_group(name)
    rows: list[dict[str, Any]] = []
    for f in svc.offline_files(g):
        with ws.store.open(f.key) as fh:
            rows += pq.read_table(fh).to_pylist()
    return rows


def _reference(rows: list[dict[str, Any]], entities: pd.DataFrame, *, ttl: float | None, as_of: float | None = None, include_deleted: bool = False,
               start: float | None = None, end: float | None = None) -> list[tuple[Any, Any]]:
    out = []
    for uid, t in zip(entities["uid"], entities["event_time"], strict=True):
        best = None
        for r in rows:
            et, wt = r["ts"].timestamp(), r["write_time"].timestamp()
            if r["uid"] != uid or et > t or (as_of is not None and wt > as_of) or (include_deleted and r["is_deleted"]):
                continue
            if (start is not None and et < start) or (end is not None and et >= end):
                continue
            if best is None or (et, wt) > (best["ts"].timestamp(), best["write_time"].timestamp()):
                best = r
        if best is None or best["is_deleted"] or (ttl is not None and t >= best["ts"].timestamp() + ttl):
            out.append((None, None))
        else:
            out.append((best["x"], best["tag"]))
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return bool(a == b)


@pytest.mark.slow
@pytest.mark.parametrize(("key_type", "n_passes"), [("BIGINT", 1), ("HUGEINT", 1), ("BIGINT", 3)])
def test_join_matches_brute_force(any_ws: Workspace, key_type: str, n_passes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if key_type == "HUGEINT":  # the wide order key, as a group written over years gets
        monkeypatch.setattr(_training, "_BIGINT_MAX", 0)
    if n_passes > 1:  # the match in passes over hash ranges of the ids, as a group too large for one gets
        monkeypatch.setattr(_training, "passes", lambda *a: n_passes)
    ctx = local_context()
    rng = random.Random(7)
    svc = FeatureService(any_ws, ctx)
    svc.create("g", record_id="uid", event_time="ts", features=FEATURES, ttl=TTL)
    lake = DatasetService(any_ws, ctx)
    # A bulk ingest, with ties inside it (a later row of the dataset wins).
    bulk = pd.DataFrame({"uid": [rng.randrange(12) for _ in range(120)], "ts": [T0 + rng.randrange(0, 1000, 10) for _ in range(120)]})
    bulk["x"] = [float(i) for i in range(120)]
    bulk["tag"] = [f"b{i}" for i in range(120)]
    lake.write_table("bulk", bulk)
    svc.ingest("g", dataset="bulk@1")
    as_of = None
    for step in range(6):
        if step == 3:
            time.sleep(0.01)
            as_of = time.time()
            time.sleep(0.01)
        # Late records (old event times written now), ties with earlier writes, ties within a batch.
        recs = [{"uid": rng.randrange(12), "ts": T0 + rng.randrange(0, 1000, 10), "x": float(1000 * (step + 1) + i), "tag": f"s{step}-{i}"} for i in range(40)]
        recs += [dict(recs[0], x=-1.0, tag="tie-in-batch")]
        svc.put_records("g", records=recs)
        dels = [{"record_id": rng.randrange(12), "event_time": T0 + rng.randrange(0, 1000, 10)} for _ in range(5)]
        svc.delete_records("g", records=dels, mode=rng.choice(["soft", "hard"]))
    rows = _offline_rows(any_ws, svc, "g")
    assert len(rows) == 120 + 6 * 46
    # The order key's ranges come from the files' footers: the same as a scan of the rows.
    epoch, one_us = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.timedelta(microseconds=1)
    us = [((r["ts"] - epoch) // one_us, (r["write_time"] - epoch) // one_us) for r in rows]
    keys = [f.key for f in svc.offline_files(svc.get_group("g"))]
    assert _training._footer_ranges(any_ws.store, keys, "ts") == (min(e for e, _ in us), max(e for e, _ in us), min(w for _, w in us), max(w for _, w in us))
    # Entity rows: at record times exactly, at TTL edges (t = et + TTL is expired), between, and ids with no records.
    times = [T0 + rng.randrange(-50, 1200) for _ in range(200)] + [r["ts"].timestamp() + d for r in rng.sample(rows, 60) for d in (0, TTL - 1, TTL)]
    ents = pd.DataFrame({"uid": [rng.randrange(14) for _ in times], "event_time": times})
    lake.write_table("ents", ents)
    train = TrainingSetService(any_ws, ctx)
    for opts in [{}, {"as_of": as_of}, {"include_deleted": True}, {"start": T0 + 200, "end": T0 + 700}]:
        version = train.training_set(entities="ents", features=["g:x", "g:tag"], output_dataset="train", event_time_column="event_time", **opts)
        got = lake.read_table(version.ref).to_pandas()
        assert list(got["uid"]) == list(ents["uid"]) and list(got["event_time"]) == list(ents["event_time"])  # every row, in place
        want = _reference(rows, ents, ttl=TTL, **opts)
        bad = [(i, (x, tg), w) for i, (x, tg, w) in enumerate(zip(got["x"], got["tag"], want, strict=True)) if not (_same(x, w[0]) and _same(tg, w[1]))]
        assert not bad, (opts, bad[:5])
        assert any(w[0] is not None for w in want) and any(w[0] is None for w in want)


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_footer_ranges_read_raw_statistics_in_any_time_unit(ws: Workspace, unit: str) -> None:
    import subprocess
    import sys

    import pyarrow as pa

    us = {"ms": 1000, "us": 1, "ns": 1}[unit]  # nanoseconds below a microsecond are dropped (floor), as epoch_us does
    raw = {"ms": [1_700_000_000_123, 1_700_000_999_000], "us": [1_700_000_000_123_456, 1_700_000_999_000_001], "ns": [1_700_000_000_123_456_789, 1_700_000_999_000_001_999]}[unit]
    for name, values in (("a.parquet", raw), ("b.parquet", [raw[0] + 5, raw[1] - 5])):
        table = pa.table({"ts": pa.array(values, pa.int64()).cast(pa.timestamp(unit, tz="UTC")), "write_time": pa.array([7, 9], pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
        with ws.store.open_write(f"fr/{name}") as fh:
            pq.write_table(table, fh)
    div = 1000 if unit == "ns" else 1
    assert _training._footer_ranges(ws.store, ["fr/a.parquet", "fr/b.parquet"], "ts") == (raw[0] * us // div, raw[1] * us // div, 7, 9)
    # Without pandas: pyarrow's Statistics.min of a timestamp imports it (a third of a second a process).
    code = ("import sys; from kiln.core.storage import open_store; from kiln.features._training import _footer_ranges; "
            f"assert _footer_ranges(open_store({str(ws.store.root)!r}), ['fr/a.parquet'], 'ts') is not None; assert 'pandas' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    table = pa.table({"ts": pa.array(["x", "y"]), "write_time": pa.array([7, 9], pa.int64()).cast(pa.timestamp("us", tz="UTC"))})
    with ws.store.open_write("fr/c.parquet") as fh:
        pq.write_table(table, fh)
    assert _training._footer_ranges(ws.store, ["fr/c.parquet"], "ts") is None  # not a timestamp: the caller scans


@pytest.mark.parametrize("wide", [False, True])
def test_order_key_sorts_by_event_then_write_time(wide: bool) -> None:
    import duckdb

    rng = random.Random(3)
    recs = [(rng.randrange(100, 120), rng.randrange(5000, 5010)) for _ in range(200)]  # (event us, write us), many ties
    key = OrderKey.of(min(r[0] for r in recs), max(r[0] for r in recs), min(r[1] for r in recs), max(r[1] for r in recs))
    if wide:
        key = OrderKey(key.event_lo, key.event_hi, key.write_lo, key.span, "HUGEINT")
    con = duckdb.connect()
    rec_keys = [con.execute(f"SELECT {key.record(str(e), str(w))}").fetchone()[0] for e, w in recs]  # type: ignore[index]
    assert sorted(range(len(recs)), key=lambda i: rec_keys[i]) == sorted(range(len(recs)), key=lambda i: recs[i])
    for t in [50, 99, 100, 105, 119, 120, 500]:  # an entity row's key is above exactly the records at or before it
        ek = con.execute(f"SELECT {key.entity(str(t))}").fetchone()[0]  # type: ignore[index]
        assert [k <= ek for k in rec_keys] == [e <= t for e, _ in recs]
    assert con.execute(f"SELECT {key.entity('NULL')}").fetchone()[0] is None  # type: ignore[index]
    assert OrderKey.of(0, 10**11, 0, 10**7).sql_type == "BIGINT" and OrderKey.of(0, 10**13, 0, 10**7).sql_type == "HUGEINT"


def _group_sizes(ws: Workspace, ctx: Any, id_type: str) -> None:
    svc = FeatureService(ws, ctx)
    svc.create("a", record_id="uid", event_time="ts", features=[{"name": "uid", "type": id_type}, *FEATURES[1:]])
    rng = random.Random(5)
    ids = [f"u{i}" if id_type == "string" else i for i in range(40)]
    for batch in range(3):  # three files, records of every id in each
        svc.put_records("a", records=[{"uid": rng.choice(ids), "ts": T0 + rng.randrange(100), "x": float(batch * 100 + i), "tag": f"t{batch}-{i}"} for i in range(60)])


@pytest.mark.parametrize(("id_type", "entity_ids"), [("integral", "int32"), ("string", "str")])
def test_passes_give_the_rows_one_pass_gives(ws: Workspace, id_type: str, entity_ids: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = local_context()
    _group_sizes(ws, ctx, id_type)
    rng = random.Random(6)
    uids = [rng.randrange(44) for _ in range(300)]  # 40 ids with records, 4 without
    ents = pd.DataFrame({"uid": pd.Series([f"u{u}" for u in uids] if entity_ids == "str" else uids, dtype="object" if entity_ids == "str" else entity_ids),
                         "event_time": [T0 + rng.randrange(-10, 120) for _ in uids]})
    lake = DatasetService(ws, ctx)
    lake.write_table("ents", ents)
    train = TrainingSetService(ws, ctx)
    one = lake.read_table(train.training_set(entities="ents", features=["a:x", "a:tag"], output_dataset="one").ref).to_pylist()
    monkeypatch.setattr(_training, "passes", lambda *a: 4)
    four = lake.read_table(train.training_set(entities="ents", features=["a:x", "a:tag"], output_dataset="four").ref).to_pylist()
    assert four == one and len(one) == 300
    assert sum(r["x"] is not None for r in one) > 150 and any(r["x"] is None for r in one)


def test_passes_follow_the_records_size_and_need_one_key_of_one_type(ws: Workspace) -> None:
    import pyarrow as pa

    ctx = local_context()
    svc = FeatureService(ws, ctx)
    svc.create("a", record_id="uid", event_time="ts", features=FEATURES)
    svc.create("b", record_id="uid", event_time="ts", features=FEATURES)
    svc.create("c", record_id="cid", event_time="ts", features=[*FEATURES, {"name": "cid", "type": "integral"}])
    parts = _training._parse_features(svc, ["a:x", "b:x"])
    ints, strs = {"uid": pa.int32(), "cid": pa.int64(), "event_time": pa.float64()}, {"uid": pa.string(), "event_time": pa.float64()}
    assert _training.passes(parts, ints, {"a": 1000, "b": 1000}, 512) == 1  # small: one pass
    many = {"a": 20_000_000, "b": 0}
    assert _training.passes(parts, ints, {"a": 5_000_000, "b": 0}, 512) == 3  # 200 MB of matches against 64 MiB a pass
    assert _training.passes(parts, ints, many, 512) == 6  # 800 MB: 12 passes' worth, capped
    assert _training.passes(parts, strs, many, 512) == 1  # string ids, integral records: hashes differ
    assert _training.passes(_training._parse_features(svc, ["a:x", "c:x"]), ints, {"a": 20_000_000, "c": 0}, 512) == 1  # two keys


def test_two_groups_lineage_and_versions(ws: Workspace) -> None:
    ctx = local_context()
    svc = FeatureService(ws, ctx)
    svc.create("a", record_id="uid", event_time="ts", features=FEATURES)
    svc.create("b", record_id="uid", event_time="ts", features=FEATURES)
    svc.put_records("a", records=[{"uid": 1, "ts": T0, "x": 1.0, "tag": "a1"}])
    svc.put_records("b", records=[{"uid": 1, "ts": T0 + 5, "x": 2.0, "tag": "b1"}])
    svc.update("a", features=[*FEATURES, {"name": "y", "type": "boolean"}])
    svc.put_records("a", records=[{"uid": 1, "ts": T0 + 10, "x": 3.0, "y": True}])
    DatasetService(ws, ctx).write_table("ents", pd.DataFrame({"uid": [1, 1, 1], "event_time": [T0 + 1, T0 + 6, T0 + 11]}))
    version = TrainingSetService(ws, ctx).training_set(entities="ents", features=["a:x", "a:y", "b:x", "b:tag"], output_dataset="t2")
    got = DatasetService(ws, ctx).read_table(version.ref).to_pylist()
    assert [(r["x"], r["y"], r["b__x"], r["tag"]) for r in got] == [(1.0, None, None, None), (1.0, None, 2.0, "b1"), (3.0, True, 2.0, "b1")]
    assert version.lineage["parents"] == ["ents@1"]
    assert [(g["name"], g["version"]) for g in version.lineage["feature_groups"]] == [("a", 2), ("b", 1)]
    with pytest.raises(InvalidArgument, match="no feature 'y'"):  # version 1 had no y
        TrainingSetService(ws, ctx).training_set(entities="ents", features=["a@1:y"], output_dataset="t3")


@pytest.mark.parametrize(("features", "column", "match"), [
    (["g:x"], "when", "no column 'when'"), (["g:nope"], "event_time", "no feature 'nope'"), (["gx"], "event_time", "group:feature"),
    (["ghost:x"], "event_time", "does not exist"),
])
def test_bad_requests_name_what_is_wrong(ws: Workspace, features: list[str], column: str, match: str) -> None:
    ctx = local_context()
    FeatureService(ws, ctx).create("g", record_id="uid", event_time="ts", features=FEATURES)
    DatasetService(ws, ctx).write_table("ents", pd.DataFrame({"uid": [1], "event_time": [T0]}))
    with pytest.raises(Exception, match=match):
        TrainingSetService(ws, ctx).training_set(entities="ents", features=features, output_dataset="t", event_time_column=column)


def test_to_dataset_recent_records_deletes_and_as_of(ws: Workspace) -> None:
    ctx = local_context()
    svc = FeatureService(ws, ctx)
    svc.create("g", record_id="uid", event_time="ts", features=FEATURES)
    svc.put_records("g", records=[{"uid": 1, "ts": T0 + t, "x": float(t)} for t in (1, 2, 3)] + [{"uid": 2, "ts": T0 + 1, "x": 9.0}])
    cut = time.time()
    time.sleep(0.01)
    svc.delete_records("g", records=[{"record_id": 2, "event_time": T0 + 5}])
    svc.put_records("g", records=[{"uid": 1, "ts": T0 + 4, "x": 4.0}])
    train = TrainingSetService(ws, ctx)
    lake = DatasetService(ws, ctx)

    def rows(**kw: Any) -> list[tuple[int, float | None, bool]]:
        return [(r["uid"], r["x"], r["is_deleted"]) for r in lake.read_table(train.to_dataset("g", output_dataset="snap", **kw).ref).to_pylist()]

    assert rows(n_recent=2) == [(1, 3.0, False), (1, 4.0, False)]  # uid 2 was deleted
    assert rows(n_recent=1, include_deleted=True) == [(1, 4.0, False), (2, None, True)]
    assert rows(as_of=cut) == [(1, 1.0, False), (1, 2.0, False), (1, 3.0, False), (2, 9.0, False)]
    assert rows(start=T0 + 2, end=T0 + 4) == [(1, 2.0, False), (1, 3.0, False)]
