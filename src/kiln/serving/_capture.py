"""Data capture (CONTRACTS.md §4): sampled requests and responses as SageMaker's JSONL.

A worker appends each captured invocation to a spool file of its own under
``<run_dir>/capture-spool/<endpoint>/<variant>/yyyy/mm/dd/hh/`` (named ``.<worker>-<seq>.jsonl.partial``
while open); it closes a file after 1,000 records, after 5 s, or when the hour changes,
and renames it to ``<worker>-<seq>.jsonl``, so a reader only ever sees complete files.
The supervisor (which has the object store) moves complete files into the store with
:func:`ship`, at ``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<worker>-<seq>.jsonl`` (or
under the spec's own prefix).

Capture runs after the response is sent, on the worker's event loop thread only.
"""

from __future__ import annotations

import base64
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from kiln.serving._spec import CaptureSpec

__all__ = ["MAX_AGE_S", "MAX_RECORDS", "Capture", "capture_line", "ship"]

MAX_RECORDS = 1000
MAX_AGE_S = 5.0
SPOOL = "capture-spool"


def _encoding(content_type: str, spec: CaptureSpec) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in spec.csv_content_types:
        return "CSV"
    if media in spec.json_content_types:
        return "JSON"
    return "BASE64"


def _part(body: bytes, content_type: str, mode: str, spec: CaptureSpec) -> dict[str, str]:
    encoding = _encoding(content_type, spec)
    data: str | None = None
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_line(
    spec: CaptureSpec, *, request: bytes, request_type: str, response: bytes, response_type: str,
    when: float, inference_id: str | None = None, event_id: str | None = None,
) -> bytes:
    """One capture record, as one JSON line (with its newline)."""
    data: dict[str, Any] = {}
    if "Input" in spec.modes:
        data["endpointInput"] = _part(request, request_type, "INPUT", spec)
    if "Output" in spec.modes:
        data["endpointOutput"] = _part(response, response_type, "OUTPUT", spec)
    meta = {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))}
    if inference_id:
        meta["inferenceId"] = inference_id
    return orjson.dumps({"captureData": data, "eventMetadata": meta, "eventVersion": "0"}) + b"\n"


class _Open:
    __slots__ = ("count", "fh", "final", "hour", "opened", "partial")

    def __init__(self, fh: IO[bytes], partial: Path, final: Path, hour: str, opened: float) -> None:
        self.fh, self.partial, self.final, self.hour, self.opened, self.count = fh, partial, final, hour, opened, 0


class Capture:
    """A worker's capture writer: sampling, one open spool file per variant, closing rules.

    Args:
        spec: the endpoint's capture settings.
        endpoint: the endpoint's name (the spool's first folder).
        run_dir: the endpoint's run folder.
        worker: names this worker's files (unique among the endpoint's workers).
    """

    def __init__(self, spec: CaptureSpec, *, endpoint: str, run_dir: str | Path, worker: str, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.percent = spec.percent
        self.root = Path(run_dir) / SPOOL / endpoint
        self.worker = worker
        self.clock = clock
        self._open: dict[str, _Open] = {}
        self._seq = 0

    def sample(self) -> bool:
        """Whether to capture this request (the sampling percentage, drawn per request)."""
        return self.percent >= 100.0 or (self.percent > 0.0 and random.random() * 100.0 < self.percent)

    def record(self, variant: str, *, request: bytes, request_type: str, response: bytes, response_type: str, inference_id: str | None = None) -> None:
        now = self.clock()
        line = capture_line(self.spec, request=request, request_type=request_type, response=response, response_type=response_type, when=now, inference_id=inference_id)
        hour = time.strftime("%Y/%m/%d/%H", time.gmtime(now))
        current = self._open.get(variant)
        if current is not None and current.hour != hour:
            self._close(variant)
            current = None
        if current is None:
            current = self._start(variant, hour, now)
        current.fh.write(line)
        current.count += 1
        if current.count >= MAX_RECORDS:
            self._close(variant)

    def _start(self, variant: str, hour: str, now: float) -> _Open:
        self._seq += 1
        folder = self.root / variant / hour
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.worker}-{self._seq:06d}.jsonl"
        partial = folder / f".{name}.partial"
        opened = _Open(open(partial, "wb"), partial, folder / name, hour, now)  # noqa: SIM115 - closed by _close
        self._open[variant] = opened
        return opened

    def _close(self, variant: str) -> None:
        current = self._open.pop(variant, None)
        if current is None:
            return
        current.fh.close()
        os.replace(current.partial, current.final)

    def tick(self) -> None:
        """Close the files open longer than :data:`MAX_AGE_S` (called about once a second)."""
        now = self.clock()
        for variant in [v for v, o in self._open.items() if now - o.opened >= MAX_AGE_S]:
            self._close(variant)

    def close(self) -> None:
        for variant in list(self._open):
            self._close(variant)


def ship(run_dir: str | Path, put: Callable[[str, Path], Any], *, endpoint: str, prefix: str = "") -> int:
    """Move the endpoint's complete spool files into the store; returns how many moved.

    Args:
        run_dir: the endpoint's run folder.
        put: stores one file under a key (``ObjectStore.put_file``).
        endpoint: the endpoint's name.
        prefix: the store key prefix of this endpoint's capture (``CaptureSpec.prefix``;
            default ``capture/<endpoint>``): keys are ``<prefix>/<variant>/yyyy/mm/dd/hh/<file>``.
    """
    spool = Path(run_dir) / SPOOL / endpoint
    if not spool.is_dir():
        return 0
    base = (prefix or f"capture/{endpoint}").strip("/")
    moved = 0
    for path in sorted(spool.rglob("*.jsonl")):
        if path.name.startswith("."):
            continue
        put(f"{base}/{path.relative_to(spool).as_posix()}", path)
        path.unlink()
        moved += 1
    return moved
