"""One tuning job on a local Ray: the driver and its trials are Ray tasks, two trials at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.conftest import stop_all

from .conftest import make_client, tune

pytestmark = pytest.mark.xdist_group("tuning-ray")


@pytest.mark.usefixtures("ray_cluster")
def test_a_tuning_job_on_ray(tmp_path: Path) -> None:
    client = make_client(tmp_path, executor="ray")
    try:
        job = tune(client, name="on-ray", max_jobs=2, max_parallel_jobs=2)
        assert job.state == "Completed", client.jobs.logs("on-ray").lines
        assert client.jobs.get("on-ray").executor == "ray"
        trials = [client.jobs.get(t.training_job) for t in job.trials]
        assert [t.state for t in trials] == ["Completed", "Completed"] and {t.executor for t in trials} == {"ray"}
        assert job.best_training_job.objective == max(t.metrics["score"] for t in trials)
    finally:
        stop_all(client)
        client.close()
