"""The worker's HTTP face over real HTTP on loopback: uvicorn (uvloop + httptools) in a
thread serving ServingApp with real servables (a LogisticRegression and a model with
handlers that can fail or hang)."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from kiln.serving._app import ServingApp
from kiln.serving._runtime import Servable
from kiln.serving._spec import EndpointSpec, VariantSpec
from tests.serving._http_support import custom_package, logistic_package, serve, wait_for


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("models")
    folder, model, X = logistic_package(root / "lr")
    custom = custom_package(root / "custom", 2.0)
    return {
        "lr": Servable.load(folder, trusted=False, name="lr"), "custom": Servable.load(custom, trusted=True, name="custom"),
        "lr_folder": folder, "custom_folder": custom, "model": model, "X": X,
    }


def _spec(models: dict[str, Any], **fields: Any) -> EndpointSpec:
    variants = fields.pop("variants", None) or (
        VariantSpec(name="lr", model_ref="lr@1", folder=str(models["lr_folder"])),
        VariantSpec(name="custom", model_ref="custom@3", folder=str(models["custom_folder"]), trusted=True, weight=0),
    )
    return EndpointSpec(name="ep", variants=variants, **fields)


@pytest.fixture(scope="module")
def endpoint(models: dict[str, Any]) -> Iterator[tuple[str, ServingApp]]:
    with serve(_spec(models, timeout_s=1.0, max_payload_bytes=4096), {"lr": models["lr"], "custom": models["custom"]}, on_stuck=lambda: None) as served:
        yield served


@pytest.fixture
def http(endpoint: tuple[str, ServingApp]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoint[0], timeout=10) as client:
        yield client


def _csv(rows: Any) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def test_health_routes_answer_and_carry_a_request_id(http: httpx.Client) -> None:
    for path in ("/ping", "/health", "/v2/health/live", "/v2/health/ready", "/v2/models/lr/ready"):
        resp = http.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["x-request-id"]
    assert http.get("/ping", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    ids = {http.get("/ping").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_csv_and_json_invocations_give_the_models_predictions(http: httpx.Client, models: dict[str, Any]) -> None:
    X, model = models["X"][:7], models["model"]
    expected = model.predict(X).tolist()
    resp = http.post("/invocations", content=_csv(X), headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200 and resp.json() == expected
    assert resp.headers["x-amzn-invoked-production-variant"] == "lr"
    assert http.post("/invocations", content=orjson.dumps(X.tolist()), headers={"Content-Type": "application/json"}).json() == expected
    mlflow = http.post("/invocations", json={"dataframe_split": {"columns": list("abcd"), "data": X.tolist()}})
    assert mlflow.json() == {"predictions": expected}


def test_v2_infer_metadata_and_unknown_models(http: httpx.Client, models: dict[str, Any]) -> None:
    X = models["X"][:3]
    body = {"id": "r1", "inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": X.ravel().tolist()}]}
    out = http.post("/v2/models/lr/infer", json=body).json()
    assert out["model_name"] == "lr" and out["id"] == "r1"
    assert out["outputs"][0]["data"] == models["model"].predict(X).tolist()
    assert http.get("/v2/models/lr").json()["name"] == "lr"
    assert http.post("/v2/models/custom/versions/3/infer", json={"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}).status_code == 200
    missing = http.post("/v2/models/nope/infer", json=body)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    bad = http.post("/v2/models/lr/infer", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]


@pytest.mark.parametrize(
    ("body", "ctype", "accept", "status", "words"),
    [
        (b"1,2,x,4", "text/csv", None, 400, "not a number"),
        (b"[[1,2,3", "application/json", None, 400, "JSON"),
        (b"", "text/csv", None, 400, "empty"),
        (b"1,2,3", "text/csv", None, 400, "column"),
        (b"1,2,3,4", "application/x-unknown", None, 415, "content type"),
        (b"1,2,3,4", "text/csv", "application/x-unknown", 406, "accept"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(http: httpx.Client, body: bytes, ctype: str, accept: str | None, status: int, words: str) -> None:
    headers = {"Content-Type": ctype, **({"Accept": accept} if accept else {})}
    resp = http.post("/invocations", content=body, headers=headers)
    assert resp.status_code == status
    message = resp.json()["error"]["message"]
    assert words.lower() in message.lower() and "Traceback" not in resp.text
    assert http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"}).status_code == 200


def test_a_model_error_answers_424_with_its_message_and_the_worker_keeps_serving(http: httpx.Client) -> None:
    resp = http.post("/invocations", content=b"999,0", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "custom"})
    assert resp.status_code == 424
    assert "the model refuses 999" in resp.json()["error"]["message"] and "Traceback" not in resp.text
    ok = http.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "custom"})
    assert ok.status_code == 200 and ok.json() == [6.0]


def test_a_request_past_the_timeout_gets_a_clear_error_and_asks_for_recycling(models: dict[str, Any]) -> None:
    stuck: list[bool] = []
    spec = _spec(models, timeout_s=0.5)
    with serve(spec, {"lr": models["lr"], "custom": models["custom"]}, on_stuck=lambda: stuck.append(True)) as (url, app):
        start = time.monotonic()
        resp = httpx.post(url + "/invocations", content=b"777,0", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "custom"}, timeout=10)
        assert time.monotonic() - start < 5
        assert resp.status_code == 424 and "did not answer within 0.5 s" in resp.json()["error"]["message"]
        assert stuck == [True] and app.stuck
        assert httpx.post(url + "/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"}).status_code == 200


def _raw(url: str, request: bytes, *, read_after: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_after) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def test_an_oversized_body_is_refused_413_before_it_is_read(endpoint: tuple[str, ServingApp], http: httpx.Client) -> None:
    url = endpoint[0]
    # Only the headers are sent: the answer comes without the server waiting for the 10 MB.
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 10000000\r\n\r\n"
    answer = _raw(url, head)
    assert answer.startswith(b"HTTP/1.1 413") and b"at most 4096 bytes" in answer and b"connection: close" in answer.lower()
    # A chunked body is counted as it arrives.
    chunks = b"".join(b"%x\r\n%s\r\n" % (1000, b"1" * 1000) for _ in range(5))
    answer = _raw(url, b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert answer.startswith(b"HTTP/1.1 413")
    assert http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"}).status_code == 200


def test_custom_attributes_pass_through_and_are_limited(http: httpx.Client) -> None:
    resp = http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "trace=7"})
    assert resp.status_code == 200 and resp.headers["x-amzn-sagemaker-custom-attributes"] == "trace=7"
    long = http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "a" * 1025})
    assert long.status_code == 400 and "1024" in long.json()["error"]["message"]


def test_target_variant_picks_one_and_an_unknown_one_is_named(http: httpx.Client) -> None:
    resp = http.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "custom"})
    assert resp.headers["x-amzn-invoked-production-variant"] == "custom" and resp.json() == [6.0]
    bad = http.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "zzz"})
    assert bad.status_code == 400 and "zzz" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example"}, {"Host": "127.0.0.1.nip.io"}, {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}],
)
def test_foreign_hosts_and_cross_site_requests_are_refused(http: httpx.Client, headers: dict[str, str]) -> None:
    resp = http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv", **headers})
    assert resp.status_code == 403


def test_own_origin_and_loopback_names_are_served(http: httpx.Client, endpoint: tuple[str, ServingApp]) -> None:
    port = endpoint[0].rsplit(":", 1)[1]
    for headers in ({"Host": f"localhost:{port}"}, {"Host": "127.0.0.2"}, {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}):
        assert http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv", **headers}).status_code == 200, headers
    assert http.get("/ping", headers={"Host": "127.0.0.1:1"}).status_code == 403


def test_weights_split_the_traffic(models: dict[str, Any]) -> None:
    variants = (
        VariantSpec(name="a", model_ref="c@1", folder=str(models["custom_folder"]), trusted=True, weight=1),
        VariantSpec(name="b", model_ref="c@1", folder=str(models["custom_folder"]), trusted=True, weight=3),
    )
    with serve(_spec(models, variants=variants), {"a": models["custom"], "b": models["custom"]}) as (url, _), httpx.Client(base_url=url) as http:
        seen = Counter(http.post("/invocations", content=b"1", headers={"Content-Type": "text/csv"}).headers["x-amzn-invoked-production-variant"] for _ in range(400))
    assert set(seen) == {"a", "b"} and 0.65 < seen["b"] / 400 < 0.85


def test_metrics_count_invocations_and_errors_per_variant(models: dict[str, Any]) -> None:
    with serve(_spec(models), {"lr": models["lr"], "custom": models["custom"]}) as (url, _), httpx.Client(base_url=url) as http:
        for _ in range(3):
            http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"})
        http.post("/invocations", content=b"x", headers={"Content-Type": "text/csv"})
        http.post("/invocations", content=b"999", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "custom"})
        text = http.get("/metrics").text
    assert 'kiln_invocations_total{endpoint="ep",variant="lr"} 4' in text
    assert 'kiln_invocation_4xx_errors_total{endpoint="ep",variant="lr"} 1' in text
    assert 'kiln_invocation_4xx_errors_total{endpoint="ep",variant="custom"} 1' in text
    assert 'kiln_model_latency_seconds_count{endpoint="ep",variant="lr"} 4' in text
    assert 'kiln_overhead_latency_seconds_bucket{endpoint="ep",variant="lr",le="+Inf"} 4' in text


def test_a_shadow_variant_gets_a_copy_whose_answer_is_never_returned(models: dict[str, Any], tmp_path: Path) -> None:
    spec = _spec(models, variants=(VariantSpec(name="lr", model_ref="lr@1", folder=str(models["lr_folder"])),),
                 shadow=VariantSpec(name="shadow", model_ref="custom@3", folder=str(models["custom_folder"]), trusted=True), run_dir=str(tmp_path))
    with serve(spec, {"lr": models["lr"], "shadow": models["custom"]}) as (url, app), httpx.Client(base_url=url) as http:
        answers = [http.post("/invocations", content=b"1,1,1,1", headers={"Content-Type": "text/csv"}) for _ in range(5)]
        assert {a.headers["x-amzn-invoked-production-variant"] for a in answers} == {"lr"}
        assert all(a.json() == answers[0].json() and a.json() != [8.0] for a in answers)
        bad = http.post("/invocations", content=b"1,1,1,1", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "shadow"})
        assert bad.status_code == 400
        wait_for(lambda: app.metrics.variant("shadow").invocations == 5, timeout=10, what="the shadow's copies")
        text = http.get("/metrics").text
    assert 'kiln_invocations_total{endpoint="ep",variant="shadow"} 5' in text


def test_a_draining_worker_answers_with_connection_close(endpoint: tuple[str, ServingApp], http: httpx.Client) -> None:
    app = endpoint[1]
    app.draining = True
    try:
        resp = http.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"})
    finally:
        app.draining = False
    assert resp.status_code == 200 and resp.headers["connection"] == "close"


def test_unknown_routes_and_methods(http: httpx.Client) -> None:
    assert http.get("/nope").status_code == 404
    assert http.get("/invocations").status_code == 405
    assert http.get("/v2/models/lr/infer").status_code == 404


def test_code_free_packages_answer_inline_and_packages_with_code_on_a_thread(endpoint: tuple[str, ServingApp]) -> None:
    app = endpoint[1]
    assert app.by_name["lr"].inline is True and app.by_name["custom"].inline is False


def test_the_watchdog_asks_for_recycling_when_an_inline_call_holds_the_loop() -> None:
    import io
    import threading

    from kiln.serving._worker import _watchdog

    class App:
        stuck = False
        inline_since = time.perf_counter_ns()

    pipe = io.BytesIO()
    thread = threading.Thread(target=_watchdog, args=(App, pipe, 0.2), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and App.stuck and pipe.getvalue() == b"recycle\n"
