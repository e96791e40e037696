"""RecipeService: versions, checks that name the step and write nothing, apply with lineage,
preview on a sample, export that reproduces apply, joins through Kiln datasets."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from kiln.core.audit import list_events
from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.gc import collect_garbage
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService
from kiln.prep import RecipeService
from kiln.prep.recipes import FittedRecipe

CLEAN = {
    "description": "people, cleaned",
    "steps": [
        {"op": "drop_missing", "params": {"columns": ["age"]}},
        {"op": "fill_missing", "params": {"columns": ["income"], "strategy": "median"}},
        {"op": "formula", "params": {"output": "senior", "expr": "age >= 60"}},
        {"op": "one_hot", "params": {"columns": ["city"]}},
        {"op": "standard_scale", "params": {"columns": ["income"]}},
    ],
}
PLAIN = {"steps": [{"op": "drop_columns", "params": {"columns": ["id"]}}, {"op": "str_upper", "params": {"columns": ["city"]}}]}


def people(n: int = 400, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": np.arange(n),
        "age": [None if i % 9 == 4 else int(a) for i, a in enumerate(rng.integers(18, 90, n))],
        "city": rng.choice(["paris", "lyon", "nice", "lille"], n),
        "income": [None if i % 5 == 2 else float(v) for i, v in enumerate(rng.normal(40_000, 9_000, n))],
    })


@pytest.fixture
def svc(ws: Workspace, ctx: Context) -> RecipeService:
    DatasetService(ws, ctx).write_table("people", people())
    DatasetService(ws, ctx).write_table("cities", pa.table({"city": ["paris", "lyon", "nice"], "region": ["idf", "ara", "paca"]}))
    return RecipeService(ws, ctx)


def test_a_new_version_only_when_the_content_changes(svc: RecipeService) -> None:
    first = svc.create("clean", CLEAN)
    again = svc.create("clean", CLEAN)
    assert (first.ref, first.created, first.fitted, again.ref, again.created) == ("clean@1", True, True, "clean@1", False)
    second = svc.create("clean", {**CLEAN, "description": "v2"})
    assert second.ref == "clean@2" and svc.get("clean").ref == "clean@2" and svc.get("clean@1").description == "people, cleaned"
    assert [v.version for v in svc.versions("clean")] == [1, 2] and [r.latest_version for r in svc.list()] == [2]
    yaml_text = "steps:\n  - op: str_upper\n    params: {columns: [city]}\n"
    assert svc.create("plain", yaml_text).steps == [{"op": "str_upper", "params": {"columns": ["city"]}}]
    assert svc.get("clean@2").to_recipe().steps == svc.get("clean@1").to_recipe().steps


@pytest.mark.parametrize(("recipe", "match"), [
    ({"steps": [PLAIN["steps"][0], {"op": "fil_missing", "params": {"columns": ["age"]}}]}, r'^step 2 \(fil_missing\): unknown op "fil_missing" \(did you mean "fill_missing"\?\)'),
    ({"steps": [{"op": "one_hot", "params": {"columns": ["city"], "max_categories": "ten"}}]}, r'^step 1 \(one_hot\): param "max_categories" must be an integer'),
    ({"steps": [{"op": "clip", "params": {"columns": ["age"], "upper": 3, "uper": 4}}]}, r'^step 1 \(clip\): unknown param "uper"'),
    ({"steps": [{"op": "fill_missing", "params": {"columns": ["age"], "strategy": "constant"}}]}, r'^step 1 \(fill_missing\): strategy "constant" needs param "value"'),
    ({"steps": [{"op": "sort_rows", "params": {"columns": ["age"]}, "when": "age > 3"}]}, r'^step 1 \(sort_rows\): "when" is not supported'),
    ({"steps": [{"op": "filter", "params": {"condition": "(SELECT 1)"}}]}, r"^step 1 \(filter\): param \"condition\": 'SELECT' is not allowed"),
    ({"stepz": []}, r"unknown recipe key"),
    ("steps: [op: x", r"invalid recipe YAML"),
])
def test_create_refuses_bad_recipes_naming_the_step(ws: Workspace, svc: RecipeService, recipe: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match) as info:
        svc.create("bad", recipe)
    assert type(info.value) is InvalidArgument  # not the engine's subclass: the same through every face
    assert svc.list() == []
    with ws.db.read() as conn:
        assert [(e.action, e.outcome) for e in list_events(conn, resource="recipes/bad")] == [("recipes.create", "failure")]


def test_columns_are_checked_at_apply_before_any_row_is_read(ws: Workspace, ctx: Context, svc: RecipeService, monkeypatch: pytest.MonkeyPatch) -> None:
    svc.create("typo", {"steps": [PLAIN["steps"][0], {"op": "fill_missing", "params": {"columns": ["agee"], "strategy": "mean"}}]})
    monkeypatch.setattr(DatasetService, "read_table", lambda *a, **k: pytest.fail("read rows"))
    for call in (lambda: svc.apply("typo", "people", output_dataset="out"), lambda: svc.preview("typo", "people")):
        with pytest.raises(InvalidArgument, match=r'^step 2 \(fill_missing\): column "agee" not found \(did you mean "age"\?\)'):
            call()
    with pytest.raises(NotFound, match="dataset 'out' does not exist"):
        DatasetService(ws, ctx).get("out")
    assert ws.store.list("recipes") == []


def test_apply_writes_a_version_with_lineage_and_stores_the_fit(any_ws: Workspace, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = DatasetService(any_ws, ctx)
    datasets.write_table("people", people(seed=1))
    datasets.write_table("people", people())
    svc = RecipeService(any_ws, ctx)
    svc.create("clean", CLEAN)
    result = svc.apply("clean@1", "people", output_dataset="people-clean", description="for training")
    out = result.output
    assert (result.recipe, result.input, out.ref) == ("clean@1", "people@2", "people-clean@1")
    assert out.lineage == {"parents": ["people@2"], "recipe": "clean@1", "fit": result.fit.id}
    assert out.source == {"kind": "recipe", "recipe": "clean@1", "input": "people@2"}
    assert {"senior", "city_paris", "city_lille"} <= {c.name for c in out.columns} and "city" not in {c.name for c in out.columns}
    assert result.fit.rows_out == out.row_count == people().num_rows - sum(a is None for a in people()["age"].to_pylist())
    assert [f.id for f in svc.fits("clean")] == [result.fit.id]
    monkeypatch.setattr(DatasetService, "read_table", lambda *a, **k: pytest.fail("refitted instead of reusing the stored fit"))
    fitted = svc.fitted("clean@1", "people@2")
    assert isinstance(fitted, FittedRecipe) and fitted.to_dict() == FittedRecipe.from_json(any_ws.store.read_bytes(result.fit.fitted_key)).to_dict()


def test_apply_reports_increasing_progress_through_its_steps_to_the_end(svc: RecipeService) -> None:
    from kiln.core.progress import reporting

    svc.create("clean", CLEAN)
    seen: list[float] = []
    with reporting(seen.append):
        svc.apply("clean", "people", output_dataset="people-clean")
    assert len(seen) >= len(CLEAN["steps"]) + 2 and seen == sorted(set(seen)) and seen[-1] == 1.0, seen


def test_join_reads_another_kiln_dataset(svc: RecipeService) -> None:
    svc.create("regions", {"steps": [{"op": "join", "params": {"dataset": "cities", "on": ["city"], "how": "left"}}]})
    preview = svc.preview("regions", "people", n=5)
    assert preview.columns[-1] == "region" and len(preview.rows) == 5
    result = svc.apply("regions", "people", output_dataset="people-regions")
    assert result.output.lineage["parents"] == ["people@1", "cities@1"]
    svc.create("missing", {"steps": [{"op": "join", "params": {"dataset": "nowhere", "on": ["city"]}}]})
    with pytest.raises(NotFound, match=r"^step 1 \(join\): dataset 'nowhere' does not exist"):
        svc.apply("missing", "people", output_dataset="x")


@pytest.mark.parametrize(("engine", "recipe"), [("polars", CLEAN), ("pandas", {"steps": [s for s in CLEAN["steps"] if s["op"] != "formula"]})])
def test_exported_script_reproduces_apply(ws: Workspace, ctx: Context, svc: RecipeService, tmp_path: Path, engine: str, recipe: dict[str, Any]) -> None:
    svc.create("clean", recipe)
    applied = svc.apply("clean", "people", output_dataset="people-clean").output
    script = tmp_path / "recipe.py"
    script.write_text(svc.export("clean", engine=engine, dataset="people"))
    source = DatasetService(ws, ctx).export("people", tmp_path / "people.parquet")
    subprocess.run([sys.executable, str(script), str(source), str(tmp_path / "out.parquet")], check=True, timeout=120, cwd=tmp_path)
    expected = pl.from_arrow(DatasetService(ws, ctx).read_table(applied.ref))
    assert_frame_equal(pl.read_parquet(tmp_path / "out.parquet"), expected, check_exact=engine == "polars", rel_tol=1e-12)


def test_export_needs_a_dataset_only_for_fitted_steps(svc: RecipeService) -> None:
    svc.create("plain", PLAIN)
    assert "def apply(" in svc.export("plain") and "import kiln" not in svc.export("plain")
    svc.create("clean", CLEAN)
    with pytest.raises(InvalidArgument, match=r"learn from data \(fill_missing, one_hot, standard_scale\): pass --dataset"):
        svc.export("clean")
    assert "import polars" not in svc.export("clean", engine="pandas", dataset="people")


def test_preview_reads_only_the_sample_of_a_large_dataset(ws: Workspace, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 1_000_000
    DatasetService(ws, ctx).write_table("big", pa.table({"id": np.arange(n), "x": np.arange(n) % 97 * 1.5}))
    svc = RecipeService(ws, ctx)
    svc.create("scale", {"steps": [{"op": "standard_scale", "params": {"columns": ["x"]}}, {"op": "filter", "params": {"condition": "x > 0"}}]})
    limits: list[int | None] = []
    read = DatasetService.read_table

    def spy(self: DatasetService, ref: Any, *, columns: Any = None, limit: int | None = None) -> pa.Table:
        limits.append(limit)
        return read(self, ref, columns=columns, limit=limit)

    monkeypatch.setattr(DatasetService, "read_table", spy)
    monkeypatch.setattr(DatasetService, "iter_batches", lambda *a, **k: pytest.fail("streamed the whole dataset"))
    start = time.perf_counter()
    preview = svc.preview("scale", "big", n=3)
    elapsed = time.perf_counter() - start
    assert limits == [10_000] and preview.sample_rows == 10_000 and len(preview.rows) == 3
    assert [s.op for s in preview.steps] == ["standard_scale", "filter"] and preview.steps[0].rows == 10_000
    assert elapsed < 30  # generous on a busy 2-core box; a full read is not what keeps it short: the spy is


def test_gc_keeps_stored_fits(ws: Workspace, ctx: Context, svc: RecipeService) -> None:
    svc.create("clean", CLEAN)
    fit = svc.apply("clean", "people", output_dataset="people-clean").fit
    ws.store.put_bytes("recipes/clean/fits/crashed.json", b"{}")
    report = collect_garbage(ws, ctx, grace_s=0, dry_run=False, now=time.time() + 5)
    assert "recipes/clean/fits/crashed.json" in report.removed and ws.store.exists(fit.fitted_key)


@pytest.mark.parametrize("call", [
    lambda s: s.get("clean@7"), lambda s: s.get("nope"), lambda s: s.versions("nope"), lambda s: s.fits("nope"),
    lambda s: s.preview("clean", "people@9"),
])
def test_missing_things_are_not_found(svc: RecipeService, call: Any) -> None:
    svc.create("clean", CLEAN)
    with pytest.raises(NotFound):
        call(svc)


@pytest.mark.parametrize("call", [
    lambda s: s.create("Bad_Name", PLAIN), lambda s: s.get("clean@latest-ish"), lambda s: s.apply("clean", "people", output_dataset="../x"),
    lambda s: s.preview("clean", "people", n=5000), lambda s: s.export("plain", to="java"), lambda s: s.export("plain", engine="spark"),
])
def test_invalid_arguments(svc: RecipeService, call: Any) -> None:
    svc.create("clean", CLEAN)
    svc.create("plain", PLAIN)
    with pytest.raises(InvalidArgument):
        call(svc)
