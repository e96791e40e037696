"""An endpoint's counters: per worker in memory, per endpoint on disk, Prometheus on /metrics.

Each worker counts in plain integers on its request path (:class:`VariantCounters`) and
rewrites ``<run_dir>/metrics/worker-<pid>.json`` atomically at most once a second.
:func:`snapshot` sums every worker's file (and those of workers already gone, folded into
``retired.json`` by the supervisor so counters never go backwards) into one dict, which
the endpoint service persists and :func:`prometheus` renders for ``GET /metrics``.

Latencies are kept as microsecond sums, counts and fixed histogram buckets, so files
from several workers add up exactly.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import orjson

__all__ = ["BUCKETS_US", "VariantCounters", "WorkerMetrics", "prometheus", "retire", "snapshot"]

# Upper bounds of the latency histogram's buckets, in microseconds (the last bucket is +Inf).
BUCKETS_US = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 10_000_000)
_NB = len(BUCKETS_US) + 1
_RETIRED = "retired.json"
_KEEP_PIDS = 1000


class VariantCounters:
    """One variant's counters in one worker: integers bumped on the request path."""

    __slots__ = (
        "batched", "batches", "cold_start_us", "cold_starts", "errors_4xx", "errors_5xx", "invocations", "load_us", "model_buckets",
        "model_us", "overhead_buckets", "overhead_us", "shadow_dropped", "throttled",
    )

    def __init__(self) -> None:
        self.invocations = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.model_us = 0
        self.overhead_us = 0
        self.model_buckets = [0] * _NB
        self.overhead_buckets = [0] * _NB
        self.cold_starts = 0
        self.load_us = 0
        self.shadow_dropped = 0
        self.cold_start_us = 0  # serverless: from the request that woke the endpoint to a ready worker
        self.throttled = 0  # serverless: requests refused beyond the concurrency limit (429)
        self.batches = 0  # micro-batching: predict calls that served more than one request
        self.batched = 0  # micro-batching: requests answered by those calls

    def observe(self, status: int, model_ns: int, total_ns: int) -> None:
        """One answered request: its status, the time in the model and the time in all."""
        self.invocations += 1
        if status >= 400:
            if status >= 500:
                self.errors_5xx += 1
            else:
                self.errors_4xx += 1
        model = model_ns // 1000
        overhead = (total_ns - model_ns) // 1000
        self.model_us += model
        self.overhead_us += overhead
        self.model_buckets[bisect_left(BUCKETS_US, model)] += 1
        self.overhead_buckets[bisect_left(BUCKETS_US, overhead)] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations, "errors_4xx": self.errors_4xx, "errors_5xx": self.errors_5xx,
            "model_latency_us": {"sum": self.model_us, "buckets": list(self.model_buckets)},
            "overhead_latency_us": {"sum": self.overhead_us, "buckets": list(self.overhead_buckets)},
            "cold_starts": self.cold_starts, "load_us": self.load_us, "shadow_dropped": self.shadow_dropped,
            "cold_start_us": self.cold_start_us, "throttled": self.throttled, "batches": self.batches, "batched": self.batched,
        }


class WorkerMetrics:
    """A worker's counters by variant, and the file it keeps them in."""

    def __init__(self, endpoint: str, run_dir: str | Path = "", *, pid: int | None = None) -> None:
        self.endpoint = endpoint
        self.pid = os.getpid() if pid is None else pid
        self.variants: dict[str, VariantCounters] = {}
        self.path = Path(run_dir) / "metrics" / f"worker-{self.pid}.json" if run_dir else None
        self._written = -1

    def variant(self, name: str) -> VariantCounters:
        counters = self.variants.get(name)
        if counters is None:
            counters = self.variants[name] = VariantCounters()
        return counters

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "pid": self.pid, "time": time.time(), "variants": {k: v.as_dict() for k, v in self.variants.items()}}

    def _stamp(self) -> int:
        return sum(v.invocations + v.cold_starts + v.shadow_dropped + v.cold_start_us + v.throttled for v in self.variants.values())

    def write(self, *, force: bool = False) -> None:
        """Rewrite the worker's file (tmp + rename) when something changed since the last write."""
        if self.path is None:
            return
        stamp = self._stamp()
        if stamp == self._written and not force:
            return
        _atomic_write(self.path, orjson.dumps(self.as_dict()))
        self._written = stamp


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _empty() -> dict[str, Any]:
    return VariantCounters().as_dict()


def _add(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict):
            _add(into.setdefault(key, {}), value)
        elif isinstance(value, list):
            have = into.setdefault(key, [0] * len(value))
            for i, v in enumerate(value[: len(have)]):
                have[i] += v
        elif isinstance(value, int | float):
            into[key] = into.get(key, 0) + value


def snapshot(run_dir: str | Path, *, live: WorkerMetrics | None = None) -> dict[str, dict[str, Any]]:
    """Every worker's counters summed, per variant: what ``/metrics`` shows and the service keeps.

    Args:
        run_dir: the endpoint's run folder.
        live: this process's own counters, used in place of its (up to a second old) file.

    Returns:
        ``{variant: {"invocations", "errors_4xx", "errors_5xx", "model_latency_us": {"sum",
        "count", "buckets"}, "overhead_latency_us": {...}, "cold_starts", "load_us",
        "shadow_dropped"}}``; latency bucket upper bounds are :data:`BUCKETS_US`, then +Inf.
    """
    folder = Path(run_dir) / "metrics" if run_dir else None
    variants: dict[str, dict[str, Any]] = {}
    if folder is not None and folder.is_dir():
        retired = _read(folder / _RETIRED) or {}
        retired_pids = set(retired.get("pids", ()))
        for name, counters in (retired.get("variants") or {}).items():
            _add(variants.setdefault(name, _empty()), counters)
        for path in folder.glob("worker-*.json"):
            pid = _pid_of(path)
            if pid is None or pid in retired_pids or (live is not None and pid == live.pid):
                continue
            for name, counters in ((_read(path) or {}).get("variants") or {}).items():
                _add(variants.setdefault(name, _empty()), counters)
    if live is not None:
        for name, c in live.variants.items():
            _add(variants.setdefault(name, _empty()), c.as_dict())
    for counters in variants.values():
        for key in ("model_latency_us", "overhead_latency_us"):
            counters[key]["count"] = sum(counters[key]["buckets"])
    return variants


def _pid_of(path: Path) -> int | None:
    try:
        return int(path.stem.removeprefix("worker-"))
    except ValueError:
        return None


def retire(run_dir: str | Path, pid: int) -> None:
    """Fold a finished worker's counters into ``retired.json`` and remove its file.

    The supervisor calls this for each worker it reaps, so the endpoint's counters keep
    what that worker counted. ``retired.json`` lists the folded pids first, so a reader
    between the two steps never counts a worker twice.
    """
    folder = Path(run_dir) / "metrics"
    path = folder / f"worker-{pid}.json"
    data = _read(path)
    if data is None:
        path.unlink(missing_ok=True)
        return
    retired = _read(folder / _RETIRED) or {"endpoint": data.get("endpoint", ""), "pids": [], "variants": {}}
    if pid not in retired["pids"]:
        for name, counters in (data.get("variants") or {}).items():
            _add(retired["variants"].setdefault(name, _empty()), counters)
        retired["pids"] = ([*retired["pids"], pid])[-_KEEP_PIDS:]
        _atomic_write(folder / _RETIRED, orjson.dumps(retired))
    path.unlink(missing_ok=True)


_HELP = (
    ("invocations", "kiln_invocations_total", "counter", "Requests answered, per endpoint and variant."),
    ("errors_4xx", "kiln_invocation_4xx_errors_total", "counter", "Requests answered with a 4xx status."),
    ("errors_5xx", "kiln_invocation_5xx_errors_total", "counter", "Requests answered with a 5xx status."),
    ("cold_starts", "kiln_cold_starts_total", "counter", "Times a worker loaded the variant's model."),
    ("shadow_dropped", "kiln_shadow_dropped_total", "counter", "Shadow copies skipped because the shadow variant was behind."),
    ("throttled", "kiln_throttled_total", "counter", "Requests refused with 429 beyond a serverless endpoint's concurrency limit."),
    ("batches", "kiln_batches_total", "counter", "Micro-batched predict calls that served more than one request."),
    ("batched", "kiln_batched_requests_total", "counter", "Requests answered by micro-batched predict calls."),
)
_HISTOGRAMS = (
    ("model_latency_us", "kiln_model_latency_seconds", "Time in the model (decode, predict, encode)."),
    ("overhead_latency_us", "kiln_overhead_latency_seconds", "Time in the server around the model."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(snap: dict[str, dict[str, Any]], *, endpoint: str) -> str:
    """A :func:`snapshot` in Prometheus' text exposition format."""
    endpoint = _label(endpoint)
    variants = sorted(snap.items())
    lines: list[str] = []
    for key, metric, kind, help_ in _HELP:
        lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} {kind}"]
        lines += [f'{metric}{{endpoint="{endpoint}",variant="{_label(name)}"}} {c.get(key, 0)}' for name, c in variants]
    lines += ["# HELP kiln_model_load_seconds Time spent loading the variant's model, all cold starts together.", "# TYPE kiln_model_load_seconds counter"]
    lines += [f'kiln_model_load_seconds{{endpoint="{endpoint}",variant="{_label(name)}"}} {c.get("load_us", 0) / 1e6:.6f}' for name, c in variants]
    lines += ["# HELP kiln_cold_start_seconds Serverless: time from the request that woke the endpoint to a ready worker, all cold starts together.", "# TYPE kiln_cold_start_seconds counter"]
    lines += [f'kiln_cold_start_seconds{{endpoint="{endpoint}",variant="{_label(name)}"}} {c.get("cold_start_us", 0) / 1e6:.6f}' for name, c in variants]
    for key, metric, help_ in _HISTOGRAMS:
        lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} histogram"]
        for name, c in variants:
            hist = c.get(key) or {}
            buckets = list(hist.get("buckets") or [0] * _NB)
            labels = f'endpoint="{endpoint}",variant="{_label(name)}"'
            running = 0
            for bound, n in zip((*BUCKETS_US, None), buckets, strict=False):
                running += n
                le = "+Inf" if bound is None else f"{bound / 1e6:g}"
                lines.append(f'{metric}_bucket{{{labels},le="{le}"}} {running}')
            lines.append(f"{metric}_sum{{{labels}}} {hist.get('sum', 0) / 1e6:.6f}")
            lines.append(f"{metric}_count{{{labels}}} {running}")
    return "\n".join(lines) + "\n"
