"""Run search on SQLite and PostgreSQL: filters, order, pagination, compare; bad filters."""

from __future__ import annotations

import math

import pytest

from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument, NotFound
from kiln.tracking import ExperimentService, RunService


@pytest.fixture
def seeded(ws, uniq):
    """Ten runs: auc = i/10 (run 7's is NaN), depth = i % 3, tag parity."""
    svc = RunService(ws, local_context())
    exp = f"search-{uniq}"
    ids = []
    for i in range(10):
        run = svc.create(experiment_name=exp, run_name=f"r{i}", params={"depth": i % 3}, tags={"parity": "even" if i % 2 == 0 else "odd"})
        auc = math.nan if i == 7 else i / 10
        svc.finish(run_id=run.id, metrics=[("auc", auc, 0, 1.0), ("loss", 1 - i / 10, 0, 1.0)], status="Failed" if i == 9 else "Completed")
        ids.append(run.id)
    return svc, exp, ids


def _names(page):
    return [r.name for r in page.runs]


CASES = [
    ("metrics.auc > 0.5", ["metrics.auc DESC"], ["r9", "r8", "r6"]),
    ("metrics.auc >= 0.5 and params.depth = '0'", ["metrics.auc"], ["r6", "r9"]),
    ("params.depth = '1' or tags.parity = 'odd' and metrics.loss < 0.35", ["name"], ["r1", "r4", "r7", "r9"]),
    ("status = 'Failed'", None, ["r9"]),
    ("name like 'r1%' or name in ('r2', 'r3')", ["attributes.name desc"], ["r3", "r2", "r1"]),
    ("metrics.auc is null", None, ["r7"]),
    ("not (metrics.auc < 0.8)", ["metrics.auc asc"], ["r8", "r9"]),
    ("tags.parity ilike 'EV%' and metrics.auc <= 0.2", ["name"], ["r0", "r2"]),
]


def test_filters_and_order(seeded):
    svc, exp, _ = seeded
    got = [(flt, _names(svc.search(experiment_names=[exp], filter=flt, order_by=order))) for flt, order, _ in CASES]
    assert got == [(flt, expected) for flt, _, expected in CASES]


def test_nan_metric_sorts_last_and_pages(seeded):
    svc, exp, _ = seeded
    first = svc.search(experiment_names=[exp], order_by=["metrics.auc DESC"], limit=4)
    assert _names(first) == ["r9", "r8", "r6", "r5"] and first.next_page_token
    rest = svc.search(experiment_names=[exp], order_by=["metrics.auc DESC"], limit=4, page_token=first.next_page_token)
    last = svc.search(experiment_names=[exp], order_by=["metrics.auc DESC"], limit=4, page_token=rest.next_page_token)
    assert _names(rest) == ["r4", "r3", "r2", "r1"] and _names(last) == ["r0", "r7"] and last.next_page_token is None
    assert math.isnan(last.runs[1].metrics["auc"])
    with pytest.raises(InvalidArgument, match="another search"):
        svc.search(experiment_names=[exp], limit=4, page_token=first.next_page_token)


def test_compare_side_by_side(seeded):
    svc, _, ids = seeded
    cmp = svc.compare(run_ids=ids[:3])
    assert [r.name for r in cmp.runs] == ["r0", "r1", "r2"]
    assert cmp.params["depth"] == ["0", "1", "2"] and cmp.metrics["auc"] == [0.0, 0.1, 0.2]


def test_experiments_list_and_counts(seeded):
    svc, exp, _ = seeded
    exps = ExperimentService(svc.ws, svc.ctx)
    assert exps.get(name=exp).run_count == 10
    assert exp in {e.name for e in exps.list()}
    with pytest.raises(NotFound):
        svc.search(experiment_names=[f"{exp}-missing"])


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("metrics.auc > 'high'", "compare it with a number"),
        ("params.depth > '1'", "holds text"),
        ("colour = 'red'", "unknown run attribute"),
        ("metrics.auc >", "expected a number"),
        ("metrics.auc > 1 and", "expected a field"),
        ("metrics.auc > 1; DROP TABLE kiln_runs", "cannot parse"),
        ("(metrics.auc > 1", r"expected '\)'"),
        ("metrics.auc like 'x%'", "LIKE works on"),
        ("metrics.auc > 1 metrics.loss < 2", "unexpected"),
    ],
)
def test_bad_filters_are_clear_errors(sqlite_ws, flt, message):
    with pytest.raises(InvalidArgument, match=message):
        RunService(sqlite_ws, local_context()).search(filter=flt)


def test_bad_filter_is_400_over_rest(rest):
    resp = rest.post("/v1/runs/search", json={"filter": "metrics.auc > 'x'"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_argument"


def test_run_lifecycle_on_both_backends(ws, uniq):
    svc = RunService(ws, local_context())
    run = svc.create(experiment_name=f"life-{uniq}", params={"a": 1}, tags={"t": "x"})
    svc.log_batch(run_id=run.id, metrics=[("m", float("inf"), None, 1.0), ("m", float("-inf"), None, 2.0), ("n", float("nan"), 0, 1.0)])
    done = svc.finish(run_id=run.id, status="Failed", failure_reason="boom")
    got = svc.get(run_id=run.id)
    assert (done.status, got.failure_reason, got.params, got.tags) == ("Failed", "boom", {"a": "1"}, {"t": "x"})
    assert got.metrics["m"] == float("-inf") and math.isnan(got.metrics["n"])
    assert svc.metric_history(run_id=run.id, key="m").values == [float("inf"), float("-inf")]
    page = svc.search(experiment_names=[f"life-{uniq}"], filter="metrics.m < 0 and metrics.n is null")
    assert [r.id for r in page.runs] == [run.id]
