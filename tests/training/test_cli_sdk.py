"""`kiln train` and `kiln.sagemaker`: wait and stream the log by default, exit non-zero on
failure, --detach, bad input refused before a job exists; the Estimator's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kiln
import kiln.sagemaker
from kiln.core.config import load_settings
from kiln.core.errors import InvalidArgument, KilnError, NotFound
from kiln.sagemaker import SKLearn, TrainingInput, XGBoost, image_uris
from tests.faces.conftest import CliResult, cli  # noqa: F401 - the cli fixture
from tests.jobs.conftest import stop_all

from .harness import SCRIPTS, csv_label_first

pytestmark = pytest.mark.xdist_group("training-cli")

IRIS = SCRIPTS / "sklearn_iris"


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    csv_label_first("cancer")(folder)
    return folder


def _source(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(body)
    return src


def test_train_waits_streams_and_exits_by_outcome(cli: Any, tmp_path: Path, channel: Path) -> None:
    ok = _source(tmp_path, "import os\nprint('epoch 1 loss=0.5')\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('x')\n")
    res: CliResult = cli("train", "--entry-point", "train.py", "--source-dir", str(ok), "--channel", f"train={channel}",
                         "--metric-definitions", '[{"Name": "loss", "Regex": "loss=([0-9.]+)"}]', "--model-name", "toy")
    assert res.code == 0, res.err
    assert "epoch 1 loss=0.5" in res.out and "model registered as toy@1" in res.out
    (ok / "train.py").write_text("import sys\nprint('diverged')\nsys.exit(4)\n")
    res = cli("train", "--entry-point", "train.py", "--source-dir", str(ok), "--channel", f"train={channel}")
    assert res.code == 1 and "diverged" in res.out and "exited with code 4" in res.err


def test_train_detach_returns_the_name_at_once(cli: Any, tmp_path: Path, channel: Path) -> None:
    src = _source(tmp_path, "import time\ntime.sleep(30)\n")
    res = cli("train", "--entry-point", "train.py", "--source-dir", str(src), "--channel", f"train={channel}", "--detach", "--name", "bg")
    assert res.code == 0 and res.out.strip() == "bg"
    assert cli("jobs", "stop", "bg").code == 0
    res = cli("jobs", "describe", "bg", "--json")
    assert '"state": "Stopped"' in res.out


@pytest.mark.parametrize(("args", "words"), [
    (["--hyperparameters", "{not json"], "hyperparameters are not valid JSON"),
    (["--hyperparameters", "[1, 2]"], "must be a JSON object"),
    (["--metric-definitions", '[{"Name": "x", "Regex": "("}]'], "Regex"),
    (["--channel", "train=ghost@1"], "no dataset 'ghost"),
    (["--channel", "train"], "NAME=SOURCE"),
    (["--entry-point", "missing.py"], "entry point 'missing.py' not found"),
    (["--algorithm", "nope"], "exactly one"),
])
def test_bad_train_requests_fail_before_a_job_exists(cli: Any, tmp_path: Path, channel: Path, args: list[str], words: str) -> None:
    src = _source(tmp_path, "print(1)\n")
    base = ["--source-dir", str(src), "--channel", f"train={channel}"]
    if "--entry-point" not in args:
        base = ["--entry-point", "train.py", *base]
    res = cli("train", *base, *args)
    assert res.code in (2, 3), (res.out, res.err)  # InvalidArgument, NotFound
    assert words in res.err and "Traceback" not in res.err
    assert cli("jobs", "ls", "--json").out.strip() == "[]"


@pytest.fixture
def client(tmp_path: Path) -> kiln.Client:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    yield c
    stop_all(c)
    c.close()


def test_the_sagemaker_estimator_shape(client: kiln.Client, tmp_path: Path, channel: Path) -> None:
    est = SKLearn(entry_point="train.py", source_dir=str(IRIS), role="arn:aws:iam::1:role/x", instance_type="ml.m5.large",
                  framework_version="1.2-1", py_version="py3", hyperparameters={"max_leaf_nodes": 8}, sagemaker_session=None, client=client)
    assert est.model_data is None
    iris = tmp_path / "iris"
    iris.mkdir()
    csv_label_first("iris", files=2)(iris)
    est.fit({"train": TrainingInput(str(iris), content_type="text/csv")}, logs=False)
    job = est.latest_training_job.describe()
    assert job.state == "Completed" and job.spec["framework"] == "sklearn"
    assert est.model_data == job.outputs["model"] and client.models.get_version(est.model_data).flavor == "sagemaker"


def test_a_builtin_through_image_uris_and_a_failing_fit(client: kiln.Client, channel: Path, tmp_path: Path) -> None:
    uri = image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    est = kiln.sagemaker.Estimator(image_uri=uri, role="r", instance_count=1, instance_type="ml.m5.xlarge", client=client,
                                   hyperparameters={"num_round": 5, "objective": "binary:logistic"})
    assert est.algorithm == "xgboost"
    est.fit({"train": str(channel)}, logs=False)
    assert est.model_data.startswith("xgboost@")
    bad = XGBoost(entry_point="train.py", source_dir=str(_source(tmp_path, "raise SystemExit(3)\n")), client=client)
    with pytest.raises(KilnError, match="failed"):
        bad.fit(str(channel), logs=False)
    with pytest.raises(InvalidArgument, match="no built-in algorithm"):
        image_uris.retrieve("blazingtext")
    with pytest.raises(NotFound):
        kiln.sagemaker.Estimator(algorithm="knn", client=client).fit({"train": "ghost@1"})


def test_a_single_host_builtin_refuses_several_hosts(client: kiln.Client, channel: Path) -> None:
    with pytest.raises(InvalidArgument, match="trains on one host"):
        client.training.run(algorithm="kmeans", instance_count=2, channels={"train": str(channel)}, hyperparameters={"k": 2})
    assert client.jobs.list() == []
