"""Jobs run for real: runners are child processes of the test, user code their children."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kiln
from kiln.core.errors import KilnError
from kiln.jobs import Job
from kiln.core.config import load_settings

PY = sys.executable


@pytest.fixture
def client(tmp_path: Path) -> Iterator[kiln.Client]:
    c = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    try:
        yield c
    finally:
        stop_all(c)
        c.close()


def stop_all(client: kiln.Client) -> None:
    """No runner outlives its test: stop what still runs and wait for it."""
    for job in client.jobs.list(limit=1000):
        if not job.done:
            try:
                client.jobs.stop(job.name)
            except KilnError:
                pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(not j.done for j in client.jobs.list(limit=1000)):
        time.sleep(0.1)


def run_cmd(client: kiln.Client, code: str, *, wait: bool = True, **kw: object) -> Job:
    """A processing job running ``python -c code``."""
    return client.processing.run(command=[PY, "-c", code], wait=wait, logs=False, **kw)  # type: ignore[arg-type]


def wait_state(client: kiln.Client, name: str, *states: str, timeout: float = 30.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = client.jobs.get(name)
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {name} is {job.state}, not {states}, after {timeout} s")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # it may be reaped between the two looks
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
