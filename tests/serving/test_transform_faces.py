"""Batch transform from the faces: SageMaker's Transformer, the CLI, progress."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.progress import reporting

from .test_transform import MODEL, X, _csv

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    c.models.register("lr", model=MODEL, sample_input=X[:5])
    try:
        yield c
    finally:
        c.close()


def test_sagemaker_transformer_runs_a_transform(client: kiln.Client, tmp_path: Path) -> None:
    from kiln.sagemaker import Transformer

    _csv(tmp_path / "in" / "test.csv", X, ids=True)
    t = Transformer(model_name="lr@1", instance_count=2, instance_type="ml.m5.large", strategy="MultiRecord",
                    assemble_with="Line", output_path=str(tmp_path / "out"), accept="text/csv", max_payload=1, client=client)
    t.transform(str(tmp_path / "in"), content_type="text/csv", split_type="Line", input_filter="$[1:]", join_source="Input")
    job = t.latest_transform_job.describe()
    assert job.state == "Completed" and job.spec["workers"] == 2
    lines = (tmp_path / "out" / "test.csv.out").read_text().splitlines()
    assert [int(float(line.rsplit(",", 1)[1])) for line in lines] == MODEL.predict(X).tolist()


def test_progress_reaches_one_in_increasing_fractions(client: kiln.Client, tmp_path: Path) -> None:
    _csv(tmp_path / "in.csv", np.tile(X, (20, 1)))
    seen: list[float] = []
    with reporting(seen.append):
        job = client.transform("lr", input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"), split_type="Line", max_payload_mb=0.01)
    assert job.state == "Completed", job.failure_reason
    assert seen[-1] == 1.0 and len(seen) >= 3 and seen == sorted(seen)


def test_the_cli_runs_a_transform(client: kiln.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kiln.cli import _common
    from kiln.cli.main import app

    monkeypatch.setattr(_common, "_client", client)
    _csv(tmp_path / "in.csv", X[:10])
    result = CliRunner().invoke(app, ["transform", "lr@1", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out"),
                                      "--split-type", "Line", "--accept", "text/csv", "--assemble-with", "Line", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert [int(float(v)) for v in (tmp_path / "out" / "in.csv.out").read_text().split()] == MODEL.predict(X[:10]).tolist()
    bad = CliRunner().invoke(app, ["transform", "lr@1", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o2"), "--strategy", "Many"])
    assert bad.exit_code != 0 and "BatchStrategy" in str(bad.exception)  # kiln's run() prints it as one line
