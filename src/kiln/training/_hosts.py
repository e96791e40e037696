"""Where the hosts of a training job run (``instance_count`` hosts, ``algo-1`` … ``algo-N``).

- :class:`ThreadHosts`: every host is a process group that a thread of the runner
  starts on the runner's machine (the local executor, and any one-host job).
- :class:`RayHosts` (``KILN_EXECUTOR=ray``): ``algo-1`` runs in the runner, on the
  CPUs and GPUs the runner's actor holds; ``algo-2`` … ``algo-N`` run as Ray tasks, one
  placement-group bundle of that same size each, spread over the cluster's nodes and
  reserved together before any host starts (a distributed script waits for all its
  peers). Each remote host lays out and fills its own folder on its node (code,
  channels, configs, checkpoints, requirements), runs the script with
  :func:`kiln.jobs._proc.run_group`, and streams its output back to the runner, which
  writes it into the job's log as ``[algo-i] …`` and captures metrics from it. As on
  SageMaker, ``algo-1``'s ``model/`` and ``output/data`` are the job's; they never move.

Hosts know each other: ``SM_HOSTS`` names them, ``KILN_HOST_ADDRESSES`` maps each name
to its IP address (``{"algo-1": "10.0.0.4", ...}``), so distributed code can connect, and
``KILN_DIST_PORT`` is a port the runner found free on ``algo-1``'s machine (its own) for
the hosts to meet at (the built-in xgboost and lightgbm do).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from kiln.jobs._proc import GRACE_S, ExitStatus, kill_group, run_group
from kiln.jobs._runner import RunningJob
from kiln.training.builtin._collective import free_port

__all__ = ["HostRunner", "RayHosts", "ThreadHosts", "host_runner"]

ADDRESSES_ENV = "KILN_HOST_ADDRESSES"
PORT_ENV = "KILN_DIST_PORT"
_FAILURE_CHARS = 4096
_WAIT_LOG_S = 5.0


class HostRunner(ABC):
    """Runs the hosts of one training attempt at once; a failure on one stops the others."""

    @abstractmethod
    def local(self, hosts: list[str]) -> list[str]:
        """The hosts whose folders the runner lays out itself, on its own machine."""

    @abstractmethod
    def run(
        self, job: RunningJob, hosts: list[str], layouts: dict[str, Any], argv: list[str], extra: dict[str, str],
        on_line: Callable[[str], None],
    ) -> dict[str, ExitStatus]:
        """Run every host; returns each host's exit status.

        ``layouts`` holds the local hosts' folders; it gains a folder for each remote host,
        holding what came back of it (``output/failure``).
        """


def host_runner(job: RunningJob, hosts: list[str]) -> HostRunner:
    """Ray tasks for several hosts when the job runs on Ray; threads of the runner otherwise."""
    if len(hosts) > 1:
        from kiln.jobs._base import open_executor

        if open_executor(job.ws.settings.executor).name == "ray":
            return RayHosts()
    return ThreadHosts()


def _addresses_env(addresses: Mapping[str, str], port: int) -> dict[str, str]:
    """The hosts' env: where each is, and a port free on algo-1's machine (the runner's) for them to meet at."""
    return {ADDRESSES_ENV: json.dumps(dict(addresses), separators=(",", ":")), PORT_ENV: str(port)}



class ThreadHosts(HostRunner):
    """Every host on the runner's machine, each a process group started by a thread."""

    def local(self, hosts: list[str]) -> list[str]:
        return list(hosts)

    def run(
        self, job: RunningJob, hosts: list[str], layouts: dict[str, Any], argv: list[str], extra: dict[str, str],
        on_line: Callable[[str], None],
    ) -> dict[str, ExitStatus]:
        from kiln.training._program import _env

        extra = {**extra, **_addresses_env({h: "127.0.0.1" for h in hosts}, free_port("127.0.0.1"))}
        results: dict[str, ExitStatus] = {}
        if len(hosts) == 1:
            host = hosts[0]
            results[host] = job.execute(argv, cwd=layouts[host].code, env=_env(job, layouts[host], host, hosts, extra), on_line=on_line)
            return results
        failed = threading.Event()

        def one(host: str) -> None:
            status = job.execute(
                argv, cwd=layouts[host].code, env=_env(job, layouts[host], host, hosts, extra),
                on_line=on_line, prefix=f"[{host}] ", also_stop=failed.is_set,
            )
            results[host] = status
            if not status.ok:
                failed.set()

        threads = [threading.Thread(target=one, args=(h,), name=f"kiln-host-{h}") for h in hosts]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return results


# -- Ray ---------------------------------------------------------------------------------------


class RayHosts(HostRunner):
    """``algo-1`` in the runner, the other hosts as Ray tasks in one placement group."""

    def local(self, hosts: list[str]) -> list[str]:
        return hosts[:1]

    def run(
        self, job: RunningJob, hosts: list[str], layouts: dict[str, Any], argv: list[str], extra: dict[str, str],
        on_line: Callable[[str], None],
    ) -> dict[str, ExitStatus]:
        from ray.util.placement_group import placement_group, remove_placement_group

        from kiln.jobs._ray import connect

        ray = connect(job.ws.settings.executor)
        remote = hosts[1:]
        bundle = _bundle(ray)
        problem = _infeasible(ray, bundle, len(hosts))
        if problem:
            return _remote_failed(job, layouts, remote, problem)
        pg = placement_group([dict(bundle) for _ in remote], strategy="SPREAD", name=f"kiln-hosts-{job.name}")
        try:
            waited = _wait_placed(ray, job, pg, len(remote), bundle)
            if waited is not None:
                return {h: waited for h in hosts}
            addresses = _addresses(ray, pg, hosts)
            job.log("hosts: " + ", ".join(f"{h} on {ip}" for h, ip in addresses.items()))
            hosts_env = _addresses_env(addresses, free_port(addresses[hosts[0]]))
            return _Supervisor(ray, job, hosts, layouts, argv, {**extra, **hosts_env}, on_line, pg, bundle, hosts_env).run()
        finally:
            try:
                remove_placement_group(pg)
            except Exception:  # noqa: BLE001 - gone with the cluster
                pass


def _bundle(ray: Any) -> dict[str, float]:
    """One host's resources: what the runner's actor holds (its CPUs and GPUs), at least 1 CPU."""
    try:
        held = ray.get_runtime_context().get_assigned_resources()
    except Exception:  # noqa: BLE001 - a driver, not a worker: holds nothing
        held = {}
    bundle = {"CPU": float(held.get("CPU") or 1.0)}
    if held.get("GPU"):
        bundle["GPU"] = float(held["GPU"])
    return bundle


def _infeasible(ray: Any, bundle: Mapping[str, float], count: int) -> str | None:
    total = ray.cluster_resources()
    short = [k for k, v in bundle.items() if total.get(k, 0.0) + 1e-9 < v * count]
    if not short:
        return None
    have = ", ".join(f"{total.get(k, 0.0):g} {k}" for k in bundle)
    need = ", ".join(f"{v:g} {k}" for k, v in bundle.items())
    return (f"instance_count {count} needs {count} hosts of {need} each on the Ray cluster, which has {have} in all: "
            "lower instance_count or add nodes to the cluster")


def _wait_placed(ray: Any, job: RunningJob, pg: Any, count: int, bundle: Mapping[str, float]) -> ExitStatus | None:
    """Wait until every remote host's bundle is placed; None when they are, else how the wait ended."""
    ready = pg.ready()
    start = time.monotonic()
    logged = False
    while not ray.wait([ready], timeout=0.25)[0]:
        if job.stop_requested:
            return ExitStatus(None, stopped=True, duration_s=time.monotonic() - start)
        remaining = job.remaining_s()
        if remaining is not None and remaining <= 0:
            return ExitStatus(None, timed_out=True, duration_s=time.monotonic() - start)
        if not logged and time.monotonic() - start > _WAIT_LOG_S:
            logged = True
            job.log(f"waiting for the Ray cluster to free {count} more host(s) of {dict(bundle)}")
    return None


def _addresses(ray: Any, pg: Any, hosts: list[str]) -> dict[str, str]:
    from ray.util import get_node_ip_address
    from ray.util.placement_group import placement_group_table

    ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    placed = placement_group_table(pg)["bundles_to_node_id"]
    addresses = {hosts[0]: get_node_ip_address()}
    for i, host in enumerate(hosts[1:]):
        addresses[host] = ips.get(placed.get(i, ""), "")
    return addresses


def _remote_failed(job: RunningJob, layouts: dict[str, Any], remote: Sequence[str], reason: str) -> dict[str, ExitStatus]:
    for host in remote:
        layouts[host] = _stub_layout(job, host, reason)
    return {h: ExitStatus(None) for h in remote}


def _stub_layout(job: RunningJob, host: str, failure: str | None) -> Any:
    """The runner's folder for a remote host: only what came back of it (``output/failure``)."""
    from kiln.training._contract import make_layout

    layout = make_layout(job.folder / host, [])
    if failure:
        layout.failure_file.write_text(failure, encoding="utf-8")
    return layout


class _Supervisor:
    """Runs algo-1 here and the remote hosts as Ray tasks, relays their output, and stops them
    all when one fails or the job is stopped."""

    def __init__(
        self, ray: Any, job: RunningJob, hosts: list[str], layouts: dict[str, Any], argv: list[str], extra: dict[str, str],
        on_line: Callable[[str], None], pg: Any, bundle: Mapping[str, float], hosts_env: Mapping[str, str],
    ) -> None:
        self.ray, self.job, self.hosts, self.layouts = ray, job, hosts, layouts
        self.argv, self.extra, self.on_line, self.pg, self.bundle, self.hosts_env = argv, extra, on_line, pg, bundle, hosts_env
        self.results: dict[str, ExitStatus] = {}
        self.failures: dict[str, str] = {}
        self.started: dict[str, tuple[int, str]] = {}  # host -> (process group, node id)
        self.stopping: set[str] = set()
        self.failed = threading.Event()
        self.gens: dict[str, Any] = {}

    def run(self) -> dict[str, ExitStatus]:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        job, leader, remote = self.job, self.hosts[0], self.hosts[1:]
        settings = {k: v for k, v in os.environ.items() if k.startswith("KILN_")}  # the runner's workspace settings
        task = _remote_task(self.ray)
        for i, host in enumerate(remote):
            self.gens[host] = task.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
                num_cpus=self.bundle.get("CPU", 0.0), num_gpus=self.bundle.get("GPU", 0.0), max_retries=0,
                name=f"kiln-{job.name}-{host}",
            ).remote(job.name, settings, host, self.hosts, dict(self.hosts_env), job.attempt, job.remaining_s())
        threads = [threading.Thread(target=self._leader, args=(leader,), name=f"kiln-host-{leader}")]
        threads += [threading.Thread(target=self._relay, args=(h,), name=f"kiln-host-{h}") for h in remote]
        for th in threads:
            th.start()
        stop_at: float | None = None
        forced = False
        while any(th.is_alive() for th in threads):
            if stop_at is None and (job.stop_requested or self.failed.is_set()):
                stop_at = time.monotonic()
                for host in remote:
                    if host not in self.results:
                        self._stop(host)
            elif stop_at is not None and not forced and time.monotonic() - stop_at > GRACE_S + 15:
                forced = True  # a host that did not end after its group was killed: end its task
                for host in remote:
                    if host not in self.results:
                        self.ray.cancel(self.gens[host], force=True)
            time.sleep(0.2)
        for host in remote:
            self.layouts[host] = _stub_layout(job, host, self.failures.get(host))
        return self.results

    def _leader(self, host: str) -> None:
        from kiln.training._program import _env

        layout = self.layouts[host]
        try:
            status = self.job.execute(
                self.argv, cwd=layout.code, env=_env(self.job, layout, host, self.hosts, self.extra),
                on_line=self.on_line, prefix=f"[{host}] ", also_stop=self.failed.is_set,
            )
        except OSError as exc:
            status = ExitStatus(None)
            self.job.log(f"{host}: could not start the entry point: {exc.strerror or exc}")
        self.results[host] = status
        if not status.ok:
            self.failed.set()

    def _relay(self, host: str) -> None:
        """Write a remote host's output into the job's log until its task ends."""
        prefix = f"[{host}] "
        status: ExitStatus | None = None
        try:
            for ref in self.gens[host]:
                item = self.ray.get(ref)
                if isinstance(item, list):
                    for line in item:
                        if line.startswith("[kiln] "):
                            text = line[len("[kiln] "):]
                            self.job.log(text if text.startswith(f"{host}:") else f"{host}: {text}")
                        else:
                            self.job.output(prefix + line)
                            self.on_line(line)
                elif "pgid" in item:
                    self.started[host] = (int(item["pgid"]), str(item["node"]))
                else:
                    status = ExitStatus(**item["status"])
                    if item.get("failure"):
                        self.failures[host] = str(item["failure"])
        except Exception as exc:  # noqa: BLE001 - its task was cancelled, or its worker or node died
            if host not in self.stopping:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self.failures[host] = f"its Ray task ended without a result ({type(exc).__name__}: {first[:300]})"
                self.job.log(f"{host}: {self.failures[host]}")
        if status is None:
            status = ExitStatus(None)
        if host in self.stopping:
            status = ExitStatus(status.returncode, timed_out=status.timed_out, stopped=True, duration_s=status.duration_s)
        self.results[host] = status
        if not status.ok:
            self.failed.set()

    def _stop(self, host: str) -> None:
        """End a remote host's process group (SIGTERM, then SIGKILL) on its node; a host that has
        not started its script yet has its task cancelled."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.stopping.add(host)
        started = self.started.get(host)
        try:
            if started is None:
                self.ray.cancel(self.gens[host])
                return
            pgid, node = started
            _kill_task(self.ray).options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False), num_cpus=0, max_retries=0,
            ).remote(pgid)
        except Exception:  # noqa: BLE001 - its task or node is gone already
            self.job.log(f"{host}: could not be stopped through Ray (it may have ended already)")


# -- what runs on a remote host --------------------------------------------------------------


class _Lines:
    """A remote host's log: lines kept until the task sends them to the runner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._tail: list[str] = []

    def write(self, line: str) -> None:
        with self._lock:
            self._pending.append(line)
            if not line.startswith("[kiln] "):
                self._tail.append(line)
                if len(self._tail) > 200:
                    del self._tail[:100]

    def take(self) -> list[str]:
        with self._lock:
            batch, self._pending = self._pending, []
        return batch

    def tail_text(self, lines: int = 30) -> str:
        with self._lock:
            return "\n".join(self._tail[-lines:])

    def flush(self) -> None:
        """Lines leave with the next batch the task sends."""


class _RemoteJob(RunningJob):
    """The job as a remote host sees it: its code runs under the job's limits, its output goes
    to the runner, and its process group stays out of the job record (that names the runner's
    host, where a dead runner's group is killed)."""

    def __init__(self, *args: Any, on_start: Callable[[int], None]) -> None:
        super().__init__(*args)
        self._on_start = on_start

    def execute(
        self, argv: Sequence[str], *, cwd: str | Path, env: Mapping[str, str], on_line: Callable[[str], None] | None = None,
        memory_mb: int | None = None, prefix: str = "", also_stop: Callable[[], bool] | None = None,
    ) -> ExitStatus:
        remaining = self.remaining_s()

        def line(text: str) -> None:
            self._sink.write(prefix + text)
            if on_line is not None:
                on_line(text)

        return run_group(
            argv, cwd=cwd, env=env, on_line=line, time_limit_s=max(remaining, 0.0) if remaining is not None else None,
            should_stop=lambda: self.stop_requested or (also_stop is not None and also_stop()), on_start=self._on_start,
            memory_mb=memory_mb,
        )


def _run_remote_host(
    name: str, settings: Mapping[str, str], host: str, hosts: list[str], hosts_env: Mapping[str, str], attempt: int,
    remaining_s: float | None,
) -> Iterator[list[str] | dict[str, Any]]:
    """A remote host's Ray task (``hosts_env``: ``KILN_HOST_ADDRESSES``, ``KILN_DIST_PORT``): yields batches of its log lines, ``{"pgid", "node"}`` once its
    script has started, and last ``{"status", "failure"}``."""
    import ray

    began = time.monotonic()
    addresses = json.loads(hosts_env[ADDRESSES_ENV])
    saved_env = dict(os.environ)  # Ray reuses this worker process for other tasks: leave no setting behind
    os.environ.update(settings)
    from kiln.core.errors import KilnError
    from kiln.core.workspace import Workspace
    from kiln.jobs._runner import _row
    from kiln.training import _program as program

    sink = _Lines()
    stop = threading.Event()
    started: list[int] = []
    out: dict[str, Any] = {}
    ws = Workspace()
    opened = time.monotonic()

    def work() -> None:
        layout = None
        try:
            job = _RemoteJob(ws, _row(ws, name), sink, stop, on_start=started.append)
            job.attempt = attempt
            job.time_limit_s = remaining_s  # what is left of the attempt's limit, from now
            layout = program._prepare_host(job, host, hosts)
            sink.write(f"[kiln] {host}: ready on {addresses.get(host) or 'its node'} {time.monotonic() - began:.1f} s after its task began "
                       f"({opened - began:.1f} s to open the workspace)")
            extra: dict[str, str] = {}
            if not job.spec.get("algorithm"):
                extra, problem = program._requirements(job, layout, target=layout.base / ".requirements")
                if problem:
                    out["status"] = {"returncode": None, "stopped": problem == "stopped on request"}
                    out["failure"] = f"{host}: {problem}"
                    return
            status = job.execute(program._argv(job, layout), cwd=layout.code, env=program._env(job, layout, host, hosts, {**extra, **hosts_env}))
            out["status"] = {"returncode": status.returncode, "timed_out": status.timed_out, "stopped": status.stopped, "duration_s": status.duration_s}
            try:
                out["failure"] = layout.failure_file.read_text(encoding="utf-8", errors="replace")[:_FAILURE_CHARS]
            except OSError:
                pass
            program._keep_checkpoints(job, host, layout.checkpoints)
        except KilnError as exc:
            out.update(status={"returncode": None}, failure=f"the job's inputs could not be prepared on {host}: {exc.message}")
        except OSError as exc:
            out.update(status={"returncode": None}, failure=f"could not start the entry point on {host}: {exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - Kiln's own fault, reported to the runner, never a stuck host
            sink.write("[kiln] internal error:\n" + traceback.format_exc())
            out.update(status={"returncode": None}, failure=f"internal error in Kiln on {host} ({type(exc).__name__}: {exc})")
        finally:
            if layout is not None and not os.environ.get("KILN_KEEP_JOB_FOLDERS"):
                shutil.rmtree(layout.base, ignore_errors=True)
                try:
                    layout.base.parent.rmdir()  # the job's folder on a node where nothing else of it is left
                except OSError:
                    pass

    worker = threading.Thread(target=work, name=f"kiln-host-{host}", daemon=True)
    worker.start()
    try:
        sent_start = False
        while worker.is_alive():
            worker.join(0.25)
            if started and not sent_start:
                sent_start = True
                yield {"pgid": started[0], "node": ray.get_runtime_context().get_node_id()}
            batch = sink.take()
            if batch:
                yield batch
    except KeyboardInterrupt:  # ray.cancel: end the script's group before this task goes
        stop.set()
        worker.join(GRACE_S + 5)
        raise
    finally:
        ws.close()
        os.environ.clear()
        os.environ.update(saved_env)
    batch = sink.take()
    if batch:
        yield batch
    yield {"status": out.get("status") or {"returncode": None}, "failure": out.get("failure")}


def _kill_host_group(pgid: int) -> None:
    """On a remote host's node: SIGTERM its script's process group, SIGKILL what is left after the grace."""
    kill_group(pgid)


_tasks: dict[str, Any] = {}


def _remote_task(ray: Any) -> Any:
    if "host" not in _tasks:
        _tasks["host"] = ray.remote(_run_remote_host)
    return _tasks["host"]


def _kill_task(ray: Any) -> Any:
    if "kill" not in _tasks:
        _tasks["kill"] = ray.remote(_kill_host_group)
    return _tasks["kill"]
