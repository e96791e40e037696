"""The script corpus as real Kiln training jobs: the runner lays out the folder, streams
the log, captures metrics, records failures and registers model/ with the job's
provenance, so the model loads in a worker without an admin's trust."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln.core.errors import NotFound
from kiln.core.config import load_settings
from kiln.registry._service import ModelService
from tests.jobs.conftest import stop_all

from .harness import CASES, SCRIPTS, Case

pytestmark = pytest.mark.xdist_group("training-jobs")

# One of each kind of script: model_fn beside the code, native XGBoost and LightGBM files,
# a helper package, a failure file, kiln.load_run, metric definitions, a shell entry point.
AS_JOBS = ("breast_cancer_inference", "xgboost_native", "lightgbm_native", "helper_dependency", "failure_file", "kiln_load_run", "printed_metrics", "shell_entry")


@pytest.fixture
def client(tmp_path: Path) -> kiln.Client:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    yield c
    stop_all(c)
    c.close()


def _channels(case: Case, tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, write in case.channels.items():
        folder = tmp_path / "channels" / name
        folder.mkdir(parents=True)
        write(folder)
        out[name] = str(folder)
    return out


@pytest.mark.parametrize("case", [c for c in CASES if c.name in AS_JOBS], ids=str)
def test_script_as_a_job(case: Case, client: kiln.Client, tmp_path: Path) -> None:
    for module in case.requires:
        pytest.importorskip(module)
    base = SCRIPTS / case.name
    job = client.training.run(
        entry_point=case.entry_point, source_dir=base / case.source_dir, dependencies=[base / d for d in case.dependencies],
        hyperparameters=case.hyperparameters, channels=_channels(case, tmp_path), framework=case.framework,
        metric_definitions=list(case.metric_definitions) or None, model_name=case.name.replace("_", "-"), logs=False,
    )
    log = "\n".join(client.jobs.logs(job.name, limit=10_000).lines)
    if case.exit_code:
        assert job.state == "Failed", log
        assert case.failure in job.failure_reason and "model" not in job.outputs
        with pytest.raises(NotFound):
            client.models.get(case.name.replace("_", "-"))
        return
    assert job.state == "Completed", log
    for name in case.metrics:
        assert name in job.metrics, (name, job.metrics)
    run = client.runs.get(job.run_id)
    assert run.status == "Completed" and set(case.run_metrics) <= set(run.metrics)
    if case.predict is None:
        return
    ref = job.outputs["model"]
    version = client.models.get_version(ref)
    assert version.flavor == "sagemaker" and version.trusted_by == f"job:{job.name}"
    assert version.lineage.job == job.name and version.lineage.extra["source_sha256"] == job.spec["code"]
    X, y = case.predict.rows()
    with ModelService(client.workspace, client._t.ctx).start_worker(ref=ref) as predictor:  # a worker process: trusted by the job
        pred = np.asarray(predictor.predict(X.to_numpy()))
    assert case.predict.score(y, pred) >= case.predict.at_least


def test_checkpoints_are_restored_on_a_retry_and_output_data_is_kept(client: kiln.Client, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        "import os, sys\n"
        "ck = '/'.join([os.environ['SAGEMAKER_BASE_DIR'], 'checkpoints', 'epoch.txt'])\n"
        "if not os.path.exists(ck):\n"
        "    open(ck, 'w').write('3')\n"
        "    sys.exit('spot instance reclaimed')\n"
        "print('resumed at epoch', open(ck).read())\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DATA_DIR'], 'report.txt'), 'w').write('fine')\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'weights.txt'), 'w').write('w')\n"
    )
    job = client.training.run(entry_point="train.py", source_dir=src, max_retries=1, logs=False)
    assert job.state == "Completed" and job.attempts == 2, job.failure_reason
    assert "resumed at epoch 3" in client.jobs.logs(job.name).lines
    prefix = job.outputs["output_data"]
    assert client.workspace.store.read_bytes(prefix + "report.txt") == b"fine"
