"""Monitoring fixtures: a real endpoint (with data capture) to monitor, and capture files
written in the exact layout and format the serving stage ships (its own ``capture_line``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import kiln
from kiln.core.workspace import Workspace
from kiln.serving._capture import capture_line
from kiln.serving._spec import CaptureSpec
from tests.faces.conftest import cli  # noqa: F401 - the CLI runner shared with the faces tests
from tests.serving.conftest import custom_model, delete_all

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0


@contextmanager
def real_endpoint(client: kiln.Client, tmp_path: Path, name: str = "ep") -> Iterator[str]:
    """A served endpoint with data capture on (100%), deleted on exit."""
    folder = tmp_path / f"model-{name}"
    if not folder.exists():
        client.models.register("times", path=custom_model(folder, 3.0))
        client.models.trust("times@1")
    client.endpoints.create(name, model="times@1", capture_percent=100)
    try:
        yield name
    finally:
        delete_all(client)


def csv_body(row: Any) -> bytes:
    return (",".join("" if v is None else str(v) for v in row) + "\n").encode()


def put_capture(ws: Workspace, endpoint: str, events: list[tuple[float, bytes, bytes]], *, name: str = "w0-000001",
                content_type: str = "text/csv", extra: list[bytes] | None = None, ids: list[str] | None = None) -> str:
    """Write captured events ``(when, request, response)`` into the hour folder of the first,
    as the endpoint's supervisor ships them; returns the key."""
    spec = CaptureSpec(enabled=True)
    when0 = events[0][0] if events else T0
    lines = [capture_line(spec, request=req, request_type=content_type, response=resp, response_type="text/csv", when=when,
                          inference_id=ids[i] if ids else None) for i, (when, req, resp) in enumerate(events)]
    key = f"capture/{endpoint}/AllTraffic/{time.strftime('%Y/%m/%d/%H', time.gmtime(when0))}/{name}.jsonl"
    ws.store.put_bytes(key, b"".join(lines) + b"".join(extra or []))
    return key


def frame(n: int, *, shift: float = 0.0, seed: int = 0, colours: tuple[str, ...] = ("red", "green", "blue")) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(shift, 1.0, n), "k": rng.integers(0, 50, n), "c": rng.choice(colours, n)}
