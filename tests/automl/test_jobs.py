"""AutoML as a job: the budget kept, the best registered as one package that the serving
runtime answers on raw rows (no trust needed), the report and scripts kept, bad requests
refused with a 4xx before any job exists, bad data failing the job with a clear reason,
and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.errors import Conflict, InvalidArgument, NotFound
from kiln.serving._runtime import Servable
from tests.jobs.conftest import stop_all

from ._data import mixed

pytestmark = pytest.mark.xdist_group("automl-jobs")

BUDGET = 15.0


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kiln.Client, object, pd.DataFrame]]:
    """One AutoML job run to the end on a mixed dataset (shared: it takes the budget)."""
    root = tmp_path_factory.mktemp("automl")
    client = kiln.Client(settings=load_settings(home=str(root / "home")))
    frame = mixed(300, task="binary")
    frame.to_csv(root / "mixed.csv", index=False)
    client.datasets.ingest("mixed", root / "mixed.csv")
    seen: list[dict[str, object]] = []
    job = client.automl("mixed@1", target="label", time_budget_s=BUDGET, n_jobs=1, name="am-mixed", on_candidate=seen.append)
    try:
        yield client, (job, seen), frame
    finally:
        stop_all(client)
        client.close()


def test_the_job_keeps_its_budget_and_registers_the_best(done: tuple[kiln.Client, object, pd.DataFrame]) -> None:
    client, (job, seen), _ = done
    assert job.state == "Completed", job.failure_reason
    assert job.duration_s is not None and job.duration_s <= BUDGET * 1.1 + 8  # generous: the machine is shared by several engineers
    assert job.outputs["model"] == "mixed-automl@1" and job.outputs["problem_type"] == "BinaryClassification"
    assert job.outputs["metric"] == "F1" and 0.6 < job.outputs["best"]["score"] <= 1.0
    assert [r["id"] for r in seen] == [r["id"] for r in sorted(job.outputs["leaderboard"], key=lambda r: r["id"])]  # progress as it grew
    assert client.models.get_version("mixed-automl@1").version == 1


def test_the_registered_package_serves_raw_rows_without_trust(done: tuple[kiln.Client, object, pd.DataFrame], tmp_path: Path) -> None:
    client, _, frame = done
    client.models.download("mixed-automl@1", tmp_path / "pkg")
    servable = Servable.load(tmp_path / "pkg", trusted=False)
    rows = frame.drop(columns="label").head(5)
    body = rows.to_csv(index=False, header=False).encode()
    reply = servable.invoke(body, "text/csv", "application/json")
    served = json.loads(reply.body)
    local = client.models.load("mixed-automl@1").predict(rows)
    assert served == [bool(v) for v in local] and len(served) == 5  # yes/no read as booleans by the lake
    records = json.dumps({"dataframe_records": rows.astype(object).where(rows.notna(), None).to_dict("records")}).encode()
    assert json.loads(servable.invoke(records, "application/json", "application/json").body)["predictions"] == [bool(v) for v in local]


def test_describe_report_and_scripts(done: tuple[kiln.Client, object, pd.DataFrame]) -> None:
    client, (job, _), _ = done
    info = client.automl.describe("am-mixed")
    assert info.model == "mixed-automl@1" and info.leaderboard[0]["rank"] == 1
    report = client.automl.report("am-mixed", html=True)
    assert report.report["model"] == "mixed-automl@1" and report.report["data"]["rows"] == 300
    assert {c["kind"] for c in report.report["data"]["columns"]} >= {"numeric", "categorical", "text", "date", "dropped", "target"}
    assert report.html is not None and "<script" not in report.html and "mixed-automl@1" in report.html
    assert client.automl.report("am-mixed").html is None
    first = info.leaderboard[0]["id"]
    assert "def build_pipeline" in client.automl.script("am-mixed", first).script
    with pytest.raises(NotFound, match="no script for candidate 'c99-none'"):
        client.automl.script("am-mixed", "c99-none")
    assert [j.name for j in client.automl.list()] == ["am-mixed"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    pd.DataFrame({"a": range(40), "b": list("xy") * 20, "label": [0, 1] * 20}).to_csv(tmp_path / "d.csv", index=False)
    c.datasets.ingest("d", tmp_path / "d.csv")
    try:
        yield c
    finally:
        stop_all(c)
        c.close()


@pytest.mark.parametrize(("args", "error", "message"), [
    ({"target": "nope"}, InvalidArgument, "dataset d@1 has no column 'nope'; its columns: a, b, label"),
    ({"target": "label", "metric": "Gini"}, InvalidArgument, "unknown metric 'Gini'"),
    ({"target": "label", "problem_type": "Regression", "metric": "F1"}, InvalidArgument, "metric F1 does not fit a Regression problem"),
    ({"target": "label", "problem_type": "Ranking"}, InvalidArgument, "unknown problem type 'Ranking'"),
    ({"target": "label", "time_budget_s": 1}, InvalidArgument, "time_budget_s must be between 5 s"),
    ({"target": "label", "n_jobs": 0}, InvalidArgument, "n_jobs"),
    ({"target": "label", "mode": "fast"}, InvalidArgument, "unknown mode 'fast'"),
    ({"target": "label", "model_name": "../x"}, InvalidArgument, "model name"),
    ({"target": ""}, InvalidArgument, "target names the column to predict"),
])
def test_bad_requests_are_refused_before_a_job_exists(client: kiln.Client, args: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        client.automl("d@1", wait=False, **args)
    assert client.jobs.list() == []


def test_missing_dataset_is_not_found(client: kiln.Client) -> None:
    with pytest.raises(NotFound, match="no dataset 'ghost@1'"):
        client.automl("ghost@1", target="label", wait=False)
    with pytest.raises(NotFound):
        client.automl.describe("ghost")


def test_data_it_cannot_learn_fails_the_job_with_the_reason(client: kiln.Client, tmp_path: Path) -> None:
    pd.DataFrame({"a": range(30), "label": ["same"] * 30}).to_csv(tmp_path / "one.csv", index=False)
    client.datasets.ingest("one", tmp_path / "one.csv")
    job = client.automl("one@1", target="label", time_budget_s=10, n_jobs=1)
    assert job.state == "Failed"
    assert job.failure_reason.startswith("target column 'label' has one value ('same') in every labelled row")
    with pytest.raises(Conflict, match="is Failed: a report exists once it has completed"):
        client.automl.report(job.name)
    assert client.models.list() == []


def test_cli_refuses_bad_input_without_a_traceback(cli: object, tmp_path: Path) -> None:
    run = cli  # type: ignore[assignment]
    (tmp_path / "d.csv").write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    assert run("datasets", "ingest", "d", str(tmp_path / "d.csv")).code == 0
    res = run("automl", "d", "--target", "nope")
    assert res.code == 2 and "dataset d@1 has no column 'nope'" in res.err and "Traceback" not in res.err + res.out
    res = run("automl", "d", "--target", "label", "--metric", "F1", "--problem-type", "Regression")
    assert res.code == 2 and "does not fit a Regression problem" in res.err
    res = run("automl-jobs", "report", "ghost")
    assert res.code != 0 and "ghost" in res.err and "Traceback" not in res.err
    ls = run("automl-jobs", "ls", "--json")
    assert ls.code == 0 and json.loads(ls.out) == []


def test_the_sagemaker_shape(done: tuple[kiln.Client, object, pd.DataFrame]) -> None:
    import kiln.sagemaker

    client, (job, _), _ = done
    automl = kiln.sagemaker.AutoML(role="ignored", target_attribute_name="label", job_objective={"MetricName": "F1"}, client=client)
    described = automl.describe_auto_ml_job("am-mixed")
    assert described["AutoMLJobStatus"] == "Completed" and described["ProblemType"] == "BinaryClassification"
    assert described["BestCandidate"]["FinalAutoMLJobObjectiveMetric"] == {"MetricName": "F1", "Value": job.outputs["best"]["score"]}
    assert len(automl.list_candidates("am-mixed")) == len(job.outputs["leaderboard"])
    with pytest.raises(InvalidArgument, match="target_attribute_name"):
        kiln.sagemaker.AutoML(role="r")
