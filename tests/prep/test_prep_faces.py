"""Profiles and recipes through REST, the SDK (in-process and over HTTP) and the CLI, with
bad names and traversal strings refused everywhere without a trace."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyarrow as pa
import pytest

import kiln
from kiln.core.config import Settings
from kiln.core.errors import InvalidArgument, NotFound
from kiln.prep import ApplyResult, ProfileInfo, RecipePreview, RecipeVersion
from tests.conftest import TRAVERSAL
from tests.faces.conftest import SyncASGI, app, cli, http  # noqa: F401 - fixtures
from tests.prep.test_recipes_service import CLEAN, people

assert TRAVERSAL, "shared/security/traversal.txt is missing"
YAML = """description: people, cleaned
steps:
  - op: drop_missing
    params: {columns: [age]}
  - op: one_hot
    params: {columns: [city]}
"""


@pytest.fixture
def lake(settings: Settings) -> Iterator[kiln.Client]:
    client = kiln.Client(settings=settings)
    client.datasets.ingest("people", people(300))
    yield client
    client.close()


@pytest.fixture
def remote(app: Any, lake: kiln.Client) -> Iterator[kiln.Client]:  # noqa: F811
    client = kiln.Client("http://testserver", http_transport=SyncASGI(app))
    yield client
    client.close()


# -- REST ----------------------------------------------------------------------------------


def test_rest_profile_create_get_html_and_list(http: httpx.Client, lake: kiln.Client) -> None:  # noqa: F811
    made = http.post("/v1/datasets/people/profile", json={"target": "income"})
    assert made.status_code == 201, made.text
    assert made.json()["target"] == "income" and made.json()["version"] == 1
    got = http.get("/v1/datasets/people@1/profile").json()
    assert got["info"] == made.json() and got["profile"]["insights"]["problem_type"] == "regression"
    page = http.get("/v1/datasets/people/profile.html")
    assert page.headers["content-type"].startswith("text/html") and b"people@1" in page.content
    assert [p["id"] for p in http.get("/v1/datasets/people/profiles").json()] == [made.json()["id"]]
    assert http.post("/v1/datasets/people/profile").status_code == 201  # no body: no target


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/v1/datasets/people/profile", {"target": "nope"}, 400, "target 'nope' is not a column"),
    ("POST", "/v1/datasets/people/profile", {"tagret": "age"}, 400, "tagret"),
    ("GET", "/v1/datasets/people/profile", None, 404, "people@1 has no profile yet"),
    ("GET", "/v1/datasets/people/profile.html", None, 404, "no profile yet"),
    ("POST", "/v1/recipes/bad/versions", {"steps": [{"op": "one_hot", "params": {"columns": "city", "max_categories": 1.5}}]}, 400, 'step 1 (one_hot): param "max_categories" must be an integer'),
    ("POST", "/v1/recipes/bad/versions", {"steps": [{"op": "explode"}]}, 400, 'step 1 (explode): unknown op "explode"'),
    ("POST", "/v1/recipes/bad/versions", {"steps": "x"}, 400, "steps"),
    ("GET", "/v1/recipes/clean@3", None, 404, "recipe 'clean' has no version 3 (latest is 1)"),
    ("GET", "/v1/recipes/clean/preview?dataset=people&n=5000", None, 400, "n"),
    ("POST", "/v1/recipes/clean/apply", {"dataset": "people", "output_dataset": "Out"}, 400, "invalid dataset name"),
    ("GET", "/v1/recipes/clean/export", None, 400, "pass --dataset"),
    ("GET", "/v1/recipes/clean/export?engine=spark", None, 400, "engine"),
])
def test_rest_errors_say_what_to_do(http: httpx.Client, lake: kiln.Client, method: str, path: str, body: Any, status: int, message: str) -> None:  # noqa: F811
    lake.recipes.create("clean", CLEAN)
    resp = http.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]
    assert [r["name"] for r in http.get("/v1/recipes").json()] == ["clean"]


def test_rest_recipe_lifecycle(http: httpx.Client, lake: kiln.Client) -> None:  # noqa: F811
    made = http.post("/v1/recipes/clean/versions", json=CLEAN)
    assert made.status_code == 201 and made.json()["version"] == 1 and made.json()["created"] is True
    assert http.post("/v1/recipes/clean/versions", json=CLEAN).json()["created"] is False
    assert [v["version"] for v in http.get("/v1/recipes/clean/versions").json()] == [1]
    preview = http.get("/v1/recipes/clean@1/preview", params={"dataset": "people", "n": 4}).json()
    assert len(preview["rows"]) == 4 and preview["dataset"] == "people@1"
    applied = http.post("/v1/recipes/clean/apply", json={"dataset": "people@1", "output_dataset": "people-clean"})
    assert applied.status_code == 201, applied.text
    assert applied.json()["output"]["lineage"]["parents"] == ["people@1"]
    script = http.get("/v1/recipes/clean/export", params={"dataset": "people", "engine": "polars"})
    assert script.headers["content-type"].startswith("text/x-python") and "def apply(" in script.text
    assert http.get("/v1/recipes/clean/fitted", params={"dataset": "people"}).json()["state"][1] is not None
    assert http.get("/v1/recipes/clean/fits").json()[0]["output"] == "people-clean@1"


# -- SDK -----------------------------------------------------------------------------------


def test_sdk_local_and_remote_return_the_same(lake: kiln.Client, remote: kiln.Client) -> None:
    for client, name in ((lake, "local"), (remote, "remote")):
        version = client.recipes.create(name, YAML)
        assert isinstance(version, RecipeVersion) and version.ref == f"{name}@1" and version.created
        assert client.recipes.create(name, YAML).created is False
        preview = client.recipes.preview(name, "people", n=3)
        assert isinstance(preview, RecipePreview) and preview.columns[:3] == ["id", "age", "income"]
        result = client.recipes.apply(name, "people", output=f"people-{name}")
        assert isinstance(result, ApplyResult) and result.output.lineage["recipe"] == f"{name}@1"
        info = client.datasets.profile(f"people-{name}")
        assert isinstance(info, ProfileInfo) and info.ref == f"people-{name}@1"
        assert client.datasets.profile_report(info.ref, format="html").startswith(b"<!")
        assert client.datasets.profile_report(info.ref, format="json")["overview"]["rows"] == result.output.row_count
        assert [p.id for p in client.datasets.profiles(f"people-{name}")] == [info.id]
        assert "def apply(" in client.recipes.export(name, dataset="people")
        assert client.recipes.fitted(name, "people").to_dict() == lake.recipes.fitted(name, "people").to_dict()
    assert lake.recipes.preview("local", "people") == remote.recipes.preview("remote", "people").model_copy(update={"recipe": "local@1"})
    assert lake.datasets.read("people-local").equals(remote.datasets.read("people-remote"))
    assert [r.name for r in remote.recipes.list()] == ["local", "remote"]
    assert [v.version for v in remote.recipes.versions("local")] == [1]


@pytest.mark.parametrize("where", ["local", "remote"])
def test_sdk_errors_are_the_same_types(lake: kiln.Client, remote: kiln.Client, where: str, tmp_path: Path) -> None:
    client = lake if where == "local" else remote
    with pytest.raises(InvalidArgument, match=r'^step 1 \(drop_missing\): param "columns"'):
        client.recipes.create("bad", {"steps": [{"op": "drop_missing", "params": {"columns": 3}}]})
    with pytest.raises(InvalidArgument, match="recipe file .* does not exist"):
        client.recipes.create("bad", tmp_path / "missing.yaml")
    with pytest.raises(NotFound, match="recipe 'nope' does not exist"):
        client.recipes.get("nope")
    with pytest.raises(InvalidArgument, match="invalid dataset name"):
        client.datasets.profile("../people")
    with pytest.raises(InvalidArgument, match="invalid recipe name"):
        client.recipes.apply("../clean", "people", output="x")


# -- CLI -----------------------------------------------------------------------------------


def test_cli_profile(cli: Callable[..., Any], lake: kiln.Client, settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    made = cli("profile", "people", "--target", "age", "--output", str(tmp_path / "reports"))
    assert made.code == 0, made.err
    path = Path(re.search(r"report: (\S+)", made.out).group(1))
    assert path.is_file() and str(path).startswith(str(settings.home)) and path.read_bytes().startswith(b"<!")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["people-v1-profile.html", "people-v1-profile.json"]
    shown = cli("profile", "show", "people@1")
    assert shown.code == 0 and "alerts" in shown.out and "missing" in shown.out
    assert json.loads(cli("profile", "people", "--show", "--json").out)["version"] == 1
    listed = json.loads(cli("profile", "ls", "people", "--json").out)
    assert [p["target"] for p in listed] == [None, "age"]
    assert json.loads(cli("profile", "show", "people", "--json").out)["alerts"]


def test_cli_recipes(cli: Callable[..., Any], lake: kiln.Client, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "clean.yaml").write_text(YAML)
    made = cli("recipes", "create", "clean", str(tmp_path / "clean.yaml"))
    assert made.code == 0 and "clean@1: 2 steps" in made.out
    assert "unchanged" in cli("recipes", "create", "clean", str(tmp_path / "clean.yaml")).out
    assert "clean" in cli("recipes", "ls").out and "one_hot" in cli("recipes", "show", "clean@1").out
    assert json.loads(cli("recipes", "versions", "clean", "--json").out)[0]["version"] == 1
    preview = cli("recipes", "preview", "clean", "people", "-n", "3")
    assert preview.code == 0 and "first 300 rows of people@1" in preview.out
    applied = cli("recipes", "apply", "clean", "people", "--output", "people-clean")
    assert applied.code == 0 and "people-clean@1" in applied.out
    assert lake.datasets.get("people-clean").lineage["parents"] == ["people@1"]
    assert cli("recipes", "export", "clean", "--dataset", "people", "-o", str(tmp_path / "r.py")).code == 0
    assert "def apply(" in (tmp_path / "r.py").read_text()
    assert "def apply(" in cli("recipes", "export", "clean", "--dataset", "people", "--engine", "pandas").out
    assert json.loads(cli("recipes", "fits", "clean", "--json").out)[0]["output"] == "people-clean@1"
    assert "fill_missing" in cli("recipes", "ops").out


@pytest.mark.parametrize(("args", "message"), [
    (("recipes", "create", "bad", "{file}"), 'step 1 (one_hot): param "max_categories" must be an integer'),
    (("recipes", "create", "bad", "{missing}"), "does not exist"),
    (("recipes", "apply", "clean", "people", "--output", "x"), "recipe 'clean' does not exist"),
    (("profile", "people", "--target", "nope"), "target 'nope' is not a column"),
    (("profile", "show", "people"), "people@1 has no profile yet"),
    (("profile", "people", "extra"), "unexpected argument 'extra'"),
])
def test_cli_errors_are_one_clean_line(cli: Callable[..., Any], lake: kiln.Client, tmp_path: Path, args: tuple[str, ...], message: str) -> None:  # noqa: F811
    (tmp_path / "bad.json").write_text(json.dumps({"steps": [{"op": "one_hot", "params": {"columns": ["city"], "max_categories": "x"}}]}))
    result = cli(*(a.format(file=tmp_path / "bad.json", missing=tmp_path / "none.yaml") for a in args))
    lines = result.err.strip().splitlines()
    assert result.code == 2 or result.code == 3, result.err
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0] and "Traceback" not in result.out


# -- traversal -----------------------------------------------------------------------------

ROUTES = [
    ("POST", "/v1/datasets/{}/profile"), ("GET", "/v1/datasets/{}/profile"), ("GET", "/v1/datasets/{}/profile.html"),
    ("GET", "/v1/datasets/{}/profiles"), ("POST", "/v1/recipes/{}/versions"), ("GET", "/v1/recipes/{}/versions"),
    ("GET", "/v1/recipes/{}"), ("GET", "/v1/recipes/{}/preview?dataset=people"), ("POST", "/v1/recipes/{}/apply"),
    ("GET", "/v1/recipes/{}/export"), ("GET", "/v1/recipes/{}/fitted?dataset=people"), ("GET", "/v1/recipes/{}/fits"),
]
BODY = {"/versions": CLEAN, "/apply": {"dataset": "people", "output_dataset": "out"}, "/profile": {}}


def _encode(value: str) -> str:
    return "".join(c if c.isalnum() and c.isascii() else quote(c, safe="") if c not in "." else "%2E" for c in value)


def test_rest_refuses_traversal_in_every_name(http: httpx.Client, lake: kiln.Client) -> None:  # noqa: F811
    lake.recipes.create("clean", CLEAN)
    accepted = []
    for value in TRAVERSAL:
        for method, template in ROUTES:
            body = next((b for suffix, b in BODY.items() if template.split("?")[0].endswith(suffix)), None)
            resp = http.request(method, template.format(_encode(value)), json=body, follow_redirects=True)  # a decoded trailing / earns a slash redirect
            if not 400 <= resp.status_code < 500 or set(resp.json()) != {"error"}:
                accepted.append((value, method, template, resp.status_code))
        for method, path, kw in [
            ("GET", "/v1/recipes/clean/preview", {"params": {"dataset": value}}),
            ("GET", "/v1/recipes/clean/export", {"params": {"dataset": value}}),
            ("POST", "/v1/recipes/clean/apply", {"json": {"dataset": value, "output_dataset": "out"}}),
            ("POST", "/v1/recipes/clean/apply", {"json": {"dataset": "people", "output_dataset": value}}),
            ("POST", "/v1/datasets/people/profile", {"json": {"target": value}}),
        ]:
            resp = http.request(method, path, **kw)
            if not 400 <= resp.status_code < 500:
                accepted.append((value, method, path, resp.status_code))
    assert accepted == []
    assert [d.name for d in lake.datasets.list()] == ["people"] and [r.name for r in lake.recipes.list()] == ["clean"]
    assert lake.datasets.profiles("people") == []


def test_cli_refuses_traversal_in_every_name(cli: Callable[..., Any], lake: kiln.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    (tmp_path / "clean.json").write_text(json.dumps(CLEAN))
    assert cli("recipes", "create", "clean", str(tmp_path / "clean.json")).code == 0
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*") if "kiln" not in p.parts)
    commands = [
        lambda v: ("profile", v), lambda v: ("profile", "show", v), lambda v: ("profile", "ls", v),
        lambda v: ("recipes", "create", v, str(tmp_path / "clean.json")), lambda v: ("recipes", "create", "fresh", v),
        lambda v: ("recipes", "show", v), lambda v: ("recipes", "versions", v), lambda v: ("recipes", "fits", v),
        lambda v: ("recipes", "preview", v, "people"), lambda v: ("recipes", "preview", "clean", v),
        lambda v: ("recipes", "apply", v, "people", "--output", "out"), lambda v: ("recipes", "apply", "clean", v, "--output", "out"),
        lambda v: ("recipes", "apply", "clean", "people", "--output", v), lambda v: ("recipes", "export", v),
        lambda v: ("recipes", "export", "clean", "--dataset", v),
    ]
    failures = []
    for value in TRAVERSAL:
        for command in commands:
            result = cli(*command(value))
            lines = result.err.strip().splitlines()
            if result.code == 0 or "Traceback" in result.out + result.err or len(lines) != 1 or not lines[0].startswith("error:"):
                failures.append((command(value), result.code, result.err[-200:]))
    assert failures == []
    assert sorted(p for p in tmp_path.rglob("*") if "kiln" not in p.parts) == before
    assert [d.name for d in lake.datasets.list()] == ["people"] and [r.name for r in lake.recipes.list()] == ["clean"]


def test_profile_of_arrow_data_from_any_face_has_the_same_numbers(lake: kiln.Client, remote: kiln.Client) -> None:
    lake.datasets.ingest("tiny", pa.table({"x": [1, 2, 2, None]}))
    a = lake.datasets.profile("tiny")
    b = remote.datasets.profile("tiny")
    assert (a.rows, a.columns, a.alerts) == (b.rows, b.columns, b.alerts) == (4, 1, a.alerts)
    assert [p.id for p in lake.datasets.profiles("tiny")] == [b.id, a.id]


@pytest.mark.parametrize("where", ["local", "remote"])
def test_sdk_refuses_traversal_in_every_name(lake: kiln.Client, remote: kiln.Client, where: str) -> None:
    client = lake if where == "local" else remote
    lake.recipes.create("clean", CLEAN)
    calls = [
        lambda v: client.datasets.profile(v), lambda v: client.datasets.profile_report(v), lambda v: client.datasets.profiles(v),
        lambda v: client.recipes.create(v, CLEAN), lambda v: client.recipes.get(v), lambda v: client.recipes.versions(v),
        lambda v: client.recipes.preview(v, "people"), lambda v: client.recipes.preview("clean", v),
        lambda v: client.recipes.apply("clean", v, output="out"), lambda v: client.recipes.apply("clean", "people", output=v),
        lambda v: client.recipes.export(v), lambda v: client.recipes.export("clean", dataset=v), lambda v: client.recipes.fits(v),
    ]
    problems = []
    for value in TRAVERSAL:
        for i, call in enumerate(calls):
            try:
                call(value)
                problems.append((i, value, "no error"))
            except (InvalidArgument, NotFound) as exc:
                if not 400 <= exc.http_status < 500:
                    problems.append((i, value, exc.message))
    assert problems == []
    assert [d.name for d in lake.datasets.list()] == ["people"] and [r.name for r in lake.recipes.list()] == ["clean"]
