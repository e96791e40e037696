"""The CLI and REST faces of tracking; traversal strings; migrations; garbage collection."""

from __future__ import annotations

import time

import orjson
import pytest
import sqlalchemy as sa

from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.db import Database
from kiln.core.gc import collect_garbage
from kiln.tracking import ArtifactService, RunService

from .conftest import TRAVERSAL


@pytest.fixture
def two_runs(sqlite_ws):
    svc = RunService(sqlite_ws, local_context())
    ids = []
    for i in range(2):
        run = svc.create(experiment_name="cli", run_name=f"c{i}", params={"lr": i})
        svc.finish(run_id=run.id, metrics=[("acc", 0.5 + i / 10, 0, 1.0), ("nan", float("nan"), 0, 1.0)])
        ids.append(run.id)
    return ids


def test_cli_lists_shows_and_compares(cli, two_runs):
    code, out, _ = cli("runs", "ls", "cli", "--filter", "metrics.acc > 0.55", "--json")
    assert code == 0 and [r["name"] for r in orjson.loads(out)] == ["c1"]
    code, out, _ = cli("runs", "show", two_runs[0], "--json")
    assert code == 0 and orjson.loads(out)["metrics"] == {"acc": 0.5, "nan": "NaN"}
    code, out, _ = cli("runs", "compare", *two_runs)
    assert code == 0 and "params.lr" in out and "metrics.acc" in out
    code, out, _ = cli("experiments", "ls", "--json")
    assert code == 0 and orjson.loads(out)[0]["run_count"] == 2
    code, out, _ = cli("runs", "metric", two_runs[1], "acc", "--json")
    assert code == 0 and orjson.loads(out)["values"] == [0.6]


@pytest.mark.parametrize(
    "args",
    [("runs", "show", "nope"), ("runs", "ls", "--filter", "metrics.acc > 'x'"), ("runs", "ls", "Bad_Name"), ("runs", "compare", "0" * 32)],
)
def test_cli_errors_are_one_line_without_traceback(cli, two_runs, args):
    code, out, err = cli(*args)
    assert code in (2, 3) and "error:" in err and "Traceback" not in err + out


def test_traversal_strings_are_refused_by_every_route(rest, raw, two_runs):
    run_id = two_runs[0]
    routes = [
        ("GET", "/v1/runs/{}"), ("GET", "/v1/experiments/{}"), ("GET", f"/v1/runs/{run_id}/artifacts/{{}}"),
        ("PUT", f"/v1/runs/{run_id}/artifacts/{{}}"), ("GET", f"/v1/runs/{run_id}/metrics/{{}}"),
    ]
    accepted = [(bad, m, u, s) for bad in TRAVERSAL for m, u in routes if not 400 <= (s := raw(m, u, bad)) < 500]
    for bad in TRAVERSAL:
        if rest.post("/v1/runs", json={"experiment_name": bad}).status_code != 400:
            accepted.append((bad, "POST", "/v1/runs experiment_name", None))
        # Run names are display names, never paths: "CON" is a fine one; everything else here is refused.
        if rest.post("/v1/runs", json={"experiment_name": "ok", "run_name": bad}).status_code != (201 if bad == "CON" else 400):
            accepted.append((bad, "POST", "/v1/runs run_name", None))
    assert accepted == []


def test_traversal_strings_are_refused_by_every_command(cli, two_runs):
    commands = [("runs", "show"), ("experiments", "show"), ("runs", "metric", two_runs[0]), ("runs", "artifact", two_runs[0])]
    failures = []
    for bad in TRAVERSAL:
        for cmd in commands:
            code, out, err = cli(*cmd, bad)
            if code not in (2, 3) or "Traceback" in out + err or "error:" not in err:
                failures.append((cmd, bad, code, err[-200:]))
    assert failures == []


def test_artifact_bytes_over_rest_and_media_type(rest):
    run = rest.post("/v1/runs", json={"experiment_name": "arts"}).json()
    put = rest.put(f"/v1/runs/{run['id']}/artifacts/plots/a.csv?media_type=text/csv", content=b"a,b\n1,2\n", headers={"content-type": "application/octet-stream"})
    assert put.status_code == 201 and put.json()["size"] == 8
    got = rest.get(f"/v1/runs/{run['id']}/artifacts/plots/a.csv")
    assert got.content == b"a,b\n1,2\n" and got.headers["content-type"].startswith("text/csv")
    rest.post(f"/v1/runs/{run['id']}/finish", json={})
    late = rest.put(f"/v1/runs/{run['id']}/artifacts/late.txt", content=b"x", headers={"content-type": "application/octet-stream"})
    assert late.status_code == 409


def test_gc_keeps_artifacts_and_removes_orphans(sqlite_ws):
    svc = RunService(sqlite_ws, local_context())
    run = svc.create(experiment_name="gc")
    ArtifactService(sqlite_ws, local_context()).put(run_id=run.id, name="kept.txt", data=b"k")
    sqlite_ws.store.put_bytes(f"runs/{run.id}/artifacts/orphan/lost.txt", b"o")
    report = collect_garbage(sqlite_ws, local_context(), grace_s=0, dry_run=False, now=time.time() + 1)
    assert [k for k in report.removed if k.startswith("runs/")] == [f"runs/{run.id}/artifacts/orphan/lost.txt"]
    assert ArtifactService(sqlite_ws, local_context()).read(run_id=run.id, name="kept.txt") == b"k"


def test_migration_upgrades_a_core_only_database(tmp_path):
    settings = load_settings(home=tmp_path)
    db = Database(settings.database_url)
    db.migrate("core_0001")
    db.migrate("heads")
    with db.read() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert {"kiln_runs", "kiln_metric_chunks", "kiln_latest_metrics", "kiln_models", "kiln_model_versions"} <= names
    db.dispose()
