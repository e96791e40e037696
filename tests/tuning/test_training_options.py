"""`kiln tune` takes the estimator options of `kiln train`, declared once (kiln.training._spec for
the services, SDK and REST; kiln.cli._training for the flags): each face of tuning.create has
every one of them, and one given to `kiln tune` reaches the training job of every trial."""

from __future__ import annotations

import inspect
import json

import pytest
import typer

import kiln
from kiln.core.ops import OPERATIONS
from kiln.sdk.training import Training
from kiln.sdk.tuning import Tuning
from kiln.training._spec import TRAINING_OPTIONS

from .conftest import LR_KIND, SCORE, SCRIPTS


def _flags(app: typer.Typer) -> dict[str, tuple[str, ...]]:
    return {p.name: tuple(p.opts) for p in typer.main.get_command(app).params if p.name}


def test_every_training_option_is_on_every_face_of_tuning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import kiln.training._ops  # noqa: F401 - declares the operations
    import kiln.tuning._ops  # noqa: F401 - declares the operations
    from kiln.cli import train, tune
    from kiln.core.config import load_settings
    from kiln.server.app import create_app

    for op in (OPERATIONS["training.create"], OPERATIONS["tuning.create"]):
        assert set(TRAINING_OPTIONS) <= set(op.parameters) and set(TRAINING_OPTIONS) <= set(op.body), op.name
    schemas = create_app(settings=load_settings(home=str(tmp_path))).openapi()["components"]["schemas"]
    assert set(TRAINING_OPTIONS) <= set(schemas["tuning_create_body"]["properties"])
    assert schemas["tuning_create_body"]["properties"]["instance_count"] == schemas["training_create_body"]["properties"]["instance_count"]
    sdk = set(TRAINING_OPTIONS) - {"code"} | {"source_dir", "dependencies"}  # the SDK uploads source_dir itself
    assert sdk <= set(inspect.signature(Training.run).parameters) and sdk <= set(inspect.signature(Tuning.create).parameters)
    trains, tunes = _flags(train.app), _flags(tune.app)
    shared = {n: f for n, f in trains.items() if n not in ("name", "base_job_name", "detach", "json")}
    assert "framework_version" in shared and {n: tunes.get(n) for n in shared} == shared


def test_an_unknown_option_is_a_type_error(client: kiln.Client) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'entry_pont'"):
        client.tuning.create(objective_metric_name="score", hyperparameter_ranges=LR_KIND, entry_pont="quadratic.py")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'code'"):  # the SDK uploads the source itself
        client.training.run(entry_point="quadratic.py", source_dir=SCRIPTS, code="0" * 64, wait=False)  # type: ignore[call-arg]


def test_training_options_given_to_kiln_tune_reach_every_trial(client: kiln.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kiln.cli import _common
    from kiln.cli.main import app

    monkeypatch.setenv("KILN_HOME", str(client.workspace.settings.home))
    monkeypatch.setattr(_common, "_client", client)  # the CLI keeps one client per process: use this test's
    args = ["tune", "--objective", "score", "--ranges", json.dumps(LR_KIND), "--max-jobs", "2", "--max-parallel-jobs", "2",
            "--entry-point", "quadratic.py", "--source-dir", str(SCRIPTS), "--metric-definitions", json.dumps(SCORE),
            "--hyperparameters", '{"steps": 2}', "--framework", "sklearn", "--framework-version", "1.9", "--instance-type", "ml.m5.large",
            "--model-name", "quad-model", "--env", "MODE=fast", "--max-run", "600", "--max-retries", "1", "--experiment", "opts-exp",
            "--name", "opts"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    job = client.tuning.get("opts")
    assert job.state == "Completed" and len(job.trials) == 2 and job.static_hyperparameters == {"steps": 2}
    for trial in job.trials:
        training = client.jobs.get(trial.training_job)
        spec = training.spec
        assert (spec["framework"], spec["framework_version"], spec["instance_type"], spec["model_name"]) == ("sklearn", "1.9", "ml.m5.large", "quad-model")
        assert spec["environment"] == {"MODE": "fast"} and spec["hyperparameters"]["steps"] == 2
        assert training.time_limit_s == 600 and training.max_attempts == 2
    assert client.experiments.get("opts-exp") is not None
