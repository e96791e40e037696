"""Tracking's declared operations agree on both transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import kiln
from tests.faces.parity import errors_agree, transports, walk

pytestmark = pytest.mark.xdist_group("parity-tracking")

NAN, INF = float("nan"), float("inf")
GHOST_RUN = "0" * 32


def run_id(name: str) -> Callable[[kiln.Client], str]:
    """The id of run ``name`` of experiment ``exp`` on this client's workspace (ids are random)."""

    def lookup(client: kiln.Client) -> str:
        page = client.runs.search("exp", filter=f"attributes.run_name = '{name}'")
        assert len(page.runs) == 1, name
        return page.runs[0].id

    return lookup


SEEDED = run_id("seeded")

EXAMPLES: dict[str, dict[str, Any]] = {
    "experiments.create": {"name": "fresh", "description": "a new one", "tags": {"owner": "ml"}},
    "experiments.get": {"name": "exp"},
    "experiments.list": {},
    "runs.create": {"experiment_name": "exp", "run_name": "second", "params": {"lr": "0.1"}, "tags": {"team": "b"}, "source": "parity"},
    "runs.resolve": {"ref": "exp/seeded"},
    "runs.log_inputs": {"run_id": SEEDED, "datasets": ["iris-data@1", "iris-data@1"]},
    # NaN and infinity travel as strings; a missing step continues, a missing timestamp is now.
    "runs.log_batch": {
        "run_id": SEEDED,
        "metrics": [("train/loss", 0.25, 2, 3.0), ("train/loss", NAN, None, 4.0), ("acc", INF, 0, 5.0), ("acc", 0.5, 1, None)],
        "params": {"epochs": "3"}, "tags": {"stage": "dev"},
    },
    "runs.metric_history": {"run_id": SEEDED, "key": "train/loss"},
    "runs.get": {"run_id": SEEDED},
    "runs.artifacts": {"run_id": SEEDED},
    "runs.search": {"experiment_names": ["exp"], "filter": "params.depth = '5'", "order_by": ["attributes.run_name ASC"], "limit": 10},
    "runs.compare": {"run_ids": lambda c: [run_id("seeded")(c), run_id("second")(c)]},
    "runs.finish": {"run_id": SEEDED, "status": "Completed", "metrics": [("final", 1.0, None, 6.0)], "params": {"seed": "7"}},
    "evaluations.evaluate": {"model": "iris@1", "target": "target", "dataset": "iris-data", "experiment": "evals", "run_name": "eval-1"},
    "evaluations.compare": {"models": ["iris@1", "iris@2"], "target": "target", "dataset": "iris-data", "experiment": "evals"},
}


def _seeder(table: Path) -> Callable[[kiln.Client], None]:
    def seed(client: kiln.Client) -> None:
        run = client.runs.create("exp", run_name="seeded", params={"depth": 5}, tags={"team": "a"})
        client.runs.log_batch(run.id, metrics=[("train/loss", 0.75, 0, 1.0), ("train/loss", 0.5, 1, 2.0)])
        client.runs.log_artifact(run.id, "notes/readme.txt", b"hello", media_type="text/plain")
        client.datasets.ingest("iris-data", str(table))
        X, y = load_iris(return_X_y=True, as_frame=True)
        for c in (0.5, 1.0):
            client.models.register("iris", model=LogisticRegression(C=c, max_iter=300).fit(X, y), sample_input=X[:3])

    return seed


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[kiln.Client, kiln.Client]]:
    table = tmp_path / "iris.parquet"
    load_iris(as_frame=True).frame.to_parquet(table)
    with transports(tmp_path, _seeder(table)) as pair:
        yield pair


def test_both_transports_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    walk(clients, EXAMPLES)


# Calls that fail, each failing alike in-process and over HTTP (same error, same message;
# none whose message holds a random run id).
FAILURES: dict[str, dict[str, Any]] = {
    "experiments.get": {"name": "ghost"},
    "experiments.create": {"name": "exp"},  # exists
    "runs.create": {"experiment_name": "exp", "parent_run_id": GHOST_RUN},
    "runs.get": {"run_id": GHOST_RUN},
    "runs.resolve": {"ref": "exp/ghost"},
    "runs.resolve/bad ref": {"ref": "../etc"},
    "runs.log_inputs": {"run_id": SEEDED, "datasets": ["iris-data"]},  # not an exact version
    "runs.log_batch": {"run_id": GHOST_RUN, "metrics": [("loss", 1.0, 0, 1.0)]},
    "runs.log_batch/bad key": {"run_id": SEEDED, "metrics": [("bad..key", 1.0, 0, 1.0)]},
    "runs.finish": {"run_id": GHOST_RUN},
    "runs.finish/bad status": {"run_id": SEEDED, "status": "Paused"},
    "runs.metric_history": {"run_id": GHOST_RUN, "key": "loss"},
    "runs.metric_history/bad key": {"run_id": SEEDED, "key": "a//b"},
    "runs.search": {"experiment_names": ["ghost"]},
    "runs.search/bad filter": {"filter": "metrics.auc >"},
    "runs.search/limit": {"limit": 0},
    "runs.compare": {"run_ids": []},
    "runs.artifacts": {"run_id": GHOST_RUN},
    "evaluations.evaluate": {"model": "ghost@1", "target": "target", "dataset": "iris-data"},
    "evaluations.evaluate/no data": {"model": "iris@1", "target": "target"},
    "evaluations.compare": {"models": ["iris@1"], "target": "target", "dataset": "iris-data"},
}


def test_errors_agree(clients: tuple[kiln.Client, kiln.Client]) -> None:
    # One pair of seeded workspaces for all cases (seeding registers models and a dataset).
    for case, args in FAILURES.items():
        errors_agree(clients, case.split("/", 1)[0], args)
