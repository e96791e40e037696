"""Streams through REST, the SDK over HTTP, and the CLI: same behaviour, 4xx for bad input."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

import kiln
from kiln.lake.streams import ReadResult
from tests.conftest import TRAVERSAL
from tests.faces.conftest import SyncASGI


def test_rest_put_read_commit_flush(http: httpx.Client) -> None:
    assert http.post("/v1/streams", json={"name": "clicks", "columns": {"user": "string", "n": "int64"}}).status_code == 201
    put = http.post("/v1/streams/clicks/records", json={"records": [{"user": "a", "n": 1}, {"user": "b", "n": "x"}]})
    assert put.status_code == 200 and put.json() == {"stream": "clicks", "count": 2, "first_sequence_number": 1, "last_sequence_number": 2}
    assert [r["sequence_number"] for r in http.get("/v1/streams/clicks/records", params={"position": "AFTER_SEQUENCE_NUMBER", "sequence_number": 1}).json()["records"]] == [2]
    batch = http.post("/v1/streams/clicks/consumers/etl/read", json={"limit": 10}).json()
    assert len(batch["records"]) == 2 and batch["lease"]
    assert http.post("/v1/streams/clicks/consumers/etl/commit", json={"lease": batch["lease"]}).json()["checkpoint"] == 2
    assert http.post("/v1/streams/clicks/consumers/etl/commit", json={"lease": batch["lease"]}).status_code == 409
    flushed = http.post("/v1/streams/clicks/flush").json()
    assert (flushed["rows"], flushed["dead_letter_rows"]) == (1, 1)
    assert http.get("/v1/datasets/clicks-dlq").json()["row_count"] == 1


def test_the_sdk_over_http_returns_the_same_types(app: Any) -> None:
    client = kiln.Client("http://testserver", http_transport=SyncASGI(app))
    client.streams.create("clicks")
    with client.streams.producer("clicks", max_batch=3, linger_ms=5) as producer:
        pending = [producer.put({"i": i}) for i in range(7)]
    assert [p.result(5) for p in pending] == list(range(1, 8))
    batch = client.streams.read("clicks", consumer="etl", limit=5)
    assert isinstance(batch, ReadResult) and [r.data["i"] for r in batch.records] == [0, 1, 2, 3, 4]
    assert client.streams.commit(batch).checkpoint == 5
    assert client.streams.consumers("clicks")[0].lag == 2
    assert client.streams.flush("clicks").rows == 7
    assert client.streams.get("clicks").pending == 0
    assert client.streams.delete("clicks").name == "clicks"
    client.close()


@pytest.mark.parametrize("method, path, body, status", [
    ("GET", "/v1/streams/nope", None, 404),
    ("POST", "/v1/streams/nope/records", {"records": [{"a": 1}]}, 404),
    ("POST", "/v1/streams/clicks/records", {"records": [1, 2]}, 400),
    ("POST", "/v1/streams/clicks/records", {"records": "text"}, 400),
    ("POST", "/v1/streams/clicks/records", {"rows": []}, 400),
    ("POST", "/v1/streams/clicks/records", {"records": []}, 400),
    ("POST", "/v1/streams/clicks/records", {"records": [{}] * 10_001}, 413),
    ("POST", "/v1/streams/clicks/records", {"records": [{"x": "y" * (7 << 20)}]}, 413),
    ("GET", "/v1/streams/clicks/records?position=NOWHERE", None, 400),
    ("GET", "/v1/streams/clicks/records?position=AT_SEQUENCE_NUMBER", None, 400),
    ("GET", "/v1/streams/clicks/records?limit=0", None, 400),
    ("GET", "/v1/streams/clicks/records?position=AT_SEQUENCE_NUMBER&sequence_number=99999999999999999999999", None, 400),
    ("POST", "/v1/streams/clicks/consumers/big/read", {"position": "AFTER_SEQUENCE_NUMBER", "sequence_number": 2**63}, 400),
    ("POST", "/v1/streams/clicks/consumers/etl/commit", {"lease": "../../etc"}, 400),
    ("POST", "/v1/streams/clicks/consumers/etl/commit", {"lease": "0" * 32}, 404),
    ("POST", "/v1/streams/clicks/pull", None, 400),
    ("POST", "/v1/streams", {"name": "Clicks!"}, 400),
    ("POST", "/v1/streams", {"name": "clicks"}, 409),
])
def test_bad_requests_get_4xx_with_a_message(module_http: httpx.Client, method: str, path: str, body: Any, status: int) -> None:
    resp = module_http.request(method, path, content=orjson.dumps(body) if body is not None else None, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]


def test_malformed_json_bodies_get_400(module_http: httpx.Client) -> None:
    resp = module_http.post("/v1/streams/clicks/records", content=b'{"records": [{"a": 1},', headers={"content-type": "application/json"})
    assert resp.status_code == 400


_ROUTES = [
    ("GET", "/v1/streams/{x}"), ("DELETE", "/v1/streams/{x}"), ("POST", "/v1/streams/{x}/records"),
    ("GET", "/v1/streams/{x}/records"), ("POST", "/v1/streams/{x}/flush"), ("POST", "/v1/streams/{x}/pull"),
    ("GET", "/v1/streams/{x}/consumers"), ("POST", "/v1/streams/clicks/consumers/{x}/read"),
    ("POST", "/v1/streams/clicks/consumers/{x}/commit"), ("DELETE", "/v1/streams/clicks/consumers/{x}"),
    ("GET", "/v1/catalog/{x}"), ("POST", "/v1/catalog/{x}/import"), ("GET", "/v1/datasets/{x}/bundle"),
]


def _encode(value: str) -> str:
    """Every byte but ASCII letters and digits percent-encoded."""
    return "".join(chr(b) if chr(b).isalnum() and b < 128 else f"%{b:02X}" for b in value.encode())


@pytest.fixture(scope="module")
def module_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from kiln.core.config import load_settings
    from kiln.core.workspace import Workspace
    from kiln.server.app import create_app
    from tests.faces.conftest import http_client

    ws = Workspace(load_settings(home=str(tmp_path_factory.mktemp("streams-faces"))))
    with http_client(create_app(ws, auth=False, allowed_hosts=["testserver"])) as client:
        assert client.post("/v1/streams", json={"name": "clicks"}).status_code == 201
        yield client
    ws.close()


@pytest.mark.parametrize("method, template", _ROUTES)
def test_traversal_strings_in_names_get_4xx(module_http: httpx.Client, method: str, template: str) -> None:
    """Encoded, each string is the name itself and must be refused (a trailing '/' earns
    Starlette's slash redirect, which changes nothing). Raw forms, which clients resolve
    themselves, are covered for every route by tests/faces/test_traversal.py."""
    http = module_http
    body = {"records": [{"a": 1}], "lease": "0" * 32}
    for bad in TRAVERSAL:
        resp = http.request(method, template.replace("{x}", _encode(bad)), json=body)
        assert (400 <= resp.status_code < 500 and set(resp.json()) == {"error"}) or resp.status_code == 307, (bad, resp.status_code, resp.text)
    assert [s["name"] for s in http.get("/v1/streams").json()] == ["clicks"]
    assert http.get("/v1/datasets").json() == []


def test_traversal_strings_in_bodies_and_queries_get_4xx(module_http: httpx.Client) -> None:
    http = module_http
    for bad in TRAVERSAL:
        assert 400 <= http.post("/v1/streams", json={"name": "ok", "dataset": bad}).status_code < 500
        assert 400 <= http.post("/v1/streams", json={"name": bad}).status_code < 500
        made = http.post("/v1/streams", json={"name": "ok", "source": f"nats://127.0.0.1:4222/{bad}"})
        assert made.status_code < 500  # a few ("CON", "name .txt"?) are fine NATS subjects
        if made.status_code == 201:
            assert made.json()["source"] == f"nats://127.0.0.1:4222/{bad}" and http.delete("/v1/streams/ok").status_code == 200
        assert 400 <= http.post("/v1/catalog/sklearn-iris/import", json={"name": bad}).status_code < 500
        assert 400 <= http.post("/v1/datasets/bundles", params={"name": bad}, content=b"x", headers={"content-type": "application/octet-stream"}).status_code < 500
    assert [s["name"] for s in http.get("/v1/streams").json()] == ["clicks"]


def test_cli_create_put_read_commit_flush(cli: Callable[..., Any], tmp_path: Any) -> None:
    assert cli("streams", "create", "clicks", "--column", "user=string", "--column", "n=int64").code == 0
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"user": "a", "n": 1}\n\n{"user": "b", "n": 2}\n')
    put = cli("streams", "put", "clicks", str(lines), "--json")
    assert put.code == 0 and orjson.loads(put.out)["last_sequence_number"] == 2
    assert cli("streams", "put", "clicks", "-r", '{"user": "c", "n": "three"}').code == 0
    read = cli("streams", "read", "clicks", "--consumer", "etl", "--commit", "--json")
    assert [r["sequence_number"] for r in orjson.loads(read.out)["records"]] == [1, 2, 3]
    assert orjson.loads(cli("streams", "consumers", "clicks", "--json").out)[0]["checkpoint"] == 3
    assert "into clicks-dlq" in cli("streams", "flush", "clicks").out
    assert orjson.loads(cli("streams", "show", "clicks", "--json").out)["flushed_sequence_number"] == 3
    assert "clicks" in cli("streams", "ls").out
    assert cli("streams", "read", "clicks", "--from", "2", "--json").out.count("sequence_number") >= 2


def test_cli_consumer_read_only_looks_until_commit(cli: Callable[..., Any]) -> None:
    """`read --consumer` used to claim the batch, so the `--commit` after it found nothing."""
    assert cli("streams", "create", "clicks", "--column", "user=string").code == 0
    assert cli("streams", "put", "clicks", "-r", '{"user": "a"}', "-r", '{"user": "b"}').code == 0
    for _ in range(2):
        looked = orjson.loads(cli("streams", "read", "clicks", "--consumer", "etl", "--json").out)
        assert [r["sequence_number"] for r in looked["records"]] == [1, 2] and looked.get("lease") is None
    consumed = orjson.loads(cli("streams", "read", "clicks", "--consumer", "etl", "--commit", "--json").out)
    assert [r["sequence_number"] for r in consumed["records"]] == [1, 2] and consumed["committed"]["checkpoint"] == 2
    assert orjson.loads(cli("streams", "read", "clicks", "--consumer", "etl", "--json").out)["records"] == []
    assert cli("streams", "read", "clicks", "--commit").code == 2


def test_sdk_read_with_commit_consumes(ws: Any) -> None:
    import kiln

    with kiln.Client(settings=ws.settings) as client:
        client.streams.create("clicks", columns={"user": "string"})
        client.streams.put("clicks", [{"user": "a"}, {"user": "b"}, {"user": "c"}])
        assert [r.sequence_number for r in client.streams.read("clicks", consumer="etl", limit=2, commit=True).records] == [1, 2]
        assert client.streams.get_consumer("clicks", "etl").checkpoint == 2
        assert [r.sequence_number for r in client.streams.peek("clicks", "etl").records] == [3]
        assert client.streams.get_consumer("clicks", "etl").claimed == 2, "peeking claims nothing"


@pytest.mark.parametrize("args", [
    ("streams", "show", "nope"),
    ("streams", "put", "clicks", "-r", "[1, 2]"),
    ("streams", "put", "clicks", "-r", "not json"),
    ("streams", "create", "ok", "--column", "user"),
    ("streams", "read", "clicks", "--position", "NOWHERE"),
    ("streams", "pull", "clicks"),
    ("streams", "commit", "clicks", "--consumer", "etl", "--lease", "nope"),
])
def test_cli_bad_input_exits_non_zero_without_a_traceback(cli: Callable[..., Any], args: tuple[str, ...]) -> None:
    cli("streams", "create", "clicks")
    result = cli(*args)
    assert result.code != 0 and "error" in result.err and "Traceback" not in result.err + result.out


def test_cli_refuses_traversal_names(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every string through the CLI's commands (one click tree, one in-process client):
    each is refused with a Kiln error, which `kiln` prints as one line."""
    import typer

    from kiln.cli import _common
    from kiln.cli.main import app
    from kiln.core.errors import KilnError

    client = kiln.Client(settings=settings)
    client.streams.create("clicks")
    monkeypatch.setattr(_common, "_client", client)
    command = typer.main.get_command(app)
    for bad in TRAVERSAL:
        for args in (("streams", "create", bad), ("streams", "show", bad), ("streams", "read", "clicks", "--consumer", bad), ("streams", "create", "ok", "--dataset", bad), ("catalog", "import", bad), ("catalog", "import", "sklearn-iris", "--name", bad), ("datasets", "export", bad, "--bundle", "/tmp/never.tar")):
            with pytest.raises(KilnError):
                command.main(args=list(args), standalone_mode=False)
    assert [s.name for s in client.streams.list()] == ["clicks"] and client.datasets.list() == []
    client.close()


def test_a_failing_ack_callback_does_not_fail_committed_batches(app: Any) -> None:
    from kiln.sdk.streams import Producer

    client = kiln.Client("http://testserver", http_transport=SyncASGI(app))
    client.streams.create("acks")

    def boom(_: Any) -> None:
        raise RuntimeError("the caller's callback broke")

    producer = Producer(client.streams, "acks", max_batch=2, linger_ms=5, on_ack=boom)
    pending = [producer.put({"i": i}) for i in range(4)]
    producer.close(timeout=10)
    assert [p.result(5) for p in pending] == [1, 2, 3, 4]
    assert producer.errors == [] and len(producer.callback_errors) == 2
    assert client.streams.get("acks").pending == 4
    client.close()
