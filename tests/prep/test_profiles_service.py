"""ProfileService: a profile is stored with its dataset version, listed, self-contained, gc-safe."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from kiln.core.audit import list_events
from kiln.core.context import Context
from kiln.core.db import Database
from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.gc import collect_garbage
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
from kiln.prep import ProfileInfo, ProfileService


def _people(n: int = 600, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = age * 900.0 + rng.normal(0, 5000, n)
    return pa.table({
        "id": np.arange(n),
        "age": age,
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "income": [None if i % 3 == 0 else float(v) for i, v in enumerate(income)],  # a third missing: an alert
        "churned": (income < 40_000).astype(bool),
    })


@pytest.fixture
def lake(any_ws: Workspace, ctx: Context) -> tuple[Workspace, Context]:
    DatasetService(any_ws, ctx).write_table("people", _people())
    return any_ws, ctx


def test_profile_is_stored_with_the_version_and_listed(lake: tuple[Workspace, Context]) -> None:
    ws, ctx = lake
    svc = ProfileService(ws, ctx)
    info = svc.create("people")
    assert (info.ref, info.rows, info.columns, info.target) == ("people@1", 600, 5, None)
    assert info.alerts >= 1 and info.html_key.startswith("profiles/people/") and ws.store.exists(info.json_key)
    doc = svc.report("people@1", format="json")
    assert doc["overview"]["rows"] == 600 and any(a["kind"] == "missing" for a in doc["alerts"])
    assert len(doc["alerts"]) == info.alerts
    DatasetService(ws, ctx).write_table("people", _people(seed=1))
    with pytest.raises(NotFound, match=r"people@2 has no profile yet.*people@1 has one"):
        svc.get("people")
    second = svc.create("people")
    assert [p.ref for p in svc.list("people")] == ["people@2", "people@1"]
    assert svc.get("people") == second and svc.get("people@1") == info
    with ws.db.read() as conn:
        assert [e.action for e in list_events(conn, resource="profiles/people")] == ["profiles.create"] * 2


def test_html_report_is_self_contained(ws: Workspace, ctx: Context) -> None:
    DatasetService(ws, ctx).write_table("people", _people(200))
    svc = ProfileService(ws, ctx)
    html = svc.report(svc.create("people").ref, format="html").decode()
    assert html.lstrip().lower().startswith("<!doctype html") and "people@1" in html
    assert not re.search(r"https?://|<script|<link|@import|url\(", html, re.IGNORECASE)


@pytest.mark.parametrize("target", [None, "churned"])
def test_target_adds_insights(ws: Workspace, ctx: Context, target: str | None) -> None:
    DatasetService(ws, ctx).write_table("people", _people(300))
    info = ProfileService(ws, ctx).create("people", target=target)
    insights = ProfileService(ws, ctx).report("people", format="json")["insights"]
    assert info.target == target
    assert (insights is None) if target is None else (insights["target"] == "churned" and insights["problem_type"] == "classification")


def test_profile_reports_increasing_progress_over_the_rows_to_the_end(ws: Workspace, ctx: Context) -> None:
    from kiln.core.progress import reporting

    for _ in range(4):  # four files: the pass reports after each
        DatasetService(ws, ctx).write_table("people", _people(300), append=True)
    seen: list[float] = []
    with reporting(seen.append):
        ProfileService(ws, ctx).create("people")
    assert len(seen) >= 4 and seen == sorted(set(seen)) and seen[-1] == 1.0, seen


@pytest.mark.parametrize(("ref", "target", "error", "match"), [
    ("people", "agee", InvalidArgument, "target 'agee' is not a column of people@1"),
    ("people@4", None, NotFound, "no version 4"),
    ("nobody", None, NotFound, "dataset 'nobody' does not exist"),
    ("../etc", None, InvalidArgument, "invalid dataset name"),
])
def test_bad_requests_write_nothing(ws: Workspace, ctx: Context, monkeypatch: pytest.MonkeyPatch, ref: str, target: str | None, error: type, match: str) -> None:
    DatasetService(ws, ctx).write_table("people", _people(50))
    monkeypatch.setattr(DatasetService, "arrow_dataset", lambda *a, **k: pytest.fail("read data"))
    with pytest.raises(error, match=match):
        ProfileService(ws, ctx).create(ref, target=target)
    assert ws.store.list("profiles") == []
    assert ProfileService(ws, ctx).list("people") == []


def test_gc_keeps_profiles_until_their_version_goes(ws: Workspace, ctx: Context) -> None:
    datasets = DatasetService(ws, ctx)
    datasets.write_table("people", _people(50))
    info = ProfileService(ws, ctx).create("people")
    ws.store.put_bytes("profiles/people/crashed/profile.html", b"half")  # a crash before the commit
    report = collect_garbage(ws, ctx, grace_s=0, dry_run=False, now=time.time() + 5)
    assert "profiles/people/crashed/profile.html" in report.removed and ws.store.exists(info.html_key)
    datasets.delete("people")
    datasets.write_table("people", _people(50))  # the same name and number, new data
    with pytest.raises(NotFound, match="no profile yet"):
        ProfileService(ws, ctx).get("people@1")
    collect_garbage(ws, ctx, grace_s=0, dry_run=False, now=time.time() + 5)
    assert not ws.store.exists(info.html_key) and not ws.store.exists(info.json_key)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_upgrades_a_lake_only_database(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    db = Database(url)
    db.migrate("lake@head")  # a workspace from before the prep stage existed
    with db.read() as conn:
        assert "prep_profiles" not in sa.inspect(conn).get_table_names()
    db.migrate()
    with db.read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"prep_profiles", "prep_recipes", "prep_recipe_versions", "prep_recipe_fits"} <= tables
    assert "prep_0001" in db.current()
    db.dispose()


def test_profile_info_is_a_plain_model() -> None:
    info = ProfileInfo(id="x", dataset="d", version=2, target=None, rows=1, columns=1, alerts=0, html_key="h", json_key="j", created_at=0.0, created_by="me")
    assert info.ref == "d@2" and ProfileInfo.model_validate_json(info.model_dump_json()) == info
