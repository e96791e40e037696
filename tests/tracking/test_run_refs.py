"""Run references (DESIGN.md §4) and run inputs as model lineage, on both transports."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import kiln
from kiln.core.errors import InvalidArgument, NotFound


def _run(client, experiment, name):
    with client.runs.start(experiment, run_name=name) as run:
        run.log_metric("acc", 0.5)
    return run.id


def test_a_run_is_named_by_id_prefix_experiment_and_name(client):
    a = _run(client, "refs", "alpha")
    b = _run(client, "refs", "beta")
    for ref in (a, a[:6], a[:12], "refs/alpha", "alpha"):
        assert client.runs.get(ref).id == a, ref
        assert client.runs.metric_history(ref, "acc").run_id == a, ref
        assert client.runs.list_artifacts(ref) == []
    assert [r.id for r in client.runs.compare(["refs/alpha", b[:8], "beta"]).runs] == [a, b, b]
    assert client.runs.resolve("refs/beta").id == b


def test_ambiguous_names_are_refused_with_the_candidates(client):
    first = _run(client, "dup", "same")
    second = _run(client, "dup", "same")
    other = _run(client, "dup2", "solo")
    with pytest.raises(InvalidArgument) as info:
        client.runs.get("dup/same")
    assert "ambiguous" in info.value.message and first[:12] in info.value.message and second[:12] in info.value.message
    _run(client, "dup3", "solo")
    with pytest.raises(InvalidArgument, match="ambiguous"):
        client.runs.get("solo")  # one name in two experiments: name the experiment
    assert client.runs.get("dup2/solo").id == other
    with pytest.raises(NotFound):
        client.runs.get("dup/ghost")
    with pytest.raises(NotFound):
        client.runs.get("ffffff")  # a prefix no id has (and no run is named so)
    with pytest.raises(NotFound):
        client.runs.get("abc")  # too short for a prefix: a run name, which no run has
    for bad in ("../x", "a/b/c", "dup/../same", "", "x" * 300):
        with pytest.raises(InvalidArgument):
            client.runs.get(bad)


def test_an_ambiguous_prefix_lists_the_runs(client, sqlite_ws):
    import sqlalchemy as sa

    from kiln.tracking._tables import runs

    ids = [_run(client, "pfx", f"p{i}") for i in range(2)]
    with sqlite_ws.db.engine.begin() as conn:  # make two ids share a prefix
        conn.execute(sa.update(runs).where(runs.c.id == ids[1]).values(id="abcdef" + ids[1][6:]))
        conn.execute(sa.update(runs).where(runs.c.id == ids[0]).values(id="abcdef" + ids[0][6:]))
    with pytest.raises(InvalidArgument, match="ambiguous"):
        client.runs.get("abcdef")
    assert client.runs.get("abcdef" + ids[0][6:12]).name == "p0"


def test_logging_and_finishing_by_experiment_and_name(client):
    run = client.runs.create("byname", run_name="live")
    client.runs.log_batch("byname/live", metrics=[("loss", 1.0, 0, 1.0)], params={"lr": 0.1})
    client.runs.log_artifact("byname/live", "a.txt", b"x")
    assert client.runs.read_artifact("byname/live", "a.txt") == b"x"
    assert client.runs.finish("byname/live").status == "Completed"
    detail = client.runs.get(run.id)
    assert detail.params == {"lr": "0.1"} and detail.metrics == {"loss": 1.0}


def test_rest_takes_an_encoded_name_as_a_query_or_body_value(rest):
    run = rest.post("/v1/runs", json={"experiment_name": "wire", "run_name": "r1"}).json()
    got = rest.post("/v1/runs/resolve", json={"ref": "wire/r1"})
    assert got.status_code == 200 and got.json()["id"] == run["id"]
    assert rest.get(f"/v1/runs/{run['id'][:8]}").json()["id"] == run["id"]
    assert rest.get("/v1/runs/r1").json()["id"] == run["id"]
    assert rest.post("/v1/runs/compare", json={"run_ids": ["wire/r1"]}).json()["runs"][0]["id"] == run["id"]
    assert rest.post("/v1/runs/resolve", json={"ref": "wire/ghost"}).status_code == 404


@pytest.fixture
def cancer(client):
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    client.datasets.ingest("cancer", frame)
    return frame


def test_a_dataset_read_inside_a_run_is_its_input_and_the_models_lineage(client, cancer):
    with kiln.Run("train", run_name="fit", client=client) as run:
        table = client.datasets.read("cancer").to_pandas()
        client.datasets.head("cancer@1", n=2)
        client.datasets.read("cancer@1")
        model = LogisticRegression().fit(table[["x"]], table["y"])
        version = client.models.register("cancer-clf", model=model, sample_input=table[["x"]][:2])
    assert version.lineage.run_id == run.id and version.lineage.datasets == ["cancer@1"]
    assert client.runs.get("train/fit").inputs == ["cancer@1"]
    # With run_id= of that run (any reference), after it ended: the same default; datasets= overrides.
    again = client.models.register("cancer-clf", model=model, run_id="train/fit")
    assert again.lineage.run_id == run.id and again.lineage.datasets == ["cancer@1"]
    explicit = client.models.register("cancer-clf", model=model, run_id=run.id[:8], datasets=["other@2"])
    assert explicit.lineage.datasets == ["other@2"]


def test_reads_outside_a_run_record_nothing(client, cancer):
    client.datasets.read("cancer")
    run = client.runs.create("quiet")
    assert client.runs.get(run.id).inputs == []
    with pytest.raises(InvalidArgument):
        client.runs.log_inputs(run.id, ["cancer"])  # an input is an exact version
    assert client.runs.log_inputs(run.id, ["cancer@1", "cancer@1"]).datasets == ["cancer@1"]


def test_cli_shows_inputs_and_whole_ids_at_80_columns(cli, sqlite_ws, monkeypatch):
    import kiln.cli._common as common
    from kiln.core.context import local_context
    from kiln.tracking import RunService

    svc = RunService(sqlite_ws, local_context())
    name = "a-rather-long-run-name-that-must-stay-whole"
    run = svc.create(experiment_name="a-long-experiment-name", run_name=name)
    svc.log_inputs(run_id=run.id, datasets=["cancer@1"])
    svc.finish(run_id=run.id, metrics=[(f"metric_{i}", 0.5, 0, 1.0) for i in range(6)])
    monkeypatch.setattr(common.console, "width", 80)
    code, out, _ = cli("runs", "ls")
    assert code == 0 and run.id in out and name in out  # whole, even where the line passes 80
    short = svc.create(experiment_name="e", run_name="short")
    code, out, _ = cli("runs", "ls", "e")
    assert code == 0 and short.id in out and max(len(line) for line in out.splitlines()) <= 80
    code, out, _ = cli("runs", "show", f"a-long-experiment-name/{name}")
    assert code == 0 and run.id in out and "cancer@1" in out
    code, out, _ = cli("runs", "compare", run.id[:6], name)
    assert code == 0 and "metrics.metric_0" in out
