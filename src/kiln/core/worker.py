"""Worker processes: users' code (pickles, ``inference.py``, model libraries) runs here,
never in the API process.

A :class:`Worker` is a child Python process, in its own process group, that the
parent drives over its stdin and stdout: each message is a JSON header followed
by raw byte blobs, each length-prefixed. The child runs ``kiln.*`` functions by
name (``"kiln.registry._worker:predict"``), which keep what they load in a state
dict that lives as long as the child. Every call has a time limit; a call that
runs past it, or a child that crashes, is killed with its whole process group
and reported as :class:`~kiln.core.errors.ModelError`, and the next call starts a
fresh child.

Nothing the child sends back is unpickled: headers are JSON and arrays come as
``.npy`` without objects, or as JSON (:func:`pack_array`). A model that takes
over its worker can lie in its answer, not run code in the parent.

A child starts warm by default: forked by this process's worker zygote
(:mod:`kiln.core._worker_zygote`), which has imported the model libraries and the serving
runtime once; on any failure of the zygote, or with ``KILN_WORKER_WARM=0``, it is a fresh
interpreter (``python -m kiln.core.worker``). Either way the parent drives it the same way.

The child gets an environment without Kiln's secrets (``KILN_*``, cloud keys,
database passwords). This is process isolation, not a sandbox: a trusted model's
code still runs as the server's user.
"""

from __future__ import annotations

import io
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import orjson

from kiln.core.errors import _BY_CODE, KilnError, ModelError

__all__ = ["Worker", "pack_array", "unpack_array"]

_LEN = struct.Struct(">Q")
_MAX_FRAME = 8 << 30
# Variables a worker never sees: Kiln's own settings (the audit key, tokens, database
# URLs with passwords) and cloud or database credentials.
_SECRET_PREFIXES = ("KILN_", "AWS_", "AZURE_", "GOOGLE_", "PG", "MYSQL", "REDIS")


def worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(_SECRET_PREFIXES)}


class Worker:
    """A child process that runs model code for this process, one call at a time.

    Args:
        timeout_s: the default time limit of one call (loading a model counts as a call).
        label: names the worker in errors (``model iris@2``).
        redact: server paths replaced by ``<path>`` in the errors the worker sends back.
        memory_mb: the child's address-space limit (``RLIMIT_AS``), set as it starts; an
            allocation past it raises MemoryError in the child. None: no limit.
        error: the error a timeout, a crash or the child's own non-Kiln exception becomes
            (:class:`~kiln.core.errors.ModelError` for models, FunctionError for functions).
    """

    def __init__(
        self, *, timeout_s: float, label: str = "model", redact: Sequence[str] = (), memory_mb: int | None = None,
        error: type[KilnError] = ModelError,
    ) -> None:
        self.timeout_s = timeout_s
        self.label = label
        self.redact = sorted((p for p in redact if p), key=len, reverse=True)
        self.memory_mb = memory_mb
        self.error = error
        self._proc: Any = None  # a subprocess.Popen, or a ForkedProcess from the zygote
        self._cwd: tempfile.TemporaryDirectory[str] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's pid, which is also its process group's id; None while none runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _start(self) -> Any:
        self._cwd = tempfile.TemporaryDirectory(prefix="kiln-worker-")
        from kiln.core import _worker_zygote as zygote

        if zygote.enabled():
            try:  # forked from the warm zygote: the same child, without a fresh interpreter's imports
                self._proc = zygote.fork_worker(cwd=self._cwd.name, env=worker_env(), memory_mb=self.memory_mb)
                return self._proc
            except Exception:  # noqa: BLE001 - any failure of the zygote: spawn, as without it
                pass
        argv = [sys.executable, "-m", "kiln.core.worker"]
        if self.memory_mb is not None:
            argv += ["--memory-mb", str(int(self.memory_mb))]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            cwd=self._cwd.name, env=worker_env(), start_new_session=True,
        )
        return self._proc

    def call(self, target: str, args: dict[str, Any] | None = None, blobs: Sequence[bytes] = (), *, timeout_s: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
        """Run ``target`` (``"kiln.module:function"``) in the child.

        Returns:
            The function's JSON result and its blobs.

        Raises:
            KilnError: the function raised one (the same class comes back, with its details).
            ModelError: the function raised anything else, the child crashed, or the
                call ran past its time limit (the child is then killed); the worker's
                ``error`` class in place of ModelError when one was given.
        """
        proc = self._proc if self.alive else self._start()
        assert proc.stdin is not None and proc.stdout is not None
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        try:
            _write_frame(proc.stdin, {"target": target, "args": args or {}}, blobs)
            header, out = _read_frame(proc.stdout.fileno(), deadline)
        except TimeoutError:
            self.close()
            raise self.error(f"{self.label} did not answer within {limit:g} s; its worker process was stopped") from None
        except (OSError, EOFError, ValueError):
            code = self._reap()
            raise self.error(f"{self.label} crashed its worker process ({_exit_text(code)})") from None
        error = header.get("error")
        if error is not None:
            cls = _BY_CODE.get(str(error.get("code")), ModelError)
            if cls in (KilnError, ModelError):
                cls = self.error
            details = error.get("details")
            raise cls(self._hide(str(error.get("message", "")))[:2000], details=self._hide(details) if isinstance(details, dict) else None)
        return dict(header.get("result") or {}), out

    def _hide(self, value: Any) -> Any:
        """``value`` with every server path in ``redact`` replaced by ``<path>``."""
        if isinstance(value, str):
            for path in self.redact:
                value = value.replace(path, "<path>")
            return value
        if isinstance(value, dict):
            return {k: self._hide(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._hide(v) for v in value]
        return value

    def _reap(self) -> int | None:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.close()
        return code

    def close(self) -> None:
        """Stop the child and everything it started."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            proc.wait()
        if self._cwd is not None:
            self._cwd.cleanup()
            self._cwd = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if self._proc is not None:
            self.close()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# -- framing ----------------------------------------------------------------------------------


def _write_frame(out: Any, header: dict[str, Any], blobs: Sequence[bytes]) -> None:
    head = orjson.dumps({**header, "blobs": len(blobs)})
    parts = [_LEN.pack(len(head)), head]
    for blob in blobs:
        parts += [_LEN.pack(len(blob)), blob]
    out.write(b"".join(parts))
    out.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None) -> tuple[dict[str, Any], list[bytes]]:
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
    if size > _MAX_FRAME:
        raise ValueError("frame too large")
    header = orjson.loads(_read_exact(fd, size, deadline))
    if not isinstance(header, dict):
        raise ValueError("bad frame")
    blobs = []
    for _ in range(int(header.pop("blobs", 0))):
        (n,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
        if n > _MAX_FRAME:
            raise ValueError("frame too large")
        blobs.append(_read_exact(fd, n, deadline))
    return header, blobs


# -- arrays, without pickles ------------------------------------------------------------------


def pack_array(values: Any) -> tuple[str, bytes]:
    """An array as ``("npy", bytes)`` when numpy can store it without pickling, else ``("json", bytes)``."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind in "biufcmM":
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return "npy", buf.getvalue()
    return "json", orjson.dumps(arr.tolist(), option=orjson.OPT_SERIALIZE_NUMPY, default=str)


def unpack_array(kind: str, data: bytes) -> Any:
    import numpy as np

    if kind == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "json":
        values = orjson.loads(data)
        out = np.empty(len(values), dtype=object)
        out[:] = values if all(not isinstance(v, list) for v in values) else [tuple(v) for v in values]
        return out
    raise ModelError(f"the worker sent an array in an unknown encoding {kind!r}")


# -- the child -------------------------------------------------------------------------------


def _limit_memory(memory_mb: int) -> None:
    """Cap the child's address space (``RLIMIT_AS``), soft and hard, so the code it runs
    cannot raise it again; never above a hard limit already set."""
    import resource

    limit = int(memory_mb) << 20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _serve(memory_mb: int | None = None) -> None:
    import importlib

    if memory_mb:
        _limit_memory(memory_mb)
    # The protocol keeps its own copies of the pipes; the user's code sees /dev/null as
    # stdin and the parent's stderr as stdout, so a print() cannot corrupt a frame.
    proto_in = os.dup(0)
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    state: dict[str, Any] = {}
    while True:
        try:
            header, blobs = _read_frame(proto_in, None)
        except EOFError:
            return
        target = str(header.get("target", ""))
        module, _, name = target.partition(":")
        try:
            if not module.startswith("kiln.") or not name:
                raise ModelError(f"the worker runs only kiln functions, not {target!r}")
            fn = getattr(importlib.import_module(module), name)
            result, out = fn(state, header.get("args") or {}, blobs)
            _write_frame(proto_out, {"result": result}, out)
        except KilnError as exc:
            try:
                orjson.dumps(exc.details)
                details = exc.details
            except TypeError:
                details = {}
            _write_frame(proto_out, {"error": {"code": exc.code, "message": exc.message, "details": details}}, ())
        except Exception as exc:  # noqa: BLE001 - the model's own error, reported to the parent
            _write_frame(proto_out, {"error": {"code": "model_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}}, ())


if __name__ == "__main__":
    _serve(int(sys.argv[2]) if sys.argv[1:2] == ["--memory-mb"] else None)
