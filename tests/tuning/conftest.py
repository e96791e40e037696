"""Tuning jobs run for real: the driver in a job runner, each trial a training job of a tiny script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kiln
from kiln.core.config import load_settings
from tests.jobs.conftest import stop_all

SCRIPTS = Path(__file__).parent / "scripts"
SCORE = [{"Name": "score", "Regex": r"score=([-0-9.e]+)"}]
LR_KIND = {
    "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.0", "MaxValue": "1.0", "ScalingType": "Linear"}],
    "CategoricalParameterRanges": [{"Name": "kind", "Values": ["a", "b"]}],
}


def make_client(tmp_path: Path, **settings: Any) -> kiln.Client:
    return kiln.Client(settings=load_settings(home=str(tmp_path / "home"), **settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    c = make_client(tmp_path)
    try:
        yield c
    finally:
        stop_all(c)
        c.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[kiln.Client]:
    """A client on SQLite, or on a PostgreSQL schema of its own."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
        c = make_client(tmp_path, database_url=url)
    else:
        c = make_client(tmp_path)
    try:
        yield c
    finally:
        stop_all(c)
        c.close()


def tune(client: kiln.Client, **kw: Any) -> Any:
    """A tuning job over scripts/quadratic.py (waited for unless ``wait=False``)."""
    args: dict[str, Any] = {
        "entry_point": "quadratic.py", "source_dir": SCRIPTS, "objective_metric_name": "score", "metric_definitions": SCORE,
        "hyperparameter_ranges": LR_KIND, "max_jobs": 4, "max_parallel_jobs": 2, "random_seed": 7, "wait": True,
    }
    args.update(kw)
    return client.tuning.create(**args)
