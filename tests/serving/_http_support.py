"""Helpers for the serving-process tests: model packages, specs, a supervisor to run, polling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvicorn

from kiln.serving._app import ServingApp
from kiln.serving._spec import EndpointSpec, VariantSpec

# A model with handlers (and no heavy framework, so a worker starts in about a second):
# it answers factor * (sum of the row); a row summing to 999 makes it raise, one summing
# to 777 makes it hang, one summing to 555 makes it take a second.
INFERENCE = """\
import time
from pathlib import Path
def model_fn(model_dir):
    return float(Path(model_dir, "factor.txt").read_text())
def predict_fn(data, model):
    out = []
    for row in data:
        total = float(sum(row))
        if total == 999:
            raise ValueError("the model refuses 999")
        if total == 777:
            time.sleep(60)
        if total == 555:
            time.sleep(1.0)
        out.append(model * total)
    return out
"""


def custom_package(folder: Path, factor: float) -> Path:
    from kiln.registry._build import prepare_folder
    from kiln.registry._package import write_manifest

    (folder / "code").mkdir(parents=True)
    (folder / "factor.txt").write_text(str(factor))
    (folder / "code" / "inference.py").write_text(INFERENCE)
    write_manifest(folder, prepare_folder(folder))
    return folder


def logistic_package(folder: Path) -> tuple[Path, Any, Any]:
    """A LogisticRegression on generated data, packaged (skops); returns (folder, model, X)."""
    from sklearn.linear_model import LogisticRegression

    from kiln.registry._build import package_model

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] - 0.5 * X[:, 2] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    package_model(model, folder, sample_input=X[:5])
    return folder, model, X


def write_spec(run_dir: Path, generation: int, variants: list[VariantSpec], **fields: Any) -> EndpointSpec:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = EndpointSpec(name=fields.pop("name", "ep"), generation=generation, variants=tuple(variants), run_dir=str(run_dir), **fields)
    tmp = run_dir / f".gen-{generation}.tmp"
    tmp.write_text(spec.model_dump_json())
    tmp.rename(run_dir / f"gen-{generation}.json")
    return spec


def wait_for(check: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def state(run_dir: Path) -> dict[str, Any]:
    try:
        return orjson.loads((run_dir / "state.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def supervisor(run_dir: Path, *, ready: bool = True, timeout: float = 90.0) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m kiln.serving._supervisor`` on ``run_dir``, ready (or not) before the body; stopped after."""
    proc = subprocess.Popen([sys.executable, "-m", "kiln.serving._supervisor", "--run-dir", str(run_dir), "--no-ship"], start_new_session=True)
    try:
        if ready:
            wait_for(lambda: proc.poll() is not None or state(run_dir).get("status") == "ready", timeout=timeout, what="the endpoint to be ready")
            assert proc.poll() is None, f"the supervisor exited: {log(run_dir)}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def log(run_dir: Path) -> str:
    try:
        return (run_dir / "supervisor.log").read_text()[-4000:]
    except OSError:
        return ""


@contextlib.contextmanager
def serve(spec: EndpointSpec, servables: dict[str, Any], **kwargs: Any) -> Iterator[tuple[str, ServingApp]]:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = ServingApp(spec, servables, port=port, **kwargs)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="off", access_log=False, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)
        app.close()
