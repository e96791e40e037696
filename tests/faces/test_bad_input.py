"""Bad input from every face: the same KilnError class and message from the SDK (local and
remote), the matching HTTP status in the one error shape, and a one-line CLI error with
the class's exit code. Nothing half-done is ever committed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import kiln
from kiln.core.config import Settings, load_settings
from kiln.core.errors import InvalidArgument, KilnError, NotFound, PayloadTooLarge, ResourceExhausted
from kiln.core.workspace import Workspace
from kiln.server.app import create_app
from tests.faces.conftest import CSV, SyncASGI, http_client, upload

RAGGED = b"id,city,amount\n1,paris,10.5\n2,lyon\n3,nice,7.0\n"
SLOW_SQL = "SELECT count(*) FROM range(100000000000) a"
HUGE = "sales@" + "9" * 5000  # past Python's 4,300-digit int() limit: was a 500


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One workspace for the module: the cases below must leave it as they found it."""
    return Settings(home=tmp_path_factory.mktemp("bad") / "kiln").resolved()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    paths = {}
    for name, data in {"good": CSV, "ragged": RAGGED, "empty": b"", "xml": b"<a/>"}.items():
        paths[name] = root / f"{ {'empty': 'blank'}.get(name, name)}.{'xml' if name == 'xml' else 'csv'}"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def shared_app(settings: Settings) -> Iterator[Any]:
    ws = Workspace(settings)
    yield create_app(ws, auth=False, allowed_hosts=["testserver"])
    ws.close()


@pytest.fixture(scope="module")
def seeded(shared_app: Any) -> Iterator[httpx.Client]:
    """Dataset 'sales' with versions 1 and 2."""
    with http_client(shared_app) as http:
        assert upload(http, "sales").status_code == 201
        assert upload(http, "sales").status_code == 201
        yield http


@pytest.fixture(scope="module", params=["local", "remote"])
def sdk(request: pytest.FixtureRequest, settings: Settings, shared_app: Any, seeded: httpx.Client) -> Iterator[Any]:
    if request.param == "local":
        client = kiln.Client(settings=settings)
    else:
        client = kiln.Client("http://testserver", http_transport=SyncASGI(shared_app))
    yield client
    client.close()


# (id, SDK call, CLI args, REST call, error class, message pattern)
Case = tuple[str, Callable[[Any, dict[str, Path]], Any], Callable[[dict[str, Path]], list[str]], Callable[[httpx.Client, dict[str, Path]], httpx.Response], type[KilnError], str]
CASES: list[Case] = [
    ("invalid-name", lambda c, f: c.datasets.ingest("Bad Name", f["good"]), lambda f: ["datasets", "ingest", "Bad Name", str(f["good"])],
     lambda h, f: upload(h, "Bad%20Name"), InvalidArgument, r"invalid dataset name 'Bad Name'"),
    ("invalid-ref", lambda c, f: c.datasets.get("sales@x!"), lambda f: ["datasets", "show", "sales@x!"],
     lambda h, f: h.get("/v1/datasets/sales@x!"), InvalidArgument, r"invalid dataset reference"),
    ("unknown-dataset", lambda c, f: c.datasets.get("nope"), lambda f: ["datasets", "show", "nope"],
     lambda h, f: h.get("/v1/datasets/nope"), NotFound, r"dataset ['\"]nope['\"] does not exist"),
    ("unknown-version", lambda c, f: c.datasets.get("sales@7"), lambda f: ["datasets", "show", "sales@7"],
     lambda h, f: h.get("/v1/datasets/sales@7"), NotFound, r"dataset ['\"]sales['\"] has no version 7 \(latest is 2\)"),
    ("unknown-version-head", lambda c, f: c.datasets.head("sales@7"), lambda f: ["datasets", "head", "sales@7"],
     lambda h, f: h.get("/v1/datasets/sales@7/head"), NotFound, r"has no version 7 \(latest is 2\)"),
    ("unknown-version-rm", lambda c, f: c.datasets.delete("sales@7"), lambda f: ["datasets", "rm", "sales@7"],
     lambda h, f: h.delete("/v1/datasets/sales@7"), NotFound, r"has no version 7 \(latest is 2\)"),
    ("unknown-versions", lambda c, f: c.datasets.versions("nope"), lambda f: ["datasets", "versions", "nope"],
     lambda h, f: h.get("/v1/datasets/nope/versions"), NotFound, r"dataset ['\"]nope['\"] does not exist"),
    ("ragged-csv", lambda c, f: c.datasets.ingest("sales", f["ragged"]), lambda f: ["datasets", "ingest", "sales", str(f["ragged"])],
     lambda h, f: upload(h, "sales", RAGGED), InvalidArgument, r"line 3 has 2 columns, expected 3.*Nothing was ingested"),
    ("unsupported-format", lambda c, f: c.datasets.ingest("sales", f["good"], format="xml"), lambda f: ["datasets", "ingest", "sales", str(f["good"]), "--format", "xml"],
     lambda h, f: upload(h, "sales", fmt="xml"), InvalidArgument, r"format.*'csv'"),
    ("unknown-extension", lambda c, f: c.datasets.ingest("sales", f["xml"]), lambda f: ["datasets", "ingest", "sales", str(f["xml"])],
     lambda h, f: h.post("/v1/datasets/sales/versions", content=b"<a/>", headers={"content-type": "application/octet-stream"}), InvalidArgument, r"format"),
    ("empty-upload", lambda c, f: c.datasets.ingest("sales", f["empty"]), lambda f: ["datasets", "ingest", "sales", str(f["empty"])],
     lambda h, f: upload(h, "sales", b""), InvalidArgument, r"empty"),
    ("bad-type", lambda c, f: c.datasets.ingest("sales", f["good"], types={"amount": "nonsense"}), lambda f: ["datasets", "ingest", "sales", str(f["good"]), "--type", "amount=nonsense"],
     lambda h, f: upload(h, "sales", types='{"amount": "nonsense"}'), InvalidArgument, r"unknown type 'nonsense' for column 'amount'"),
    ("head-n", lambda c, f: c.datasets.head("sales", n=-1), lambda f: ["datasets", "head", "sales", "-n", "-1"],
     lambda h, f: h.get("/v1/datasets/sales/head", params={"n": -1}), InvalidArgument, r"\bn\b"),
    ("sql-syntax", lambda c, f: c.sql("SELEC 1"), lambda f: ["sql", "SELEC 1"],
     lambda h, f: h.post("/v1/sql", json={"query": "SELEC 1"}), InvalidArgument, r"query failed: Parser Error"),
    ("sql-unknown-version", lambda c, f: c.sql('SELECT * FROM "sales@9"'), lambda f: ["sql", 'SELECT * FROM "sales@9"'],
     lambda h, f: h.post("/v1/sql", json={"query": 'SELECT * FROM "sales@9"'}), NotFound, r"has no version 9 \(latest is 2\)"),
    ("sql-timeout", lambda c, f: c.sql(SLOW_SQL, timeout_s=0.2), lambda f: ["sql", SLOW_SQL, "--timeout", "0.2"],
     lambda h, f: h.post("/v1/sql", json={"query": SLOW_SQL, "timeout_s": 0.2}), ResourceExhausted, r"ran past its 0.2 s timeout"),
    ("huge-version", lambda c, f: c.datasets.get(HUGE), lambda f: ["datasets", "show", HUGE],
     lambda h, f: h.get(f"/v1/datasets/{HUGE}"), InvalidArgument, r"versions are at most 9223372036854775807"),
    ("huge-version-sql", lambda c, f: c.sql(f'SELECT * FROM "{HUGE}"'), lambda f: ["sql", f'SELECT * FROM "{HUGE}"'],
     lambda h, f: h.post("/v1/sql", json={"query": f'SELECT * FROM "{HUGE}"'}), InvalidArgument, r"versions are at most"),
    ("huge-model-version", lambda c, f: c.models.get_version(HUGE), lambda f: ["models", "show", HUGE],
     lambda h, f: h.get(f"/v1/models/sales/versions/{HUGE[6:]}"), InvalidArgument, r"versions are at most"),
    ("sql-timeout-above-server", lambda c, f: c.sql("SELECT 1", timeout_s=86400), lambda f: ["sql", "SELECT 1", "--timeout", "86400"],
     lambda h, f: h.post("/v1/sql", json={"query": "SELECT 1", "timeout_s": 86400}), InvalidArgument, r"at most 60 seconds, the server's maximum \(KILN_SQL_TIMEOUT_S\)"),
    ("sql-limit-above-server", lambda c, f: c.sql("SELECT 1", limit=10**7), lambda f: ["sql", "SELECT 1", "--limit", "10000000", "--format", "csv"],
     lambda h, f: h.post("/v1/sql", json={"query": "SELECT 1", "limit": 10**7}), InvalidArgument, r"between 0 and 1000000 rows, the server's maximum \(KILN_SQL_MAX_ROWS\)"),
    ("token-role", lambda c, f: c.tokens.create("bot", role="root"), lambda f: ["tokens", "create", "bot", "--role", "root"],
     lambda h, f: h.post("/v1/tokens", json={"name": "bot", "role": "root"}), InvalidArgument, r"unknown role 'root'"),
    ("token-revoke-unknown", lambda c, f: c.tokens.revoke("ghost"), lambda f: ["tokens", "revoke", "ghost"],
     lambda h, f: h.delete("/v1/tokens/ghost"), NotFound, r"token 'ghost' does not exist"),
]
IDS = [c[0] for c in CASES]


def _state(http: httpx.Client) -> Any:
    return http.get("/v1/datasets").json(), [len(http.get("/v1/datasets/sales/versions").json())]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sdk(sdk: Any, seeded: httpx.Client, files: dict[str, Path], case: Case) -> None:
    _, call, _, _, cls, pattern = case
    before = _state(seeded)
    with pytest.raises(KilnError) as info:
        call(sdk, files)
    assert type(info.value) is cls, info.value
    assert re.search(pattern, info.value.message), info.value.message
    assert "\n" not in info.value.message
    assert _state(seeded) == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rest(seeded: httpx.Client, files: dict[str, Path], case: Case) -> None:
    _, _, _, rest, cls, pattern = case
    before = _state(seeded)
    resp = rest(seeded, files)
    assert resp.status_code == cls.http_status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == cls.code
    assert re.search(pattern, body["error"]["message"]), body["error"]["message"]
    assert resp.headers["x-request-id"]
    assert _state(seeded) == before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli(cli: Any, seeded: httpx.Client, files: dict[str, Path], case: Case) -> None:
    _, _, args, _, cls, pattern = case
    before = _state(seeded)
    result = cli(*args(files))
    assert result.code == cls.exit_code, result
    if result.err.startswith("Usage:"):
        # typer checked the option's range itself (-n has min=0): a usage error, exit 2.
        assert "Invalid value for '-n'" in result.err
        return
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.out + result.err
    assert _state(seeded) == before


def test_cli_empty_csv_names_the_file(cli: Any, files: dict[str, Path], seeded: httpx.Client) -> None:
    result = cli("datasets", "ingest", "sales", str(files["empty"]))
    assert "blank.csv" in result.err and "empty" in result.err


# -- SQL that would reach outside the lake ---------------------------------------------

def _outside_sql(store: str, home: Path) -> list[str]:
    return [
        f"COPY (SELECT 1) TO '{home}/x.csv'",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{store}/x.csv'",
        "ATTACH ':memory:' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO sales VALUES (1, 'x', 1.0)",
        "DROP VIEW sales",
        "SET enable_external_access = true",
        "PRAGMA database_list",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{home}/kiln.db')",
        "SELECT * FROM read_parquet('../../etc/passwd')",
        f"SELECT * FROM read_parquet('{store}/datasets/*/*/*.parquet')",
        f"COPY sales TO '{store}/datasets/sales/x.csv'",
        "SELECT current_setting('temp_directory')",
        "SELECT * FROM duckdb_settings()",
        "SELECT 1; SELECT 2",
    ]


def test_sql_outside_the_lake_is_refused_on_every_face(seeded: httpx.Client, ws: Workspace, cli: Any, settings: Settings) -> None:
    client = kiln.Client(settings=settings)
    try:
        for query in _outside_sql(ws.store.url, settings.home):
            resp = seeded.post("/v1/sql", json={"query": query})
            assert resp.status_code == 400, (query, resp.text)
            message = resp.json()["error"]["message"]
            assert re.search(r"only SELECT|refused|exactly one statement", message), (query, message)
            with pytest.raises(InvalidArgument):
                client.sql(query)
            result = cli("sql", query)
            assert result.code == 2 and result.err.startswith("error: "), (query, result)
    finally:
        client.close()
    assert sorted(p.name for p in Path(ws.store.url).iterdir()) == ["audit", "datasets"]  # audit: the anchor
    assert not (settings.home / "x.csv").exists()
    assert not list(Path.cwd().glob(".tmp"))


# -- request envelope: size, JSON, request ids -------------------------------------------

@pytest.fixture
def small(tmp_path: Path) -> Iterator[httpx.Client]:
    ws = Workspace(load_settings(home=str(tmp_path / "small"), max_request_mb=0.01, max_upload_mb=0.02))
    with http_client(create_app(ws, auth=False, allowed_hosts=["testserver"])) as http:
        yield http
    ws.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("kind", ["json", "upload"])
def test_oversized_request_is_413(small: httpx.Client, kind: str, chunked: bool) -> None:
    if kind == "json":
        data = b'{"query": "SELECT \'' + b"x" * 20_000 + b"'\"}"
        url, ctype = "/v1/sql", "application/json"
    else:
        data = b"a\n" + b"1\n" * 20_000
        url, ctype = "/v1/datasets/big/versions?format=csv", "application/octet-stream"
    content: Any = iter([data[i:i + 4096] for i in range(0, len(data), 4096)]) if chunked else data
    resp = small.post(url, content=content, headers={"content-type": ctype})
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == PayloadTooLarge.code
    assert "KILN_MAX_" in resp.json()["error"]["message"]
    assert resp.headers["x-request-id"]
    assert small.get("/v1/datasets").json() == []


@pytest.mark.parametrize(("url", "body"), [("/v1/sql", b"{bad"), ("/v1/tokens", b"[1, 2"), ("/v1/datasets/x/versions", b'{"source": '), ("/v1/sql", b'"just a string"')])
def test_malformed_json_is_400(http: httpx.Client, url: str, body: bytes) -> None:
    resp = http.post(url, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "invalid_argument" and set(err) == {"code", "message", "details"}
    assert "\n" not in err["message"]
    assert resp.headers["x-request-id"]


def test_unknown_route_and_method_use_the_error_shape(http: httpx.Client) -> None:
    for resp in (http.get("/v1/nothing-here"), http.put("/v1/health")):
        assert resp.status_code in (404, 405)
        assert set(resp.json()["error"]) == {"code", "message", "details"}
        assert resp.headers["x-request-id"]


def test_unexpected_error_keeps_the_shape_and_the_request_id(ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(ws, auth=False, allowed_hosts=["testserver"])

    def boom() -> None:
        raise RuntimeError("secret detail")

    app.add_api_route("/v1/test-boom", boom)
    with httpx.Client(transport=SyncASGI(app, raise_app_exceptions=False), base_url="http://testserver") as http:
        resp = http.get("/v1/test-boom", headers={"X-Request-Id": "boom-1"})
    assert resp.status_code == 500 and resp.headers["x-request-id"] == "boom-1"
    assert resp.json() == {"error": {"code": "internal", "message": "internal error (RuntimeError) in request boom-1; see the server log", "details": {}}}
    assert "secret detail" not in resp.text
    assert "boom-1" in caplog.text and "secret detail" in caplog.text


def test_client_request_id_is_echoed_and_audited(http: httpx.Client) -> None:
    resp = http.post("/v1/tokens", json={"name": "ci", "role": "viewer"}, headers={"X-Request-Id": "req-abc.123"})
    assert resp.status_code == 201 and resp.headers["x-request-id"] == "req-abc.123"
    failed = http.post("/v1/tokens", json={"name": "ci", "role": "viewer"}, headers={"X-Request-Id": "req-dup"})
    assert failed.status_code == 409 and failed.headers["x-request-id"] == "req-dup"
    events = {e["request_id"]: e for e in http.get("/v1/audit").json()}
    assert events["req-abc.123"]["outcome"] == "success" and events["req-abc.123"]["resource"] == "tokens/ci"
    assert events["req-dup"]["outcome"] == "failure" and events["req-dup"]["source"] == "127.0.0.1"


@pytest.mark.parametrize("sent", ["has space", "x" * 65, "semi;colon", ""])
def test_unusable_request_id_is_replaced(http: httpx.Client, sent: str) -> None:
    resp = http.get("/v1/health", headers={"X-Request-Id": sent})
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["x-request-id"])


@pytest.mark.parametrize(("query", "fmt"), [("SELECT [1, 2] AS l", "csv"), ("SELECT {'a': 1} AS s", "csv"), ("SELECT INTERVAL 1 DAY AS i", "parquet"), ("SELECT 'infinity'::DATE AS d", "json")])
def test_result_a_format_cannot_hold_is_400(seeded: httpx.Client, cli: Any, query: str, fmt: str) -> None:
    resp = seeded.post("/v1/sql", json={"query": query, "format": fmt})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"].startswith(f"cannot write this result as {fmt}:")
    assert seeded.post("/v1/sql", json={"query": query, "format": "arrow"}).status_code == 200
    if fmt == "csv":
        result = cli("sql", query, "--format", "csv")
        assert result.code == 2 and result.err.startswith("error: cannot write this result as csv")


@pytest.mark.parametrize("params", [{"delimiter": "ab"}, {"encoding": "latin-1"}, {"skip_rows": "99999999999999999999"}, {"header": "maybe"}, {"types": "[1]"}, {"types": '{"id": 5}'}])
@pytest.mark.parametrize("body", [b"\xff\xfe\x00garbage\n1,2\n", b"a\n" + b"\x00" * 64])
def test_odd_ingest_options_never_500(http: httpx.Client, params: dict[str, str], body: bytes) -> None:
    resp = upload(http, "odd", body, **params)
    assert resp.status_code < 500, resp.text
    assert "\n" not in resp.json().get("error", {}).get("message", "")


def test_cli_shows_brackets_in_data_and_errors_as_they_are(cli: Any) -> None:
    """Values, column names and error messages are text, not rich markup ('[/x]' used to
    raise MarkupError and print a traceback; '[bold]' vanished)."""
    result = cli("sql", """SELECT '[/x]' AS "[/h]", '[bold]hi' AS b""")
    assert result.code == 0, result
    assert "[/x]" in result.out and "[/h]" in result.out and "[bold]hi" in result.out
    result = cli("sql", "SELECT error('[/x] boom')")
    assert result.code == 2 and result.err.startswith("error: ") and "[/x] boom" in result.err, result


def test_failed_rest_export_leaves_no_temp_file(seeded: httpx.Client, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.core.errors import Unavailable
    from kiln.lake import DatasetService

    def broken(self, *args, **kwargs):
        raise Unavailable("the store went away")

    name = seeded.get("/v1/datasets").json()[0]["name"]
    monkeypatch.setattr(DatasetService, "export", broken)
    resp = seeded.get(f"/v1/datasets/{name}/export", params={"format": "csv"})
    assert resp.status_code == 503
    assert not list((settings.home / "tmp").glob("export-*"))


def test_a_type_override_cannot_smuggle_sql(http: httpx.Client, tmp_path: Path) -> None:
    """An editor's ?types= used to run inside an unsandboxed DuckDB statement: COPY wrote anywhere."""
    import orjson

    target = tmp_path / "smuggled.csv"
    types = {"amount": f"INT); COPY (SELECT 42 AS x) TO '{target}'; SELECT CAST(NULL AS INT"}
    resp = upload(http, "sales", types=orjson.dumps(types).decode())
    assert resp.status_code == 400 and "unknown type" in resp.json()["error"]["message"]
    assert not target.exists()


@pytest.mark.parametrize("pair", ["amount", "=int", "amount="])
def test_cli_malformed_type_override_is_one_line(cli: Any, tmp_path: Path, pair: str) -> None:
    source = tmp_path / "s.csv"
    source.write_text("amount\n1\n")
    result = cli("datasets", "ingest", "sales", str(source), "--type", pair)
    assert result.code == 2 and "--type takes COLUMN=TYPE" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize(("fmt", "body"), [("parquet", b"PAR1garbage"), ("json", b"{{{"), ("jsonl", b"[1,\n"), ("excel", b"garbage")])
def test_errors_name_no_server_path(http: httpx.Client, ws: Workspace, fmt: str, body: bytes) -> None:
    import tempfile

    resp = http.post(f"/v1/datasets/leak/versions?format={fmt}", content=body, headers={"content-type": "application/octet-stream"})
    assert resp.status_code == 400, resp.text
    for root in (str(ws.settings.home), tempfile.gettempdir()):
        assert root not in resp.text, resp.text
