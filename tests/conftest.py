"""Shared fixtures: real PostgreSQL, a moto S3 server on loopback, fresh workspaces."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kiln.core.config import Settings, load_settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace

PG_BASE = os.environ.get("KILN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("KILN_TEST_NATS", "nats://127.0.0.1:4222")

# The backend each fixture starts or connects to. A test that uses one (itself or through
# another fixture), or is parametrized with a value naming the backend ("postgres",
# "postgres+s3"), carries that backend's marker: `-m postgres`, `-m "not s3"` select on it.
# Each fixture FAILS when its backend is down, never skips: a quiet skip hides a broken run.
BACKEND_FIXTURES = {
    "postgres": {"pg_url", "pg_schema_url"},
    "s3": {"s3_endpoint", "s3_bucket"},
    "nats": {"nats_url"},
    "ray": {"ray_cluster"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        named = {part for value in params.values() if isinstance(value, str) for part in value.split("+")}
        for backend, fixtures in BACKEND_FIXTURES.items():
            if used & fixtures or backend in named:
                item.add_marker(backend)


def _traversal_strings() -> list[str]:
    """shared/security/traversal.txt beside the checkout (CI lays it there), else the
    copy kept in tests/data so a bare clone still runs the suite."""
    here = Path(__file__).resolve()
    for path in (here.parents[2] / "shared" / "security" / "traversal.txt", here.parent / "data" / "traversal.txt"):
        if path.is_file():
            return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    raise RuntimeError("traversal.txt not found in ../shared/security or tests/data")


TRAVERSAL = _traversal_strings()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's KILN_* settings or kiln.toml."""
    for key in list(os.environ):
        if key.startswith("KILN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KILN_CONFIG", str(tmp_path / "no-kiln.toml"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test session, dropped afterwards."""
    import psycopg

    schema = f"kiln_test_{uuid.uuid4().hex[:10]}"
    dsn = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {dsn}: {exc} (.ci/run starts it)")
    conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{dsn}?options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@contextmanager
def pg_schema(pg_url: str) -> Iterator[str]:
    """A new schema beside ``pg_url``'s, dropped afterwards: its URL."""
    import psycopg

    schema = f"kiln_t_{uuid.uuid4().hex[:10]}"
    dsn = pg_url.split("?", 1)[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{dsn}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A schema of its own for one test (so migrations start from nothing)."""
    with pg_schema(pg_url) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port for the whole session."""
    port = _free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto S3 server did not start")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """A local Ray for one test module, on the loopback address only (DESIGN.md §5), shut
    down at its end. 4 logical CPUs, so a two-host job (runner + one more host) and a job
    still ending from the test before it can share it."""
    from kiln.jobs._ray import shutdown_local_ray, start_local_ray

    ray = start_local_ray(num_cpus=4)
    try:
        yield ray
    finally:
        shutdown_local_ray()


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The NATS server (with JetStream) the streams tests read from."""
    host, port = NATS_URL.removeprefix("nats://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"NATS is not reachable at {NATS_URL}: {exc} (.ci/run starts nats-server -js)")
    return NATS_URL


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; returns its s3:// URL with a prefix."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    name = f"kiln-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/lake"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=str(tmp_path / "kiln"))


@pytest.fixture
def ws(settings: Settings) -> Iterator[Workspace]:
    workspace = Workspace(settings)
    yield workspace
    workspace.close()


@pytest.fixture(params=["sqlite+folder", "postgres+s3"])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on the embedded defaults, and one on PostgreSQL + S3."""
    if request.param == "sqlite+folder":
        workspace = Workspace(load_settings(home=str(tmp_path / "kiln")))
    else:
        db = request.getfixturevalue("pg_schema_url")
        bucket = request.getfixturevalue("s3_bucket")
        endpoint = request.getfixturevalue("s3_endpoint")
        workspace = Workspace(load_settings(home=str(tmp_path / "kiln"), database_url=db, storage_url=bucket, s3_endpoint_url=endpoint))
    yield workspace
    workspace.close()


@pytest.fixture
def ctx():
    return local_context()
