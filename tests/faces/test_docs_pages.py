"""/docs and /redoc work offline: their assets ship in the package, and a real browser
renders every operation from a real `kiln server` with auth on, reaching nothing but it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiln.core.workspace import Workspace
from kiln.server._docs import STATIC
from kiln.server.app import create_app
from tests.conftest import TRAVERSAL
from tests.faces.conftest import SyncASGI, real_kiln_server

CHROMIUM = Path("/usr/bin/chromium")
PAGES = ["/docs", "/redoc"]


@pytest.fixture
def auth_http(ws: Workspace) -> Iterator[httpx.Client]:
    """A browser's view: no token, no X-Kiln-Client header."""
    with httpx.Client(transport=SyncASGI(create_app(ws, auth=True, allowed_hosts=["testserver"])), base_url="http://testserver") as client:
        yield client


@pytest.mark.parametrize("page", PAGES)
def test_pages_use_only_assets_the_package_ships_and_need_no_token(auth_http: httpx.Client, page: str) -> None:
    assert auth_http.get("/v1/datasets").status_code == 401  # auth is on
    html = auth_http.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]?(?:https?:)?//""", html.text), "a CDN or other site is referenced"
    urls = re.findall(r"""(?:src|href)="([^"]+)"|url: '([^']+)'|spec-url="([^"]+)\"""", html.text)
    urls = [next(u for u in group if u) for group in urls]
    assert "/openapi.json" in urls and any(u.endswith(".js") for u in urls)
    for url in urls:
        resp = auth_http.get(url)
        assert resp.status_code == 200, url
        if url.startswith("/static/"):
            assert resp.content == (STATIC / url.removeprefix("/static/")).read_bytes()


def test_static_assets_keep_their_licences_and_nothing_escapes_the_folder(auth_http: httpx.Client) -> None:
    for name in ["swagger-ui.LICENSE.txt", "swagger-ui.NOTICE.txt", "redoc.LICENSE.txt"]:
        assert auth_http.get(f"/static/{name}").status_code == 200
    for bad in ["/static/../app.py", "/static/%2e%2e/app.py", "/static/missing.js"]:
        assert auth_http.get(bad).status_code == 404


def test_openapi_has_no_document_relative_defs(auth_http: httpx.Client) -> None:
    """ReDoc fails on '#/$defs/...' (the inline schema of an upload route used to have one)."""
    text = auth_http.get("/openapi.json").text
    assert "$defs" not in text
    assert '"#/components/schemas/IngestOptions"' in text


@pytest.fixture
def real_server(tmp_path: Path, migrated_db: Path) -> Iterator[str]:
    with real_kiln_server(tmp_path, migrated_db) as (url, _, _):
        assert httpx.get(f"{url}/v1/datasets", headers={"x-kiln-client": "1"}).status_code == 401  # auth on
        yield url


def _dump_dom(url: str, profile: Path, *, height: int = 4000) -> str:
    """The page's DOM after its scripts ran, in headless Chromium that can resolve no name
    but 127.0.0.1: a CDN request would fail, and the page with it. Swagger UI renders only
    the operations inside the window (a virtual list), so the window is as tall as asked."""
    args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size=1280,{height}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--virtual-time-budget=30000", "--dump-dom", url]
    done = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)")
@pytest.mark.timeout(300)
def test_a_browser_renders_every_operation_offline(real_server: str, tmp_path: Path) -> None:
    spec: dict[str, Any] = httpx.get(f"{real_server}/openapi.json").json()
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    # Every operation collapsed is one 40-odd-pixel row, every tag a heading: 80 px each is room to spare.
    docs = _dump_dom(f"{real_server}/docs", tmp_path / "p1", height=2000 + 80 * len(operations))
    shown = set(re.findall(r'class="opblock opblock-(\w+)[^"]*".*?data-path="([^"]+)"', docs, flags=re.S))
    assert {(p, m) for m, p in shown} == operations
    assert "Authorize" in docs  # where "Try it out" gets its token
    redoc = _dump_dom(f"{real_server}/redoc", tmp_path / "p2")
    assert "Something went wrong" not in redoc
    assert set(re.findall(r'id="operation/([^"]+)"', redoc)) == ids


@pytest.mark.parametrize("value", TRAVERSAL)
def test_static_assets_refuse_traversal(ws: Workspace, value: str) -> None:
    """/static is public: no string reaches a file outside the shipped assets."""
    from urllib.parse import quote

    with httpx.Client(transport=SyncASGI(create_app(ws)), base_url="http://127.0.0.1") as http:
        for path in (f"/static/{value}", f"/static/{quote(value, safe='')}", f"/static/x/{value}"):
            resp = http.get(path)
            assert resp.status_code in (400, 404), (path, resp.status_code)
            assert "error" in resp.json(), path  # the error shape, never a file's bytes
