"""``kiln serve`` in the foreground: a registered model or a package folder, three
protocols on one port, trust decided as the server decides it, Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kiln.core.config import load_settings
from kiln.sdk.client import Client
from tests.serving._http_support import custom_package, logistic_package, wait_for

KILN = str(Path(sys.executable).parent / "kiln")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("serve")
    client = Client(settings=load_settings(home=root / "home"))
    folder, model, X = logistic_package(root / "lr")
    client.models.register("lr", path=folder)
    client.models.register("coded", path=custom_package(root / "coded", 2.0))
    return {"home": root / "home", "model": model, "X": X, "custom": root / "coded"}


class Served:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def url(self) -> str:
        match = wait_for(lambda: re.search(r"at (http://127\.0\.0\.1:\d+)", self.text) or self.proc.poll() is not None, timeout=60, what="the URL")
        assert not isinstance(match, bool), self.text
        return match.group(1)


@contextmanager
def kiln_serve(home: Path, *args: str) -> Iterator[Served]:
    env = {**os.environ, "KILN_HOME": str(home)}
    proc = subprocess.Popen([KILN, "serve", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield Served(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def test_kiln_serve_answers_all_three_protocols_and_ctrl_c_stops_it(home: dict[str, object]) -> None:
    X, model = home["X"], home["model"]
    with kiln_serve(home["home"], "lr", "--port", "0", "--workers", "2") as served:  # type: ignore[arg-type]
        url = served.url()
        wait_for(lambda: "Ready." in served.text or served.proc.poll() is not None, timeout=90, what="ready")
        assert served.proc.poll() is None, served.text
        rows = X[:4]  # type: ignore[index]
        csv = "\n".join(",".join(str(v) for v in row) for row in rows)
        assert httpx.post(url + "/invocations", content=csv, headers={"Content-Type": "text/csv"}).json() == model.predict(rows).tolist()  # type: ignore[attr-defined]
        assert httpx.post(url + "/invocations", json={"instances": rows.tolist()}).json() == {"predictions": model.predict(rows).tolist()}  # type: ignore[attr-defined]
        v2 = httpx.post(url + "/v2/models/lr/infer", json={"inputs": [{"name": "x", "shape": [4, 4], "datatype": "FP64", "data": rows.ravel().tolist()}]})
        assert v2.status_code == 200 and v2.json()["model_name"] == "lr"
        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(timeout=30) == 0, served.text
    assert _closed(url)
    assert "Traceback" not in served.text


def test_a_package_with_code_needs_trust(home: dict[str, object]) -> None:
    with kiln_serve(home["home"], "coded", "--port", "0") as served:  # type: ignore[arg-type]
        assert served.proc.wait(timeout=60) != 0
    assert "--trust-code" in served.text and "kiln models trust coded@1" in served.text and "Traceback" not in served.text


def test_a_folder_with_code_serves_with_trust_code(home: dict[str, object]) -> None:
    folder = str(home["custom"])
    with kiln_serve(home["home"], "--folder", folder, "--port", "0") as served:  # type: ignore[arg-type]
        assert served.proc.wait(timeout=60) != 0
    assert "--trust-code" in served.text
    with kiln_serve(home["home"], "--folder", folder, "--port", "0", "--trust-code") as served:  # type: ignore[arg-type]
        url = served.url()
        wait_for(lambda: "Ready." in served.text or served.proc.poll() is not None, timeout=60, what="ready")
        assert httpx.post(url + "/invocations", content=b"1,2", headers={"Content-Type": "text/csv"}).json() == [6.0]
        assert httpx.get(url + "/v2/models/coded").status_code == 200
        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(timeout=30) == 0


@pytest.mark.parametrize(("args", "words"), [(("nope",), "nope"), ((), "MODEL_REF or --folder"), (("lr", "--folder", "."), "one of them")])
def test_bad_arguments_are_one_line_errors(home: dict[str, object], args: tuple[str, ...], words: str) -> None:
    with kiln_serve(home["home"], *args) as served:  # type: ignore[arg-type]
        assert served.proc.wait(timeout=60) != 0
    assert words in served.text and "Traceback" not in served.text
