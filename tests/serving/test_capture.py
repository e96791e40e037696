"""Data capture: SageMaker's exact JSONL (CONTRACTS.md §4), sampling, modes, files by
endpoint / variant / hour (complete files only), shipping into the store, and capture
from a served endpoint with an inference id."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import httpx
import orjson
import pytest

from kiln.core.storage import LocalStore
from kiln.serving._capture import MAX_RECORDS, Capture, capture_line, ship
from kiln.serving._runtime import Servable
from kiln.serving._spec import CaptureSpec, EndpointSpec, VariantSpec
from tests.serving._http_support import custom_package, serve, wait_for

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_a_capture_line_is_sagemakers_jsonl() -> None:
    line = capture_line(CaptureSpec(enabled=True), request=b"1,2\n", request_type="text/csv", response=b"[3.0]", response_type="application/json",
                        when=T0 + 61, inference_id="inf-1", event_id="e-1")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2\n", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "data": "[3.0]", "encoding": "JSON"},
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-01-01T00:01:01Z", "inferenceId": "inf-1"},
        "eventVersion": "0",
    }


def test_modes_and_encodings() -> None:
    npy = b"\x93NUMPY\x01\x00"
    line = orjson.loads(capture_line(CaptureSpec(enabled=True, modes=("Input",)), request=npy, request_type="application/x-npy", response=b"x", response_type="text/csv", when=T0))
    assert set(line["captureData"]) == {"endpointInput"}
    assert line["captureData"]["endpointInput"]["encoding"] == "BASE64" and base64.b64decode(line["captureData"]["endpointInput"]["data"]) == npy
    assert "inferenceId" not in line["eventMetadata"] and len(line["eventMetadata"]["eventId"]) == 36
    bad_utf8 = orjson.loads(capture_line(CaptureSpec(enabled=True, modes=("Output",)), request=b"", request_type="", response=b"\xff,1", response_type="text/csv; charset=utf-8", when=T0))
    assert bad_utf8["captureData"]["endpointOutput"]["encoding"] == "BASE64"


@pytest.mark.parametrize(("percent", "low", "high"), [(0, 0, 0), (100, 2000, 2000), (30, 480, 720)])
def test_sampling_honours_the_percentage(tmp_path: Path, percent: float, low: int, high: int) -> None:
    random.seed(5)
    capture = Capture(CaptureSpec(enabled=True, percent=percent), endpoint="ep", run_dir=tmp_path, worker="w0")
    assert low <= sum(capture.sample() for _ in range(2000)) <= high


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 3600 * 5 + 10

    def __call__(self) -> float:
        return self.now


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_files_by_variant_and_hour_appear_only_when_complete(tmp_path: Path) -> None:
    clock = Clock()
    capture = Capture(CaptureSpec(enabled=True), endpoint="ep", run_dir=tmp_path, worker="w0", clock=clock)
    spool = tmp_path / "capture-spool" / "ep"
    for _ in range(3):
        capture.record("A", request=b"1", request_type="text/csv", response=b"[1]", response_type="application/json")
    assert [f for f in _files(spool) if not Path(f).name.startswith(".")] == []
    clock.now += 2
    capture.tick()
    assert [f for f in _files(spool) if not Path(f).name.startswith(".")] == []
    clock.now += 3.5  # past 5 s: the file is closed
    capture.tick()
    assert _files(spool) == ["A/2026/01/01/05/w0-000001.jsonl"]
    assert len((spool / "A/2026/01/01/05/w0-000001.jsonl").read_bytes().splitlines()) == 3
    capture.record("A", request=b"1", request_type="text/csv", response=b"[1]", response_type="application/json")
    clock.now += 3600  # a new hour: a new folder
    capture.record("A", request=b"1", request_type="text/csv", response=b"[1]", response_type="application/json")
    capture.record("B", request=b"1", request_type="text/csv", response=b"[1]", response_type="application/json")
    capture.close()
    assert _files(spool) == ["A/2026/01/01/05/w0-000001.jsonl", "A/2026/01/01/05/w0-000002.jsonl", "A/2026/01/01/06/w0-000003.jsonl", "B/2026/01/01/06/w0-000004.jsonl"]


def test_a_file_closes_after_its_thousandth_record(tmp_path: Path) -> None:
    capture = Capture(CaptureSpec(enabled=True), endpoint="ep", run_dir=tmp_path, worker="w0", clock=Clock())
    for _ in range(MAX_RECORDS + 1):
        capture.record("A", request=b"1", request_type="text/csv", response=b"[1]", response_type="application/json")
    done = [p for p in (tmp_path / "capture-spool").rglob("*.jsonl") if not p.name.startswith(".")]
    assert len(done) == 1 and len(done[0].read_bytes().splitlines()) == MAX_RECORDS
    for line in done[0].read_bytes().splitlines():
        orjson.loads(line)


def test_ship_moves_complete_files_into_the_store(tmp_path: Path) -> None:
    capture = Capture(CaptureSpec(enabled=True), endpoint="ep", run_dir=tmp_path / "run", worker="w0", clock=Clock())
    capture.record("A", request=b"1", request_type="text/csv", response=b"[1]", response_type="application/json")
    capture.close()
    capture.record("A", request=b"2", request_type="text/csv", response=b"[2]", response_type="application/json")  # still open
    store = LocalStore(tmp_path / "objects")
    assert ship(tmp_path / "run", store.put_file, endpoint="ep") == 1
    assert [k for k, _, _ in store.list("capture")] == ["capture/ep/A/2026/01/01/05/w0-000001.jsonl"]
    assert ship(tmp_path / "run", store.put_file, endpoint="ep", prefix="elsewhere/x") == 0
    capture.close()
    assert ship(tmp_path / "run", store.put_file, endpoint="ep", prefix="elsewhere/x") == 1
    assert [k for k, _, _ in store.list("elsewhere")] == ["elsewhere/x/A/2026/01/01/05/w0-000002.jsonl"]


def test_a_served_endpoint_captures_requests_with_their_inference_id(tmp_path: Path) -> None:
    folder = custom_package(tmp_path / "pkg", 2.0)
    spec = EndpointSpec(name="cap", variants=(VariantSpec(model_ref="c@1", folder=str(folder), trusted=True),),
                        capture=CaptureSpec(enabled=True, percent=100), run_dir=str(tmp_path / "run"))
    capture = Capture(spec.capture, endpoint="cap", run_dir=spec.run_dir, worker="w0")
    with serve(spec, {"AllTraffic": Servable.load(folder, trusted=True)}, capture=capture) as (url, _), httpx.Client(base_url=url) as http:
        for i in range(3):
            resp = http.post("/invocations", content=b"1,%d" % i, headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": f"id-{i}"})
            assert resp.status_code == 200
        assert http.post("/invocations", content=b"x", headers={"Content-Type": "text/csv"}).status_code == 400  # errors are not captured
        assert http.post("/invocations", content=b"1", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "x" * 65}).status_code == 400
    files = wait_for(lambda: [p for p in (tmp_path / "run" / "capture-spool" / "cap" / "AllTraffic").rglob("*.jsonl") if not p.name.startswith(".")], timeout=10, what="a capture file")
    lines = [orjson.loads(x) for x in files[0].read_bytes().splitlines()]
    assert [x["eventMetadata"]["inferenceId"] for x in lines] == ["id-0", "id-1", "id-2"]
    assert [x["captureData"]["endpointOutput"]["data"] for x in lines] == ["[2.0]", "[4.0]", "[6.0]"]
    assert lines[0]["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,0", "encoding": "CSV"}
