"""The training job's program, run by the job runner (never in the API process).

Per attempt: lay out the job's folder as CONTRACTS.md §1 says (one folder per host,
``algo-1`` … ``algo-N``), unpack the code, materialise the channels, restore the
checkpoints of an earlier attempt, install ``requirements.txt`` when something in it
is missing, run the entry point (or the built-in algorithm) on every host with the
SageMaker environment, capture metrics from the log, then keep ``checkpoints/`` and
``output/data/`` in the object store and register ``model/`` (from ``algo-1``) as a
model version whose provenance (job, submitter, source hash) is recorded.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kiln.core.errors import KilnError
from kiln.jobs._inputs import InputSource, materialize
from kiln.jobs._runner import Outcome, RunningJob
from kiln.training._hosts import host_runner

__all__ = ["run"]

_METRIC_FLUSH_S = 1.0


class _Metrics:
    """Metric values captured from the log by the job's definitions, logged to its run."""

    def __init__(self, job: RunningJob, definitions: list[dict[str, str]]) -> None:
        from kiln.training._contract import metric_matcher

        self.job = job
        self.match = metric_matcher(definitions, limit=None) if definitions else None
        self.last: dict[str, float] = {}
        self._steps: dict[str, int] = {}
        self._points: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def on_line(self, line: str) -> None:
        if self.match is None:
            return
        found = self.match(line)
        if not found:
            return
        now = time.time()
        with self._lock:
            for name, value in found:
                step = self._steps.get(name, 0)
                self._steps[name] = step + 1
                self.last[name] = value
                self._points.append({"key": _metric_key(name), "value": value, "timestamp": now, "step": step})
        if time.monotonic() - self._flushed > _METRIC_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            points, self._points = self._points, []
            self._flushed = time.monotonic()
        if not points or not self.job.run_id:
            return
        from kiln.tracking._runs import RunService

        try:
            RunService(self.job.ws, self.job.ctx).log_batch(run_id=self.job.run_id, metrics=points)
        except KilnError as exc:
            self.job.log(f"metrics not logged to the run: {exc.message}")


def _metric_key(name: str) -> str:
    """A SageMaker metric name (``validation:auc``) as a tracking key (``validation:auc`` is kept
    when valid; anything else becomes '_')."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-./: ]", "_", name)[:250] or "metric"


def _hosts(job: RunningJob) -> list[str]:
    return [f"algo-{i + 1}" for i in range(int(job.spec.get("instance_count") or 1))]


def _prepare_host(job: RunningJob, host: str, hosts: list[str]) -> Any:
    """The folder of one host, laid out and filled (code, channels, configs, checkpoints)."""
    from kiln.training._contract import make_layout, unpack_source, write_configs

    spec = job.spec
    channels: dict[str, Any] = spec.get("channels") or {}
    layout = make_layout(job.folder / host, list(channels))
    if spec.get("code") and not any(layout.code.iterdir()):
        from kiln.jobs._code import fetch_archive

        archive = fetch_archive(job.ws, spec["code"], job.folder / f"code-{host}.tar.gz")
        unpack_source(archive, layout.code)
        archive.unlink(missing_ok=True)
    for name, source in channels.items():
        folder = layout.channel(name)
        if not any(folder.iterdir()):
            src = InputSource.from_dict(source)
            job.log(f"{host}: channel {name} <- {src.value}" + (f" ({src.format})" if src.format else ""))
            materialize(job.ws, job.ctx, src, folder)
    write_configs(layout, hyperparameters=spec.get("hyperparameters") or {}, channels=_content_types(job), hosts=hosts,
                  current_host=host, instance_type=spec.get("instance_type") or "local")
    _restore_checkpoints(job, host, layout.checkpoints)
    return layout


def _content_types(job: RunningJob) -> dict[str, str | None]:
    return {n: InputSource.from_dict(s).content_type for n, s in (job.spec.get("channels") or {}).items()}


def _argv(job: RunningJob, layout: Any) -> list[str]:
    from kiln.training._contract import training_argv

    spec = job.spec
    if spec.get("algorithm"):
        return [sys.executable, "-m", "kiln.training.builtin", spec["algorithm"]]
    return training_argv(spec["entry_point"], spec.get("hyperparameters") or {}, python=sys.executable, code_dir=layout.code)


def _env(job: RunningJob, layout: Any, host: str, hosts: list[str], extra: dict[str, str]) -> dict[str, str]:
    from kiln.training._contract import training_env

    from kiln.training._contract import requirements_env

    spec = job.spec
    entry = spec.get("entry_point") or f"kiln.training.builtin:{spec['algorithm']}"
    env = training_env(
        layout, entry_point=entry, hyperparameters=spec.get("hyperparameters") or {}, channels=_content_types(job),
        hosts=hosts, current_host=host, job_name=job.name, num_cpus=_cpus(len(hosts)), num_gpus=_gpus(),
        instance_type=spec.get("instance_type") or "local",
    )
    if extra.get("requirements"):
        env = requirements_env(Path(extra["requirements"]), env)  # keeps the code dir on PYTHONPATH
    hosts_env = {k: v for k, v in extra.items() if k != "requirements"}  # KILN_HOST_ADDRESSES
    merged = job.user_env({**env, **hosts_env, **(spec.get("environment") or {})})
    return merged


def _cpus(hosts: int) -> int:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, n // max(hosts, 1))


def _gpus() -> int:
    """GPUs this machine shows (``SM_NUM_GPUS``), from the driver, never by importing a framework."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len([d for d in os.listdir("/proc/driver/nvidia/gpus")])
    except OSError:
        return 0


def _requirements(job: RunningJob, layout: Any, *, target: Path | None = None) -> tuple[dict[str, str], str | None]:
    """Install what ``requirements.txt`` asks for and this environment lacks, into ``target``
    (the job's folder by default); returns (``{"requirements": target}`` for :func:`_env`, failure reason)."""
    from kiln.training._contract import requirements_command

    target = target or job.folder / "requirements"
    cmd = requirements_command(layout.code, target, python=sys.executable)
    if cmd is None:
        if (layout.code / "requirements.txt").is_file():
            job.log("requirements.txt: every requirement is already installed")
        return {}, None
    job.log("requirements.txt: installing what is missing: " + " ".join(cmd[cmd.index("-r"):] if "-r" in cmd else cmd[-2:]))
    status = job.execute(cmd, cwd=layout.code, env=job.user_env())
    if not status.ok:
        if status.stopped:
            return {}, "stopped on request"
        return {}, f"requirements.txt could not be installed (pip {status.describe()}); fix it or install the packages where Kiln runs. Last lines:\n{job.log_tail(15)}"
    return {"requirements": str(target)}, None


def run(job: RunningJob) -> Outcome:
    from kiln.training._contract import failure_reason

    hosts = _hosts(job)
    metrics = _Metrics(job, job.spec.get("metric_definitions") or [])
    placement = host_runner(job, hosts)  # threads here, or (on Ray) algo-2… as Ray tasks
    try:
        layouts = {h: _prepare_host(job, h, hosts) for h in placement.local(hosts)}
    except KilnError as exc:
        return Outcome(failure=f"the job's inputs could not be prepared: {exc.message}")
    leader = layouts[hosts[0]]
    extra, problem = ({}, None) if job.spec.get("algorithm") else _requirements(job, leader)
    if problem:
        return Outcome(failure=problem, stopped=problem == "stopped on request")
    argv = _argv(job, leader)
    job.log(f"running {' '.join(argv[1:] if argv[0] == sys.executable else argv)} on {', '.join(hosts)}")
    try:
        results = placement.run(job, hosts, layouts, argv, extra, metrics.on_line)
    except OSError as exc:
        return Outcome(failure=f"could not start the entry point: {exc.strerror or exc}")
    finally:
        metrics.flush()
        for host, layout in layouts.items():
            _keep_checkpoints(job, host, layout.checkpoints)
    bad = [(h, s) for h, s in results.items() if not s.ok]
    if job.stop_requested:
        return Outcome(stopped=True, metrics=metrics.last)
    if bad:
        host, status = next(((h, s) for h, s in bad if not s.stopped), bad[0])
        reason = failure_reason(layouts[host], job.log_tail(30), status.returncode)
        if status.timed_out:
            reason = f"the job ran past its time limit (max_run {job.time_limit_s:g} s) and was ended"
        elif status.signal is not None and not (layouts[host].failure_file).is_file():
            reason = f"the script {status.describe()}. Last lines:\n{job.log_tail(15)}"
        where = f" (on {host})" if len(hosts) > 1 else ""
        return Outcome(failure=reason + where, retriable=not status.timed_out, metrics=metrics.last)
    outputs: dict[str, Any] = {}
    data = _keep_output_data(job, leader)
    if data:
        outputs["output_data"] = data
    try:
        version = _register_model(job, leader)
    except KilnError as exc:
        return Outcome(failure=f"the model in model/ could not be registered: {exc.message}", metrics=metrics.last)
    if version is not None:
        outputs["model"] = version
        job.log(f"model registered as {version}")
    else:
        job.log("model/ is empty: no model registered")
    return Outcome(outputs=outputs, metrics=metrics.last)


# -- what the job leaves: checkpoints, output data, the model ---------------------------------


def _prefix(job: RunningJob, what: str, host: str | None = None) -> str:
    return f"jobs/{job.name}/{what}/" + (f"{host}/" if host else "")


def _upload_folder(job: RunningJob, folder: Path, prefix: str) -> int:
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            job.ws.store.put_file(prefix + path.relative_to(folder).as_posix(), path)
            count += 1
    return count


def _keep_checkpoints(job: RunningJob, host: str, folder: Path) -> None:
    if folder.is_dir() and any(folder.iterdir()):
        prefix = _prefix(job, "checkpoints", host)
        job.ws.store.delete(prefix.rstrip("/"))
        n = _upload_folder(job, folder, prefix)
        job.log(f"{host}: kept {n} checkpoint file(s)")


def _restore_checkpoints(job: RunningJob, host: str, folder: Path) -> None:
    prefix = _prefix(job, "checkpoints", host)
    listed = job.ws.store.list(prefix.rstrip("/"))
    for key, _, _ in listed:
        rel = key[len(prefix):]
        target = (folder / rel).resolve()
        if not target.is_relative_to(folder.resolve()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        job.ws.store.get_file(key, target)
    if listed:
        job.log(f"{host}: restored {len(listed)} checkpoint file(s) from the last attempt")


def _keep_output_data(job: RunningJob, layout: Any) -> str | None:
    folder = layout.output_data
    if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
        prefix = _prefix(job, "output-data")
        n = _upload_folder(job, folder, prefix)
        job.log(f"kept {n} file(s) of output/data")
        return prefix
    return None


def _register_model(job: RunningJob, layout: Any) -> str | None:
    from kiln.registry._service import ModelService

    model_dir: Path = layout.model
    if not any(p.is_file() for p in model_dir.rglob("*")):
        return None
    from kiln.training._contract import model_package

    spec = job.spec
    package = job.folder / "package"
    shutil.rmtree(package, ignore_errors=True)
    if spec.get("code"):
        model_package(model_dir, layout.code, package)  # code/ is the job's source, as the SDK repacks it
    else:
        shutil.copytree(model_dir, package, symlinks=False)
    options = {
        "entry_point": spec.get("entry_point"), "algorithm": spec.get("algorithm"), "framework": spec.get("framework"),
        "framework_version": spec.get("framework_version"), "source_sha256": spec.get("code"),
    }
    datasets = [c["value"] for c in (spec.get("channels") or {}).values() if c["kind"] == "dataset"]
    version = ModelService(job.ws, job.ctx).register_job_model(
        name=spec["model_name"], folder=package, flavor="builtin" if spec.get("algorithm") else "sagemaker", flavor_options={k: v for k, v in options.items() if v},
        job=job.name, run_id=job.run_id, submitter=job.submitter, source_sha256=spec.get("code"), datasets=datasets,
        description=f"trained by job {job.name}",
    )
    return f"{version.name}@{version.version}"

