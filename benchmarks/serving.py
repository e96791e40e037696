"""Benchmark: real-time serving against its floors (issue #11 §6).

One scikit-learn LogisticRegression (generated data) is registered in a fresh workspace
and served by ``kiln serve REF --workers 2`` (uvicorn on uvloop + httptools under Kiln's
supervisor). Beside it, in the same run and under the same load:

  * the bare floor: a raw ASGI app returning a constant, ``uvicorn --workers 2`` on
    uvloop + httptools (what no serving stack can beat on this machine);
  * the in-process floor: ``model.predict`` on one numpy row, and the runtime's own
    ``Servable.invoke`` on one CSV row (decode, predict, encode) in this process.

Load comes from wrk (Debian's package): ``-t2 -c8`` for throughput and ``-t1 -c1`` for
latency, single-row ``text/csv`` and ``application/json`` POSTs (the bare app gets the
same requests). Printed: requests/s, p50 and p99 for each, the serving processes' CPU
time per request (steadier than requests/s on a machine others load too: capacity is
its inverse), and the ratios the issue's targets are about (Kiln's requests/s at least
half of the bare app's; Kiln's p50 at one connection within 0.5 ms of the fastest
in-process predict).

The MLflow comparison (``mlflow models serve`` on the same model) is to be added beside
these. The machine's load average is printed: on a shared 2-core machine the figures
move with it. Usage: ``python benchmarks/serving.py [--duration 10] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

BARE_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"[1]"})
"""

LUA = """\
wrk.method = "POST"
wrk.body = {body!r}
wrk.headers["Content-Type"] = "{ctype}"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[Any], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/ping", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready in {timeout:g} s")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root``'s descendants (the serving processes)."""
    import psutil

    total = 0.0
    for child in psutil.Process(root).children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wrk(url: str, *, body: str, ctype: str, threads: int, connections: int, duration: int, folder: Path, root: int) -> dict[str, float]:
    script = folder / f"post-{abs(hash((body, ctype)))}.lua"
    script.write_text(LUA.format(body=body, ctype=ctype).replace("'", '"'))
    cpu_before = _cpu(root)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url + "/invocations"],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = _cpu(root) - cpu_before
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        print(f"    ! {url}: {errors.group(0) if errors else ''} {socket_errors.group(0) if socket_errors else ''}")
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu / max(count, 1) * 1e6}


def in_process(model: Any, servable: Any, row: np.ndarray, csv: bytes, repeat: int = 2000) -> dict[str, float]:
    """Median seconds of one call: the framework's predict on a numpy row, the runtime's invoke on CSV."""
    out = {}
    for label, fn in (("predict", lambda: model.predict(row)), ("invoke", lambda: servable.invoke(csv, "text/csv", None))):
        for _ in range(50):
            fn()
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        out[label] = statistics.median(runs) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (the issue measured 20)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--features", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    from sklearn.linear_model import LogisticRegression

    import kiln
    from kiln.core.config import load_settings
    from kiln.serving._runtime import Servable

    tmp = Path(tempfile.mkdtemp(prefix="kiln-bench-serving-"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, args.features))
    y = (X @ rng.normal(size=args.features) > 0).astype(int)
    model = LogisticRegression(max_iter=500).fit(X, y)
    client = kiln.Client(settings=load_settings(home=str(tmp / "home")))
    client.models.register("bench-lr", model=model, sample_input=X[:5])
    row = X[:1]
    csv = ",".join(f"{v:.6f}" for v in row[0])
    json_body = "[[" + csv + "]]"
    package = tmp / "pkg"
    client.models.download("bench-lr@1", package)
    servable = Servable.load(package, trusted=False, name="bench-lr")
    print(f"load average before: {os.getloadavg()[0]:.2f} (2-core machine shared with others)")
    print(f"runtime fast path: {servable.fast_path}")

    floors = in_process(model, servable, row, csv.encode())
    bare_port, kiln_port = _free_port(), _free_port()
    (tmp / "bare.py").write_text(BARE_APP)
    env = {**os.environ, "KILN_HOME": str(tmp / "home")}
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare:app", "--port", str(bare_port), "--workers", str(args.workers), "--loop", "uvloop",
         "--http", "httptools", "--no-access-log", "--log-level", "warning", "--app-dir", str(tmp)],
        start_new_session=True, stdout=subprocess.DEVNULL,
    )
    kiln_proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "kiln"), "serve", "bench-lr@1", "--port", str(kiln_port), "--workers", str(args.workers)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    results: dict[tuple[str, str, str], dict[str, float]] = {}
    try:
        bare_url, kiln_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{kiln_port}"
        _wait_ready(bare_url, bare)  # the bare app answers every path
        _wait_ready(kiln_url, kiln_proc)
        answer = httpx.post(kiln_url + "/invocations", content=csv, headers={"Content-Type": "text/csv"}).json()
        assert answer == model.predict(row).tolist(), answer
        for ctype, body in (("text/csv", csv), ("application/json", json_body)):
            for threads, conns in ((2, 8), (1, 1)):
                for label, url, root in (("bare", bare_url, bare.pid), ("kiln", kiln_url, kiln_proc.pid)):
                    results[(ctype, f"-t{threads} -c{conns}", label)] = wrk(
                        url, body=body, ctype=ctype, threads=threads, connections=conns, duration=args.duration, folder=tmp, root=root,
                    )
    finally:
        _stop(kiln_proc)
        _stop(bare)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print()
    print(f"in-process, one row: model.predict {floors['predict']:.3f} ms, Servable.invoke (CSV in, JSON out) {floors['invoke']:.3f} ms")
    print()
    print(f"{'request':<18} {'load':<10} {'server':<6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}")
    for (ctype, load, label), r in results.items():
        print(f"{ctype:<18} {load:<10} {label:<6} {r['rps']:9.0f} {r['p50']:8.3f} {r['p99']:8.3f} {r['cpu_us']:11.0f}")
    print()
    fastest = min(floors.values())
    for ctype in ("text/csv", "application/json"):
        ratio = results[(ctype, "-t2 -c8", "kiln")]["rps"] / results[(ctype, "-t2 -c8", "bare")]["rps"]
        p50 = results[(ctype, "-t1 -c1", "kiln")]["p50"]
        cpu_ratio = results[(ctype, "-t2 -c8", "bare")]["cpu_us"] / results[(ctype, "-t2 -c8", "kiln")]["cpu_us"]
        print(f"{ctype}: kiln/bare requests/s at 8 connections {ratio:.2f} (target >= 0.5), by server CPU per request {cpu_ratio:.2f}; "
              f"p50 at 1 connection {p50:.3f} ms = fastest in-process {fastest:.3f} ms + {p50 - fastest:.3f} ms (target <= 0.5 ms)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
