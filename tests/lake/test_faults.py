"""Crashes and big inputs: nothing half-written is visible, memory stays bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.gc import collect_garbage
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService


def _big_csv(path: Path, rows: int) -> Path:
    duckdb.sql(f"COPY (SELECT range AS id, random() AS x, 'label_' || (range % 977) AS s, range * 3 AS y FROM range({rows})) TO '{path}' (HEADER)")
    return path


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    return {**env, "KILN_HOME": str(home), **extra}


def test_sigkill_mid_ingest_leaves_no_version_and_gc_cleans_up(tmp_path: Path) -> None:
    home = tmp_path / "kiln"
    csv = _big_csv(tmp_path / "big.csv", 4_000_000)
    ws = Workspace(load_settings(home=str(home)))
    DatasetService(ws, local_context()).ingest("small", _big_csv(tmp_path / "s.csv", 10))
    proc = subprocess.Popen([sys.executable, "-m", "kiln", "datasets", "ingest", "big", str(csv)], env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = home / "objects" / "datasets" / "big"
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.is_file() for p in target.rglob("*")):
        assert proc.poll() is None, "ingest finished before it could be killed; make the file bigger"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    svc = DatasetService(ws, local_context())
    assert [d.name for d in svc.list()] == ["small"], "a killed ingest must not be visible"
    orphans = [p for p in target.rglob("*") if p.is_file()]
    assert orphans, "the kill should have left garbage for gc"
    report = collect_garbage(ws, local_context(), grace_s=0, dry_run=False, now=time.time())
    assert report.removed and not [p for p in target.rglob("*") if p.is_file()]
    assert svc.read_table("small").num_rows == 10, "committed data survives gc"
    assert svc.ingest("big", _big_csv(tmp_path / "again.csv", 1000)).version == 1
    assert ws.verify_audit().ok
    ws.close()


def test_gc_keeps_recent_and_referenced_files(ws: Workspace, ctx) -> None:
    import pandas as pd

    svc = DatasetService(ws, ctx)
    svc.ingest("keep", pd.DataFrame({"a": [1]}))
    ws.store.put_bytes("datasets/keep/orphan/part-00000.parquet", b"junk")
    dry = collect_garbage(ws, ctx, grace_s=3600, dry_run=False, now=time.time())
    assert dry.removed == [] and dry.kept_recent == 1
    report = collect_garbage(ws, ctx, grace_s=0, dry_run=True, now=time.time())
    assert report.removed == ["datasets/keep/orphan/part-00000.parquet"] and ws.store.exists(report.removed[0])
    collect_garbage(ws, ctx, grace_s=0, dry_run=False, now=time.time())
    assert not ws.store.exists(report.removed[0]) and svc.read_table("keep").num_rows == 1


def test_files_shared_by_appended_versions_survive_deleting_the_first(ws: Workspace, ctx) -> None:
    import pandas as pd

    svc = DatasetService(ws, ctx)
    svc.ingest("a", pd.DataFrame({"x": [1]}))
    svc.ingest("a", pd.DataFrame({"x": [2]}), append=True)
    svc.delete("a@1")
    collect_garbage(ws, ctx, grace_s=0, dry_run=False, now=time.time())
    assert svc.read_table("a").column("x").to_pylist() == [1, 2]


def test_ingest_of_a_csv_far_larger_than_its_memory_budget(tmp_path: Path) -> None:
    csv = _big_csv(tmp_path / "huge.csv", 12_000_000)
    size_mb = csv.stat().st_size / 2**20
    script = textwrap.dedent(f"""
        import resource, sys
        import kiln
        from kiln.core.config import load_settings
        from kiln.core.context import local_context
        from kiln.core.workspace import Workspace
        from kiln.lake import DatasetService
        ws = Workspace(load_settings(home={str(tmp_path / "kiln")!r}, ingest_memory_mb=128))
        svc = DatasetService(ws, local_context())
        svc.ingest("warmup", {str(_big_csv(tmp_path / "warm.csv", 1000))!r})
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        v = svc.ingest("huge", {str(csv)!r})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(v.row_count, base, peak)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=_env(tmp_path / "kiln"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows, base, peak = out.stdout.split()
    assert int(rows) == 12_000_000
    growth = float(peak) - float(base)
    assert size_mb > 3 * growth, f"ingesting {size_mb:.0f} MB grew memory by {growth:.0f} MB"


@pytest.mark.parametrize("recreate", [False, True])
def test_append_whose_dataset_was_deleted_meanwhile_conflicts(ws: Workspace, ctx, monkeypatch: pytest.MonkeyPatch, recreate: bool) -> None:
    """The append's base vanished (deleted, its files gc'd) while it staged: it must not
    commit a version that lists the deleted files."""
    import pandas as pd

    from kiln.core.errors import Conflict, NotFound

    svc = DatasetService(ws, ctx)
    svc.ingest("sales", pd.DataFrame({"id": [1, 2]}))
    real_stage = DatasetService._stage

    def stage_then_delete(self, *args, **kwargs):
        staged = real_stage(self, *args, **kwargs)
        monkeypatch.setattr(DatasetService, "_stage", real_stage)
        DatasetService(ws, ctx).delete("sales")
        if recreate:  # a new sales@1 with other data: still not what the append read
            DatasetService(ws, ctx).ingest("sales", pd.DataFrame({"id": [7, 8, 9]}))
        return staged

    monkeypatch.setattr(DatasetService, "_stage", stage_then_delete)
    with pytest.raises(Conflict):
        svc.ingest("sales", pd.DataFrame({"id": [3]}), append=True)
    monkeypatch.undo()
    if recreate:
        assert svc.get("sales").row_count == 3 and svc.get("sales").version == 1
    else:
        with pytest.raises(NotFound):
            svc.get("sales")


def test_two_first_ingests_of_one_dataset_at_once_on_postgres(tmp_path: Path, pg_schema_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both commit, as versions 1 and 2 (the loser used to hit the unique name: a 500)."""
    import threading

    import pandas as pd

    ws = Workspace(load_settings(home=str(tmp_path / "kiln"), database_url=pg_schema_url))
    real_stage = DatasetService._stage
    barrier = threading.Barrier(2)

    def stage_in_step(self, *args, **kwargs):
        staged = real_stage(self, *args, **kwargs)
        barrier.wait(timeout=30)
        return staged

    monkeypatch.setattr(DatasetService, "_stage", stage_in_step)
    errors: list[BaseException] = []

    def ingest(n: int) -> None:
        try:
            DatasetService(ws, local_context()).ingest("sales", pd.DataFrame({"id": list(range(n))}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(n,)) for n in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    try:
        assert errors == []
        versions = DatasetService(ws, local_context()).versions("sales")
        assert [v.version for v in versions] == [1, 2] and sorted(v.row_count for v in versions) == [1, 2]
    finally:
        ws.close()
