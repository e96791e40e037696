"""Endpoint tests run real supervisors (``python -m kiln.serving._supervisor``) and workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kiln
from kiln.core.config import load_settings
from kiln.core.errors import KilnError

@pytest.fixture(autouse=True)
def _start_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.serving import _service

    monkeypatch.setattr(_service, "START_LIMIT_S", 60.0)


def custom_model(folder: Path, factor: float = 3.0, *, broken: str = "") -> Path:
    """A package with code/inference.py: predicts factor * sum(row)."""
    (folder / "code").mkdir(parents=True)
    (folder / "weights.txt").write_text(str(factor))
    (folder / "code" / "inference.py").write_text(
        "from pathlib import Path\n"
        "def model_fn(model_dir):\n"
        + (f"    raise RuntimeError({broken!r})\n" if broken else "")
        + "    return float(Path(model_dir, 'weights.txt').read_text())\n"
        "def predict_fn(data, model):\n    return [model * sum(row) for row in data]\n"
    )
    return folder


def register(client: kiln.Client, name: str, folder: Path, *, trust: bool = True) -> str:
    version = client.models.register(name, path=folder)
    ref = f"{name}@{version.version}"
    if trust:
        client.models.trust(ref)
    return ref


def delete_all(client: kiln.Client) -> None:
    """No supervisor outlives its test."""
    for ep in client.endpoints.list():
        try:
            client.endpoints.delete(ep.name)
        except KilnError:
            pass


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    try:
        yield c
    finally:
        delete_all(c)
        c.close()


@pytest.fixture
def models(client: kiln.Client, tmp_path: Path) -> dict[str, str]:
    """Two trusted versions of 'times' (×3, ×5) and an untrusted 'stranger'."""
    refs = {
        "v1": register(client, "times", custom_model(tmp_path / "m1", 3.0)),
        "v2": register(client, "times", custom_model(tmp_path / "m2", 5.0)),
        "stranger": register(client, "stranger", custom_model(tmp_path / "m3", 7.0), trust=False),
    }
    return refs


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        time.sleep(0.05)
