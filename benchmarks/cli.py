"""CLI start-up: `kiln --help`, `kiln --version`, `kiln datasets ls`, each in a fresh process.

Targets: --help and --version under 0.3 s, a command that opens the workspace
(`kiln datasets ls` on a small workspace) under 0.6 s, with bytecode compiled at
install as a user's pip install does. Each command runs in turn (interleaved, so a
busy moment hits all alike), median of N; then again with PYTHONDONTWRITEBYTECODE=1,
which only stops *writing* .pyc files: compiled ones are still read. MLflow's
`mlflow --help` and `mlflow experiments search` (SQLite store) are the peer, when
MLflow is installed in this venv.

    .venv-bench/bin/python benchmarks/cli.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kiln

TARGETS = {"kiln --help": 0.3, "kiln --version": 0.3, "kiln datasets ls": 0.6}


def _bin(name: str) -> str | None:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else None


def _uncompiled() -> int:
    """Kiln's modules without a current .pyc (each costs a compile on every run)."""
    import importlib.util

    root = Path(kiln.__file__).parent
    return sum(not Path(importlib.util.cache_from_source(str(p))).exists() for p in root.rglob("*.py"))


def run_all(commands: dict[str, list[str]], env: dict[str, str], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in commands}
    for i in range(repeat + 1):  # the first round warms the file cache and is dropped
        for label, argv in commands.items():
            start = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, check=False)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{label} failed: {done.stderr.decode()[-500:]}")
            if i:
                times[label].append(elapsed)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    for label, runs in times.items():
        median = statistics.median(runs)
        target = TARGETS.get(label)
        verdict = "" if target is None else f"target < {target:.1f} s: {'ok' if median < target else 'MISSED'}"
        spread = ", ".join(f"{r:.2f}" for r in runs)
        print(f"  {label:<28} {median:6.3f} s  [{spread}]  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    kiln_bin = _bin("kiln") or shutil.which("kiln")
    if kiln_bin is None:
        raise SystemExit("no `kiln` command beside this Python: run `make install` (or `make bench`)")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-cli-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "MLFLOW_"))} | {"KILN_HOME": str(root / "kiln"), "COLUMNS": "120"}
        sample = root / "small.csv"
        sample.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(100)))
        subprocess.run([kiln_bin, "datasets", "ingest", "small", str(sample)], env=env, check=True, capture_output=True)
        commands = {"kiln --help": [kiln_bin, "--help"], "kiln --version": [kiln_bin, "--version"], "kiln datasets ls": [kiln_bin, "datasets", "ls"]}
        mlflow_bin = _bin("mlflow")
        if mlflow_bin is not None:
            env |= {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
            subprocess.run([mlflow_bin, "experiments", "create", "-n", "small"], env=env, check=True, capture_output=True)
            commands |= {"mlflow --help": [mlflow_bin, "--help"], "mlflow experiments search": [mlflow_bin, "experiments", "search"]}
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"kiln {kiln.__version__}; python {sys.version.split()[0]}; cores {os.cpu_count()}; load {load:.1f}; "
              f"median of {args.repeat} fresh processes each; kiln modules without .pyc: {_uncompiled()}; mlflow: {'yes' if mlflow_bin else 'not installed'}")
        writes = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        report("bytecode as installed", run_all(commands, writes, args.repeat))
        report("PYTHONDONTWRITEBYTECODE=1 (compiled files are still read)", run_all(commands, env | {"PYTHONDONTWRITEBYTECODE": "1"}, args.repeat))


if __name__ == "__main__":
    main()
