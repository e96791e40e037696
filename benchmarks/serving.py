"""Benchmark: single-row requests to a Kiln endpoint and to ``mlflow models serve`` (issue #11 §6).

The same three scikit-learn / LightGBM models (LogisticRegression, a 100-tree
RandomForest, a 100-tree LightGBM classifier, trained on 20,000 generated rows × 20
features) are served by

* ``kiln serve NAME@1 --workers 2`` (the registry's package, hashes checked),
* ``mlflow models serve -m FOLDER --env-manager local --workers 2`` (MLflow's own package),

and, as floors, a bare ASGI app returning a constant under uvicorn with 2 workers on
uvloop + httptools (what any Python server on this machine can do at most), and the
model's own ``predict`` on one numpy row in this process.

Load comes from ``wrk`` (Debian's package ``wrk``; the script says so if it is missing)
on loopback, bounded in time:

* peak: ``wrk -t2 -c8 -d{D}s`` → requests/s, p50, p99;
* one connection: ``wrk -t1 -c1 -d{D}s`` → p50, compared with the in-process predict;
* 80 % of Kiln's peak: connections that each wait 5 ms between requests (wrk's
  ``delay()``, whole milliseconds), as many as make about 80 % of the peak rate; a closed
  loop with think time, not an open loop (wrk2 is not packaged) → p99 and the rate reached.

Kiln is sent CSV and JSON rows; MLflow is sent the same row as ``dataframe_split`` JSON
(its CSV input needs a header row, and is no faster). Every run rotates the order of the
servers (kiln, mlflow, bare) so machine noise hits them alike; medians are printed. The
load average is printed before and after: the load generator shares the machine's two
cores with the servers, for every server alike.

Usage: ``.venv-bench/bin/python benchmarks/serving.py [--duration 10] [--repeat 3]
[--models lr,rf,lgbm] [--no-mlflow]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

BARE_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"[1]"})
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            return
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def start(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def post(url: str, body: bytes, content_type: str) -> bytes:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


# -- wrk ------------------------------------------------------------------------------------


def lua(folder: Path, body: str, content_type: str, delay_ms: float | None = None) -> Path:
    name = f"post-{abs(hash((body, content_type, delay_ms)))}.lua"
    path = folder / name
    script = f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "{content_type}"\n'
    if delay_ms is not None:
        script += f"function delay() return {round(delay_ms)} end\n"
    path.write_text(script)
    return path


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk(url: str, script: Path, *, threads: int, conns: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration:g}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:
        failed += sum(int(g) for g in errors.groups())
    return {"rps": rps, "p50": _ms(lat["50"]), "p99": _ms(lat["99"]), "failed": failed}


# -- models ---------------------------------------------------------------------------------


def train(names: list[str]) -> tuple[dict[str, Any], Any]:
    import numpy as np
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=20_000, n_features=20, n_informative=10, random_state=0)
    X = X.astype(np.float64)
    models: dict[str, Any] = {}
    if "lr" in names:
        from sklearn.linear_model import LogisticRegression

        models["lr"] = LogisticRegression(max_iter=1000).fit(X, y)
    if "rf" in names:
        from sklearn.ensemble import RandomForestClassifier

        models["rf"] = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)
    if "lgbm" in names:
        import lightgbm as lgb

        models["lgbm"] = lgb.LGBMClassifier(n_estimators=100, verbose=-1, n_jobs=1).fit(X, y)
    return models, X


def in_process(model: Any, row: Any, n: int = 2000) -> float:
    """Median seconds of ``model.predict`` on one numpy row (ms)."""
    for _ in range(50):
        model.predict(row)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        model.predict(row)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="lr,rf,lgbm")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this benchmark drives wrk: install Debian's package `wrk` (apt-get install wrk)")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    print(f"load average at start: {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="kiln-bench-serving-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        run(args, names, tmp, procs)
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")


def run(args: argparse.Namespace, names: list[str], tmp: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    import numpy as np

    models, X = train(names)
    row = X[:1]
    csv_row = ",".join(repr(float(v)) for v in row[0])
    json_row = json.dumps([row[0].tolist()])
    mlflow_row = json.dumps({"dataframe_split": {"columns": [str(i) for i in range(X.shape[1])], "data": [row[0].tolist()]}})
    floors = {n: in_process(m, row) for n, m in models.items()}
    w = models["lr"].coef_.ravel() if "lr" in models else np.ones(X.shape[1])
    dot = in_process(type("Dot", (), {"predict": staticmethod(lambda r: r @ w)})(), row[0], n=20000)
    print("in-process predict on one row (ms): " + ", ".join(f"{n} {v:.3f}" for n, v in floors.items()) + f"; numpy dot {dot * 1e3:.1f} µs")

    home = tmp / "kiln"
    env = {**os.environ, "KILN_HOME": str(home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    import kiln

    os.environ["KILN_HOME"] = str(home)
    client = kiln.Client()
    servers: dict[str, dict[str, str]] = {}
    for n, m in models.items():
        client.models.register(f"bench-{n}", model=m, sample_input=X[:5])
        port = free_port()
        p = start([str(BIN / "kiln"), "serve", f"bench-{n}@1", "--port", str(port), "--workers", str(args.workers)], env=env, log=tmp / f"kiln-{n}.log")
        procs.append(p)
        wait_ready(f"http://127.0.0.1:{port}/ping", p)
        servers.setdefault(n, {})["kiln"] = f"http://127.0.0.1:{port}/invocations"
        check = post(servers[n]["kiln"], csv_row.encode(), "text/csv")
        print(f"kiln {n}: {check[:60]!r} (predict says {models[n].predict(row).tolist()})")
    if not args.no_mlflow:
        import mlflow.lightgbm
        import mlflow.sklearn

        for n, m in models.items():
            folder = tmp / f"mlflow-{n}"
            if n == "lgbm":
                mlflow.lightgbm.save_model(m, str(folder))
            else:
                mlflow.sklearn.save_model(m, str(folder), skops_trusted_types=["sklearn.tree._tree.Tree"] if n == "rf" else None)
            port = free_port()
            p = start([str(BIN / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local", "-p", str(port), "-w", str(args.workers)], env=env, log=tmp / f"mlflow-{n}.log")
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{port}/ping", p, timeout=180)
            servers[n]["mlflow"] = f"http://127.0.0.1:{port}/invocations"
            print(f"mlflow {n}: {post(servers[n]['mlflow'], mlflow_row.encode(), 'application/json')[:60]!r}")
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    bare = start([str(BIN / "uvicorn"), "bare_app:app", "--app-dir", str(tmp), "--port", str(port), "--workers", str(args.workers),
                  "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"], log=tmp / "bare.log")
    procs.append(bare)
    bare_url = f"http://127.0.0.1:{port}/"
    wait_ready(bare_url, bare)

    scripts = {
        "csv": lua(tmp, csv_row, "text/csv"),
        "json": lua(tmp, json_row, "application/json"),
        "mlflow": lua(tmp, mlflow_row, "application/json"),
    }
    d = args.duration
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}

    def measure(key: tuple[str, str, str], url: str, script: Path) -> None:
        peak = wrk(url, script, threads=2, conns=8, duration=d)
        one = wrk(url, script, threads=1, conns=1, duration=d)
        results.setdefault(key, []).append({"rps": peak["rps"], "p50": peak["p50"], "p99": peak["p99"], "p50_1": one["p50"],
                                            "failed": peak["failed"] + one["failed"]})

    for r in range(args.repeat):
        order = ["kiln", "mlflow", "bare"]
        order = order[r % 3:] + order[: r % 3]
        for who in order:
            if who == "bare":
                measure(("bare", "-", "csv"), bare_url, scripts["csv"])
            for n in models:
                if who == "kiln":
                    measure(("kiln", n, "csv"), servers[n]["kiln"], scripts["csv"])
                    measure(("kiln", n, "json"), servers[n]["kiln"], scripts["json"])
                elif who == "mlflow" and "mlflow" in servers[n]:
                    measure(("mlflow", n, "json"), servers[n]["mlflow"], scripts["mlflow"])
        print(f"round {r + 1}/{args.repeat} done, load {os.getloadavg()[0]:.2f}")

    # p99 at 80 % of Kiln's peak rate, for each model (CSV), once after the rounds. wrk's delay()
    # counts whole milliseconds, so each connection waits 5 ms between requests and the number of
    # connections sets the rate: conns / (5 ms + latency) ≈ 80 % of the peak. The rate reached is printed.
    paced: dict[str, dict[str, float]] = {}
    for n in models:
        peak = statistics.median(x["rps"] for x in results[("kiln", n, "csv")])
        latency = statistics.median(x["p50"] for x in results[("kiln", n, "csv")])
        delay = 5.0
        conns = max(1, round(0.8 * peak * (delay + latency) / 1000.0))
        got = wrk(servers[n]["kiln"], lua(tmp, csv_row, "text/csv", delay), threads=2, conns=conns, duration=d)
        paced[n] = {"target": 0.8 * peak, **got}

    def med(key: tuple[str, str, str], field: str) -> float:
        return statistics.median(x[field] for x in results[key])

    print()
    print(f"{'server':8} {'model':5} {'body':5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p50@1c ms':>10} {'failed':>6}  runs (req/s)")
    for key, runs in results.items():
        print(f"{key[0]:8} {key[1]:5} {key[2]:5} {med(key, 'rps'):9.0f} {med(key, 'p50'):8.3f} {med(key, 'p99'):8.3f} {med(key, 'p50_1'):10.3f} "
              f"{int(sum(x['failed'] for x in runs)):6d}  {[round(x['rps']) for x in runs]}")
    print()
    bare_rps = med(("bare", "-", "csv"), "rps")
    for n in models:
        k = med(("kiln", n, "csv"), "rps")
        kj = med(("kiln", n, "json"), "rps")
        line = f"{n}: kiln csv {k:.0f} req/s, json {kj:.0f}"
        if ("mlflow", n, "json") in results:
            m = med(("mlflow", n, "json"), "rps")
            line += f"; mlflow {m:.0f} → kiln/mlflow {k / m:.1f}× csv, {kj / m:.1f}× json (target ≥ 50×)"
        line += f"; kiln/bare {k / bare_rps:.2f}"
        if n == "lr":
            line += " (target ≥ 0.5)"
        gap = med(("kiln", n, "csv"), "p50_1") - floors[n]
        line += f"; p50@1 conn − in-process predict = {gap:.3f} ms (target ≤ 0.5)"
        line += f"; p99 at {paced[n]['rps']:.0f} req/s (80 % of peak = {paced[n]['target']:.0f}) {paced[n]['p99']:.2f} ms (target ≤ 10)"
        print(line)


if __name__ == "__main__":
    main()
