"""The Ray executor: each job's runner a detached actor on a Ray cluster.

``KILN_EXECUTOR=ray://host:10001`` connects to that cluster (Ray Client);
``KILN_EXECUTOR=ray`` to ``RAY_ADDRESS`` or the cluster ``ray start`` left on this
machine, else it starts a local Ray for this process, bound to the loopback
address only (its temp dir removed at exit). The connection is made on the first
submit, never by reading a job.

The runner (:func:`kiln.jobs._runner.main`) runs in a *detached* actor named after
the job, in the ``kiln`` namespace, holding the job's CPUs and GPUs:

- detached, so a job outlives the process that submitted it (``--detach``, a CLI
  that exits) for as long as the cluster runs, as a local runner outlives its parent;
- named, so any process connected to the cluster can tell whether a job's runner
  lives (``alive``) and a second launch of the same job finds the first instead of
  queueing a duplicate behind it.

The actor ends itself when the runner returns. The runner skips the local slot
wait (``KILN_JOB_NO_SLOT``): on Ray the cluster's resources queue jobs. Stopping
goes through the job record's flag, which the runner polls; the executor kills the
actor only if the runner has not ended a grace period later.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kiln.core.errors import Unavailable
from kiln.jobs._base import Capabilities, Executor, Launch

__all__ = ["NAMESPACE", "RayExecutor", "connect", "ray_module", "shutdown_local_ray", "start_local_ray"]

log = logging.getLogger("kiln.jobs")

NAMESPACE = "kiln"
# How long a stopped runner gets to end its job's processes and record Stopped before its
# actor is killed: its heartbeat poll (2 s) plus the process group's grace (10 s), and room.
STOP_GRACE_S = 30.0

_lock = threading.Lock()
_local: dict[str, Any] = {}  # the local Ray this process started: {"temp_dir": ...}
_timers: list[threading.Timer] = []  # pending kills of stopped runners, cancelled at shutdown


def ray_module() -> Any:
    """``ray``, imported on first use (an optional extra).

    Raises:
        Unavailable: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise Unavailable("KILN_EXECUTOR=ray needs Ray, an optional extra: pip install 'kiln[ray]'") from None
    return ray


@contextmanager
def _loopback_mode() -> Iterator[None]:
    """Ray's single-machine mode while ``ray.init`` runs: the node's address stays 127.0.0.1.

    ``_node_ip_address="127.0.0.1"`` alone is not enough: Ray 2.60 replaces a loopback address
    with the machine's routable one (``resolve_ip_for_localhost``), and would then listen and
    connect there, unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set while it starts its
    processes (they read the variable) and its constant while this process resolves addresses.
    """
    from ray._private import ray_constants

    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED")}
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_local_ray(*, num_cpus: int | None = None) -> Any:
    """Start a Ray for this process that listens on the loopback address only (usage
    statistics off, its files in a temp dir removed by :func:`shutdown_local_ray` or at exit)."""
    ray = ray_module()
    with _lock:
        if ray.is_initialized():
            return ray
        temp_dir = tempfile.mkdtemp(prefix="kiln-ray-")
        try:
            with _loopback_mode():
                ray.init(
                    address="local", num_cpus=num_cpus, namespace=NAMESPACE, include_dashboard=False,
                    _node_ip_address="127.0.0.1", _temp_dir=temp_dir, log_to_driver=False, configure_logging=False,
                )
        except BaseException:
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        _local["temp_dir"] = temp_dir
        atexit.register(shutdown_local_ray)
    return ray


def shutdown_local_ray() -> None:
    """Stop the local Ray :func:`start_local_ray` started (its jobs end with it) and remove its files."""
    with _lock:
        for timer in _timers:
            timer.cancel()
        _timers.clear()
        temp_dir = _local.pop("temp_dir", None)
        if temp_dir is None:
            return
        ray = ray_module()
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _address(spec: str) -> str | None:
    """The cluster ``spec`` names, or None to start a local Ray."""
    spec = spec.strip()
    if "://" in spec:
        return spec  # ray://host:port
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:  # the cluster `ray start --head` recorded on this machine (never a scan of others' processes)
        from ray._private.utils import read_ray_address

        return read_ray_address(None) or None
    except Exception:  # noqa: BLE001 - private helper; without it, no cluster is found
        return None


def connect(spec: str) -> Any:
    """``ray``, connected to the cluster ``KILN_EXECUTOR`` names, or to a local Ray it starts."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    address = _address(spec)
    if address is None:
        log.warning("KILN_EXECUTOR=ray: no Ray cluster found (RAY_ADDRESS, `ray start --head`); starting one for "
                    "this process on 127.0.0.1. Its jobs end when this process exits.")
        return start_local_ray()
    with _lock:
        if not ray.is_initialized():
            try:
                client = address.startswith("ray://")  # Ray Client: takes fewer options, joins as no node
                extra: dict[str, Any] = {} if client else {"log_to_driver": False}
                if _is_loopback(address):  # a cluster on this machine's loopback: reach it there
                    with _loopback_mode():
                        ray.init(address=address, namespace=NAMESPACE, **extra, **({} if client else {"_node_ip_address": "127.0.0.1"}))
                else:
                    ray.init(address=address, namespace=NAMESPACE, **extra)
            except ConnectionError as exc:
                raise Unavailable(
                    f"no Ray cluster answers at {address}: {exc}; start one (`ray start --head`) or set KILN_EXECUTOR=local "
                    "(a cluster with token authentication also needs RAY_AUTH_MODE=token here)"
                ) from None
    return ray


def connected() -> Any | None:
    """``ray`` if this process is connected (a driver or a Ray worker), else None; never connects."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray


class _Runner:
    """The actor a job's runner runs in; it ends itself when the runner returns.

    The actor calls its own ``run``: a call made by the submitter would be owned by the
    submitter and lost if it exits before the actor is up (``--detach``); the actor's
    creation, with its arguments, is kept by the cluster.
    """

    def __init__(self, name: str, env: Mapping[str, str]) -> None:
        import ray

        ray.get_runtime_context().current_actor.run.remote(name, env)

    def run(self, name: str, env: Mapping[str, str]) -> None:
        import ray

        try:
            from kiln.jobs._runner import main

            main(name, env)
        finally:
            ray.actor.exit_actor()


_actor_class: Any = None


def _runner_class(ray: Any) -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = ray.remote(_Runner)
    return _actor_class


def _actor_name(job: str) -> str:
    return f"kiln-job-{job}"


def _parse(handle: str) -> tuple[str, str] | None:
    if not handle.startswith("ray:"):
        return None
    name, _, actor_id = handle[4:].rpartition(":")
    return (name, actor_id) if name and actor_id else None


class RayExecutor(Executor):
    """Runners as detached actors on a Ray cluster; their handle is ``ray:<actor name>:<actor id>``."""

    name = "ray"
    capabilities = Capabilities(multi_host=True, remote=True)

    def __init__(self, spec: str = "ray") -> None:
        self.spec = spec

    def submit(self, launch: Launch) -> str:
        ray = connect(self.spec)
        name = _actor_name(launch.job)
        env = {**launch.env, "KILN_JOB_NO_SLOT": "1"}  # the cluster queues jobs, not this machine's slots
        try:
            existing = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            existing = None
        if existing is None:
            try:
                actor = _runner_class(ray).options(
                    name=name, namespace=NAMESPACE, lifetime="detached", num_cpus=launch.cpus, num_gpus=launch.gpus,
                    max_restarts=0, max_task_retries=0,
                ).remote(launch.job, env)
            except ValueError:  # another process launched it a moment ago
                existing = ray.get_actor(name, namespace=NAMESPACE)
            else:
                return f"ray:{name}:{actor._actor_id.hex()}"
        return f"ray:{name}:{existing._actor_id.hex()}"

    def alive(self, handle: str) -> bool | None:
        parsed = _parse(handle)
        ray = connected()
        if parsed is None or ray is None:
            return None  # the record's heartbeat decides; reading a job never starts or joins a cluster
        name, actor_id = parsed
        try:
            actor = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return False  # a detached actor's name is freed when it dies
        except Exception:  # noqa: BLE001 - the cluster does not answer: unknown
            return None
        return bool(actor._actor_id.hex() == actor_id)

    def stop(self, handle: str) -> None:
        parsed = _parse(handle)
        ray = connected()
        if parsed is None or ray is None:
            return  # the record's stop_requested flag reaches the runner wherever it runs
        name, actor_id = parsed

        def kill_if_still_there() -> None:
            if not ray.is_initialized():  # disconnected meanwhile: a Ray call now would start a new Ray (auto-init)
                return
            try:
                actor = ray.get_actor(name, namespace=NAMESPACE)
                if actor._actor_id.hex() == actor_id:
                    log.warning("job runner %s did not end %g s after a stop; killing its actor", name, STOP_GRACE_S)
                    ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - gone already, or the cluster with it
                pass

        timer = threading.Timer(STOP_GRACE_S, kill_if_still_there)
        timer.daemon = True
        _timers[:] = [t for t in _timers if t.is_alive()] + [timer]
        timer.start()

    def close(self) -> None:
        """Nothing per executor: the connection belongs to the process (see :func:`shutdown_local_ray`)."""
