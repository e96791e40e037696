"""Batch transform runs for real: a job whose worker processes load the model and write
``<file>.out`` (or a dataset version), with SageMaker's options."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import kiln
from kiln.core.config import load_settings
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied

pytestmark = pytest.mark.timeout(120)

X = np.random.default_rng(0).normal(size=(120, 3)).round(4)
MODEL = LogisticRegression().fit(X, (X[:, 0] + X[:, 1] > 0).astype(int))

CUSTOM = textwrap.dedent('''
    import os

    def model_fn(model_dir):
        return None

    def input_fn(body, content_type):  # text types arrive as str, as SageMaker's toolkit passes them
        text = body.decode() if isinstance(body, (bytes, bytearray)) else body
        rows = [line.split(",") for line in text.splitlines()]
        for row in rows:
            if row[0] == "bad":
                raise ValueError(f"cannot read {row[0]!r}")
        return rows

    def predict_fn(rows, model):
        with open(os.environ["TX_LOG"], "a") as log:
            log.write(rows[0][0] + "\\n")
        if any(r[0] == "crash" for r in rows) and not os.path.exists(os.environ["TX_MARK"]):
            open(os.environ["TX_MARK"], "w").close()
            os._exit(3)
        env = [os.environ.get(k, "") for k in ("SAGEMAKER_BATCH", "SAGEMAKER_BATCH_STRATEGY", "SAGEMAKER_MAX_PAYLOAD_IN_MB")]
        return [[r[0], *env] for r in rows]

    def output_fn(rows, accept):
        return "".join(",".join(r) + "\\n" for r in rows), "text/csv"
''')


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    c.models.register("lr", model=MODEL, sample_input=X[:5])
    try:
        yield c
    finally:
        c.close()


def _csv(path: Path, rows: np.ndarray, ids: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [(f"id{i}," if ids else "") + ",".join(f"{v:g}" for v in row) for i, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _custom(client: kiln.Client, tmp_path: Path) -> str:
    folder = tmp_path / "custom"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(CUSTOM)
    version = client.models.register("echo", path=folder)
    client.models.trust(version.ref)
    return version.ref


def test_csv_lines_with_an_input_filter_and_join_into_file_out(client: kiln.Client, tmp_path: Path) -> None:
    _csv(tmp_path / "in" / "a.csv", X[:70], ids=True)
    _csv(tmp_path / "in" / "sub" / "b.csv", X[70:], ids=True)
    job = client.transform(
        "lr", input=str(tmp_path / "in"), output=str(tmp_path / "out"), split_type="Line", input_filter="$[1:]",
        join_source="Input", assemble_with="Line", max_payload_mb=0.001, workers=2,
    )
    assert job.state == "Completed", job.failure_reason
    assert sorted(job.outputs["files"]) == [str(tmp_path / "out" / "a.csv.out"), str(tmp_path / "out" / "sub" / "b.csv.out")]
    rows = [line.split(",") for p in ("a.csv.out", "sub/b.csv.out") for line in (tmp_path / "out" / p).read_text().splitlines()]
    assert [r[0] for r in rows] == [f"id{i}" for i in range(70)] + [f"id{i}" for i in range(50)]
    assert [int(float(r[-1])) for r in rows] == MODEL.predict(X).tolist()
    assert job.metrics["records"] == 120
    assert not list((tmp_path / "home" / "transform").glob("*/chunks")), "the work folder goes once delivered"


def test_a_dataset_in_and_a_dataset_version_out_with_an_output_filter(client: kiln.Client) -> None:
    client.datasets.ingest("feats", pd.DataFrame(X, columns=["a", "b", "c"]))
    job = client.transform("lr", input="feats@1", output="scored", split_type="Line", strategy="SingleRecord",
                           join_source="Input", output_filter="$[3]", accept="text/csv")
    assert job.state == "Completed", job.failure_reason
    assert job.outputs["datasets"]["output"] == "scored@1"
    got = client.datasets.read("scored@1").to_pandas()
    assert list(got.columns) == ["_c0"] and got["_c0"].astype(int).tolist() == MODEL.predict(X).tolist()
    assert client.datasets.get("scored@1").lineage["parents"] == ["feats@1"]


def test_json_lines_joined_under_sagemaker_output(client: kiln.Client, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"id": i, "x": row.tolist()}) + b"\n" for i, row in enumerate(X[:10])))
    job = client.transform("lr", input=str(src), output=str(tmp_path / "out"), content_type="application/jsonlines",
                           split_type="Line", input_filter="$.x", join_source="Input", assemble_with="Line")
    assert job.state == "Completed", job.failure_reason
    out = [orjson.loads(line) for line in (tmp_path / "out" / "in.jsonl.out").read_bytes().splitlines()]
    assert [o["id"] for o in out] == list(range(10))
    assert [o["SageMakerOutput"] for o in out] == MODEL.predict(X[:10]).tolist()


def test_a_killed_worker_resumes_without_redoing_finished_chunks(client: kiln.Client, tmp_path: Path) -> None:
    ref = _custom(client, tmp_path)
    names = [f"r{i:03d}" for i in range(40)]
    names[25] = "crash"
    (tmp_path / "in.csv").write_text("".join(f"{n},1\n" for n in names))
    log, mark = tmp_path / "calls.log", tmp_path / "crashed"
    job = client.transform(ref, input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"), split_type="Line",
                           strategy="SingleRecord", max_payload_mb=0.00001, max_retries=1,
                           environment={"TX_LOG": str(log), "TX_MARK": str(mark)}, accept="text/csv")
    assert job.state == "Completed", job.failure_reason
    assert job.attempts == 2 and mark.exists()
    calls = log.read_text().split()
    assert sorted(set(calls)) == sorted(names) and calls.count("crash") == 2
    redone = len(calls) - len(names)
    assert 1 <= redone <= 3, f"{redone} records redone: only the unfinished chunk's should be"
    rows = [line.split(",") for line in (tmp_path / "out" / "in.csv.out").read_text().splitlines()]
    assert [r[0] for r in rows] == names
    assert rows[0][1:] == ["true", "SingleRecord", "1e-05"]


def test_a_record_the_model_rejects_fails_naming_it_and_writes_nothing(client: kiln.Client, tmp_path: Path) -> None:
    ref = _custom(client, tmp_path)
    (tmp_path / "in.csv").write_text("a,1\nb,1\nbad,1\nc,1\n")
    job = client.transform(ref, input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"), split_type="Line",
                           strategy="SingleRecord", environment={"TX_LOG": str(tmp_path / "l"), "TX_MARK": str(tmp_path / "m")})
    assert job.state == "Failed"
    assert "record 3" in job.failure_reason and "in.csv" in job.failure_reason and "cannot read 'bad'" in job.failure_reason
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_record_over_max_payload_fails_with_a_clear_message(client: kiln.Client, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("1,2,3\n" + ",".join(["1.5"] * 400) + "\n")
    job = client.transform("lr", input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"), split_type="Line", max_payload_mb=0.001)
    assert job.state == "Failed"
    assert "record 2" in job.failure_reason and "MaxPayloadInMB=0.001" in job.failure_reason


def test_a_non_numeric_value_fails_naming_the_records_and_the_value(client: kiln.Client, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("1,2,3\n4,NA,6\n")
    job = client.transform("lr", input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"), split_type="Line")
    assert job.state == "Failed"
    assert "records 1-2 of in.csv" in job.failure_reason and "'NA' is not a number" in job.failure_reason


@pytest.mark.parametrize(("kwargs", "error", "text"), [
    ({"model": "nope"}, NotFound, "nope"),
    ({"input": "/no/such/file.csv"}, NotFound, "/no/such/file.csv"),
    ({"split_type": "RecordIO"}, InvalidArgument, "SplitType"),
    ({"strategy": "Batch"}, InvalidArgument, "BatchStrategy"),
    ({"max_payload_mb": 101}, InvalidArgument, "at most 100"),
    ({"assemble_with": "Comma"}, InvalidArgument, "AssembleWith"),
    ({"join_source": "Output"}, InvalidArgument, "JoinSource"),
    ({"input_filter": "$[1:"}, InvalidArgument, "JSONPath"),
    ({"workers": 0}, InvalidArgument, "workers"),
    ({"input": "feats@1:parquet"}, InvalidArgument, "records as text"),
    ({"output": "feats@1"}, InvalidArgument, "output"),
])
def test_bad_requests_are_refused_before_any_job(client: kiln.Client, tmp_path: Path, kwargs: dict, error: type, text: str) -> None:
    _csv(tmp_path / "in.csv", X[:3])
    client.datasets.ingest("feats", pd.DataFrame(X[:3], columns=["a", "b", "c"]))
    args = {"model": "lr", "input": str(tmp_path / "in.csv"), "output": str(tmp_path / "out"), **kwargs}
    with pytest.raises(error, match=text.replace("[", r"\[").replace("$", r"\$")):
        client.transform(args.pop("model"), **args)
    assert client.jobs.list(kind="transform") == []


def test_untrusted_model_code_is_refused(client: kiln.Client, tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(CUSTOM)
    ref = client.models.register("untrusted", path=folder).ref
    _csv(tmp_path / "in.csv", X[:3])
    with pytest.raises(PermissionDenied, match="kiln models trust"):
        client.transform(ref, input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"))


def test_s3_in_and_s3_out(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    import fsspec

    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home"), s3_endpoint_url=s3_endpoint))
    try:
        c.models.register("lr", model=MODEL, sample_input=X[:5])
        fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3_endpoint})
        fs.pipe(f"{s3_bucket}/in/part-1.csv".removeprefix("s3://"), _csv(tmp_path / "p.csv", X[:30]).read_bytes())
        job = c.transform("lr", input=f"{s3_bucket}/in/", output=f"{s3_bucket}/out", split_type="Line", accept="text/csv")
        assert job.state == "Completed", job.failure_reason
        assert job.outputs["files"] == [f"{s3_bucket}/out/part-1.csv.out"]
        body = fs.cat(f"{s3_bucket}/out/part-1.csv.out".removeprefix("s3://")).decode()
        assert [int(float(v)) for v in body.split()] == MODEL.predict(X[:30]).tolist()
    finally:
        c.close()


def test_a_failed_transform_submitted_again_resumes_and_an_edited_input_starts_over(client: kiln.Client, tmp_path: Path) -> None:
    ref = _custom(client, tmp_path)
    names = [f"r{i:03d}" for i in range(20)]
    names[15] = "crash"
    src, out = tmp_path / "in.csv", tmp_path / "out"
    src.write_text("".join(f"{n},1\n" for n in names))
    log, mark = tmp_path / "calls.log", tmp_path / "crashed"
    args = {"input": str(src), "output": str(out), "split_type": "Line", "strategy": "SingleRecord", "max_payload_mb": 0.00001,
            "environment": {"TX_LOG": str(log), "TX_MARK": str(mark)}, "accept": "text/csv"}
    first = client.transform(ref, **args)
    assert first.state == "Failed" and "crashed its worker process" in first.failure_reason
    assert not out.exists() or not any(out.iterdir()), "nothing half-written is visible"
    assert client.transform(ref, **args).state == "Completed"
    calls = log.read_text().split()
    assert len(calls) - len(names) <= 2 and calls.count("crash") == 2  # only the unfinished chunk again
    src.write_text("".join(f"{n},1\n" for n in names[:3]))  # a new input is never answered from old chunks
    log.unlink()
    assert client.transform(ref, **args).state == "Completed"
    assert log.read_text().split() == names[:3]
    assert [r.split(",")[0] for r in (out / "in.csv.out").read_text().splitlines()] == names[:3]


def test_stopping_a_transform_ends_its_workers_and_writes_nothing(client: kiln.Client, tmp_path: Path) -> None:
    import os
    import time

    ref = _custom(client, tmp_path)
    (tmp_path / "in.csv").write_text("".join(f"r{i},1\n" for i in range(10)))
    os.mkfifo(tmp_path / "fifo")  # the model blocks opening its log (nobody reads it): a transform that hangs mid-chunk
    job = client.transform(ref, input=str(tmp_path / "in.csv"), output=str(tmp_path / "out"), split_type="Line",
                           environment={"TX_LOG": str(tmp_path / "fifo"), "TX_MARK": str(tmp_path / "m")}, wait=False)
    deadline = time.monotonic() + 60
    while "progress 0/" not in "".join(client.jobs.logs(job.name).lines) and time.monotonic() < deadline:
        time.sleep(0.1)
    client.jobs.stop(job.name)
    ended = client.transform.wait(job.name, timeout_s=60)
    assert ended.state == "Stopped"
    assert not (tmp_path / "out").exists()
