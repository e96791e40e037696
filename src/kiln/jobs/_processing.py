"""Processing jobs (SageMaker Processing): a script or command with named inputs as files
under ``<folder>/processing/input/<name>/`` and named outputs, written under
``<folder>/processing/output/<name>/``, registered as new dataset versions with lineage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kiln.core.errors import KilnError
from kiln.jobs._inputs import InputSource, materialize
from kiln.jobs._runner import Outcome, RunningJob

__all__ = ["run"]


def run(job: RunningJob) -> Outcome:
    spec = job.spec
    base = job.folder / "processing"
    base.mkdir(parents=True, exist_ok=True)
    inputs: dict[str, Any] = spec.get("inputs") or {}
    outputs: dict[str, str] = spec.get("outputs") or {}
    for name, source in inputs.items():
        job.log(f"input {name}: {source['value']}")
        materialize(job.ws, job.ctx, InputSource.from_dict(source), base / "input" / name)
    for name in outputs:
        (base / "output" / name).mkdir(parents=True, exist_ok=True)
    code = base / "input" / "code"
    if spec.get("code"):
        from kiln.jobs._code import fetch_archive
        from kiln.training._contract import unpack_source

        archive = fetch_archive(job.ws, spec["code"], job.folder / "code.tar.gz")
        unpack_source(archive, code)
    argv = [*(spec.get("command") or [sys.executable])]
    if spec.get("entry_point"):
        argv.append(str(code / spec["entry_point"]))
    argv += [str(a) for a in spec.get("arguments") or []]
    env = job.user_env({
        "KILN_PROCESSING_DIR": str(base),
        "KILN_PROCESSING_INPUTS": ",".join(sorted(inputs)),
        "KILN_PROCESSING_OUTPUTS": ",".join(sorted(outputs)),
        **{f"KILN_INPUT_{n.upper()}": str(base / "input" / n) for n in inputs},
        **{f"KILN_OUTPUT_{n.upper()}": str(base / "output" / n) for n in outputs},
        **(spec.get("environment") or {}),
    })
    try:
        status = job.execute(argv, cwd=code if code.is_dir() else base, env=env)
    except OSError as exc:
        return Outcome(failure=f"could not start {argv[0]!r}: {exc.strerror or exc}")
    if status.stopped:
        return Outcome(stopped=True)
    if not status.ok:
        return Outcome(failure=f"the command {status.describe()}; last lines:\n{job.log_tail(20)}", retriable=not status.timed_out)
    parents = [s["value"] for s in inputs.values() if s["kind"] == "dataset"]
    produced: dict[str, str] = {}
    for name, dataset in outputs.items():
        folder = base / "output" / name
        if not any(p.is_file() for p in folder.rglob("*")):
            return Outcome(failure=f"output {name!r} is empty: the job wrote nothing to {folder.relative_to(job.folder)}")
        try:
            version = _register(job, dataset, folder, parents)
        except KilnError as exc:
            return Outcome(failure=f"output {name!r} could not be registered as dataset {dataset!r}: {exc.message}")
        produced[name] = version
        job.log(f"output {name} registered as dataset {version}")
    return Outcome(outputs={"datasets": produced} if produced else {})


def _register(job: RunningJob, dataset: str, folder: Path, parents: list[str]) -> str:
    from kiln.lake.datasets import DatasetService

    lineage = {"parents": parents, "job": job.name, "run_id": job.run_id}
    version = DatasetService(job.ws, job.ctx).ingest(dataset, str(folder), lineage=lineage)
    return f"{version.name}@{version.version}"
