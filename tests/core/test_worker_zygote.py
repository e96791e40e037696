"""Warm worker starts: a worker forked by the zygote loads and predicts as a spawned one does,
sees no secret, reports crashes and timeouts the same way, ends with its owner, and a
failing zygote falls back on spawning."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.linear_model import LogisticRegression

from kiln.core import _worker_zygote as zygote
from kiln.core.errors import ModelError
from kiln.core.worker import Worker
from kiln.registry import package_model, prepare_folder
from kiln.registry._worker import WorkerPredictor

pytestmark = pytest.mark.xdist_group("worker-zygote")


@pytest.fixture(autouse=True)
def _own_zygote() -> Iterator[None]:
    zygote.shutdown()
    yield
    zygote.shutdown()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _code_model(tmp_path: Path, body: str) -> tuple[Path, object]:
    """A custom package whose model_fn runs ``body`` (then serves the sum of each row)."""
    folder = tmp_path / "code-model"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(
        "import json, os, sys, time\n"
        "def model_fn(model_dir):\n" + textwrap.indent(body, "    ") + "\n    return 'sum'\n"
        "def predict_fn(data, model):\n    return data.sum(axis=1).to_numpy()\n"
    )
    return folder, prepare_folder(folder)


def _start(folder: Path, manifest: object, tmp_path: Path, timeout_s: float = 60) -> WorkerPredictor:
    return WorkerPredictor.start(folder, manifest, trusted=True, trusted_types=(), timeout_s=timeout_s, label="model m@1", home=tmp_path)  # type: ignore[arg-type]


def test_a_forked_worker_loads_and_predicts(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(200, 4))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    package_model(model, tmp_path / "lr", sample_input=X[:3])
    manifest = prepare_folder(tmp_path / "lr")
    with _start(tmp_path / "lr", manifest, tmp_path) as first, _start(tmp_path / "lr", manifest, tmp_path) as second:
        assert type(first.worker._proc).__name__ == "ForkedProcess"
        assert np.array_equal(first.predict(X), model.predict(X))
        assert np.allclose(second.predict_proba(X), model.predict_proba(X))
        assert first.worker.pid != second.worker.pid
        assert os.getpgid(first.worker.pid) == first.worker.pid  # its own process group


def test_a_forked_worker_sees_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mark = tmp_path / "env.json"
    monkeypatch.setenv("KILN_AUDIT_KEY", "s3cr3t-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("PGPASSWORD", "s3cr3t-value")
    monkeypatch.setenv("GREETING", "hi")
    folder, manifest = _code_model(tmp_path, f"open({str(mark)!r}, 'w').write(json.dumps({{'env': dict(os.environ), 'cwd': os.getcwd()}}))")
    with _start(folder, manifest, tmp_path) as predictor:
        assert type(predictor.worker._proc).__name__ == "ForkedProcess"
        seen = orjson.loads(mark.read_bytes())
        with open(f"/proc/{zygote._shared().proc.pid}/environ", "rb") as fh:  # type: ignore[union-attr]
            assert b"s3cr3t-value" not in fh.read()  # the zygote was started without them too
    assert seen["env"]["GREETING"] == "hi"
    assert not [k for k in seen["env"] if k.startswith(("KILN_", "AWS_", "PG"))]
    assert "kiln-worker-" in seen["cwd"]


@pytest.mark.parametrize(("body", "expected"), [
    ("os._exit(3)", "crashed its worker process (exit code 3)"),
    ("os.kill(os.getpid(), 9)", "crashed its worker process (killed by SIGKILL)"),
    ("time.sleep(60)", "did not answer within 1.5 s; its worker process was stopped"),
])
def test_crashes_and_timeouts_are_reported_as_before(tmp_path: Path, body: str, expected: str) -> None:
    folder, manifest = _code_model(tmp_path, body)
    for warm in ("1", "0"):
        os.environ["KILN_WORKER_WARM"] = warm
        try:
            worker = Worker(timeout_s=1.5, label="model m@1")
            with pytest.raises(ModelError, match=expected.replace("(", r"\(").replace(")", r"\)")):
                worker.call("kiln.registry._worker:load", {"folder": str(folder), "manifest": manifest.model_dump_json(), "trusted": True})  # type: ignore[attr-defined]
            assert not worker.alive
        finally:
            del os.environ["KILN_WORKER_WARM"]


def test_a_timed_out_worker_is_killed_with_its_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    folder, manifest = _code_model(tmp_path, f"import subprocess\np = subprocess.Popen(['sleep', '60'])\nopen({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}')\ntime.sleep(60)")
    worker = Worker(timeout_s=3, label="model m@1")
    with pytest.raises(ModelError, match="did not answer"):
        worker.call("kiln.registry._worker:load", {"folder": str(folder), "manifest": manifest.model_dump_json(), "trusted": True})  # type: ignore[attr-defined]
    for pid in map(int, pids.read_text().split()):
        assert _wait_gone(pid)


def test_killing_the_owner_ends_its_workers(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    folder, manifest = _code_model(tmp_path, f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}}\\n')")
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from kiln.registry._load import load_folder
        from kiln.registry._models import Manifest
        from kiln.registry._worker import WorkerPredictor
        manifest = Manifest.model_validate_json({manifest.model_dump_json()!r})  # type: ignore[attr-defined]
        ps = [WorkerPredictor.start(Path({str(folder)!r}), manifest, trusted=True, trusted_types=(), timeout_s=60, label="m", home=Path("/"))
              for _ in range(2)]
        print(type(ps[0].worker._proc).__name__, flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ForkedProcess"
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert all(_wait_gone(p) for p in workers)


def test_killing_the_zygote_ends_its_workers_and_the_next_worker_starts(tmp_path: Path) -> None:
    worker = Worker(timeout_s=30)
    with pytest.raises(ModelError, match="runs only kiln functions"):
        worker.call("os:getpid")
    pid = worker.pid
    assert pid is not None and type(worker._proc).__name__ == "ForkedProcess"
    first = zygote._shared().proc.pid  # type: ignore[union-attr]
    os.kill(first, signal.SIGKILL)
    assert _wait_gone(pid)
    deadline = time.monotonic() + 10
    while worker.alive and time.monotonic() < deadline:  # the status pipe closes as the zygote's exit ends
        time.sleep(0.05)
    assert not worker.alive
    with pytest.raises(ModelError, match="No module named 'kiln.nothing'"):
        worker.call("kiln.nothing:here")  # a new zygote, a new worker
    assert type(worker._proc).__name__ == "ForkedProcess" and zygote._shared().proc.pid != first  # type: ignore[union-attr]
    worker.close()


def test_the_fallback_spawns_when_the_zygote_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: object) -> None:
        raise OSError("no zygote here")

    monkeypatch.setattr(zygote, "fork_worker", broken)
    with Worker(timeout_s=30) as worker:
        with pytest.raises(ModelError, match="No module named 'kiln.nothing'"):
            worker.call("kiln.nothing:here")
        assert isinstance(worker._proc, subprocess.Popen)


def test_warm_starts_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_WORKER_WARM", "0")
    with Worker(timeout_s=30) as worker:
        with pytest.raises(ModelError, match="No module named 'kiln.nothing'"):
            worker.call("kiln.nothing:here")
        assert isinstance(worker._proc, subprocess.Popen)
    assert zygote._client is None or zygote._client.proc is None


def test_a_tight_memory_limit_spawns_a_fresh_worker() -> None:
    with Worker(timeout_s=30, memory_mb=256) as worker:
        with pytest.raises(ModelError, match="No module named 'kiln.nothing'"):
            worker.call("kiln.nothing:here")
        assert isinstance(worker._proc, subprocess.Popen)
    with Worker(timeout_s=30, memory_mb=64 << 10) as worker:
        with pytest.raises(ModelError, match="No module named 'kiln.nothing'"):
            worker.call("kiln.nothing:here")
        assert type(worker._proc).__name__ == "ForkedProcess"
        limit = open(f"/proc/{worker.pid}/limits").read()
        assert str(64 << 30) in limit
