"""SDK: ``client.monitoring`` (baselines, comparisons, monitors, runs, ground truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument
from kiln.monitoring import _ops as ops
from kiln.monitoring._models import (
    BaselineFiles,
    CompareResult,
    GroundTruthUpload,
    Monitor,
    MonitorRun,
    RunReport,
)
from kiln.sdk._base import Namespace

__all__ = ["Monitoring", "read_baseline", "write_files"]


def read_baseline(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``statistics.json`` (and ``constraints.json`` when present) of a baseline folder, or
    of the files themselves — Kiln's or SageMaker Model Monitor's."""
    path = Path(folder)
    stats_path = path / "statistics.json" if path.is_dir() else path
    cons_path = stats_path.with_name("constraints.json")
    if not stats_path.is_file():
        raise InvalidArgument(f"{folder}: no statistics.json there; give a folder written by kiln monitor baseline (or by SageMaker)")
    try:
        stats = json.loads(stats_path.read_text())
        cons = json.loads(cons_path.read_text()) if cons_path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{folder}: cannot read the baseline's JSON ({exc})") from None
    return stats, cons


def write_files(dest: str | Path, files: dict[str, Any]) -> list[Path]:
    """Write ``{file name: JSON document or text}`` into the folder ``dest`` (made if needed)."""
    folder = Path(dest)
    if folder.exists() and not folder.is_dir():
        raise InvalidArgument(f"{dest} is a file; give a folder for the output")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, doc in files.items():
        target = folder / name
        tmp = target.with_name(f".{name}.partial")
        tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
        tmp.replace(target)  # whole files only
        out.append(target)
    return out


def _is_local_baseline(ref: str) -> bool:
    return "/" in ref or ref.endswith(".json") or Path(ref).is_dir()


class Monitoring(Namespace):
    """SageMaker Model Monitor's workflow, on any transport."""

    def baseline(self, dataset: str, *, output: str | Path | None = None, monitoring_config: dict[str, Any] | None = None) -> BaselineFiles:
        """statistics.json and constraints.json of a dataset version (written to ``output`` when given)."""
        files: BaselineFiles = self._call(ops.BASELINE, dataset=dataset, monitoring_config=monitoring_config)
        if output is not None:
            write_files(output, {"statistics.json": files.statistics, "constraints.json": files.constraints})
        return files

    def compare(self, reference: str, current: str, *, output: str | Path | None = None, methods: dict[str, str] | None = None,
                thresholds: dict[str, float] | None = None, drift_share: float = 0.5, psi: bool = False) -> CompareResult:
        """Check dataset ``current`` against dataset ``reference`` or a baseline folder; with
        ``output``, write statistics.json, constraint_violations.json, result.json and report.html."""
        stats = cons = None
        ref: str | None = reference
        if _is_local_baseline(reference):
            stats, cons = read_baseline(reference)
            ref = None
        res: CompareResult = self._call(ops.COMPARE, current=current, reference=ref, statistics=stats, constraints=cons, methods=methods,
                                        thresholds=thresholds, drift_share=drift_share, psi=psi)
        if output is not None:
            write_files(output, {"statistics.json": res.statistics, "constraint_violations.json": res.constraint_violations,
                                 "result.json": res.result, "report.html": res.html})
        return res

    def create(self, name: str, *, endpoint: str, baseline: str | None = None, constraints: dict[str, Any] | str | Path | None = None,
               schedule: str = "hourly", kind: str = "data_quality", problem_type: str | None = None, label: str | None = None,
               prediction: str | None = None, positive_label: str | int | None = None, methods: dict[str, str] | None = None,
               thresholds: dict[str, float] | None = None, drift_share: float = 0.5, psi: bool = False) -> Monitor:
        """Create a monitor of ``endpoint``; ``baseline`` is a dataset version or a baseline folder
        (statistics.json + constraints.json, Kiln's or SageMaker's)."""
        stats = None
        if isinstance(constraints, str | Path):
            try:
                constraints = json.loads(Path(constraints).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidArgument(f"cannot read constraints {constraints}: {exc}") from None
        if baseline is not None and _is_local_baseline(baseline):
            stats, cons = read_baseline(baseline)
            constraints = constraints or cons
            baseline = None
        return self._call(ops.CREATE, name=name, endpoint=endpoint, baseline=baseline, statistics=stats, constraints=constraints,  # type: ignore[no-any-return]
                          schedule=schedule, kind=kind, problem_type=problem_type, label=label, prediction=prediction,
                          positive_label=positive_label, methods=methods, thresholds=thresholds, drift_share=drift_share, psi=psi)

    def list(self) -> list[Monitor]:
        return self._call(ops.LIST)  # type: ignore[no-any-return]

    def describe(self, name: str) -> Monitor:
        return self._call(ops.DESCRIBE, name=name)  # type: ignore[no-any-return]

    def delete(self, name: str) -> Monitor:
        return self._call(ops.DELETE, name=name)  # type: ignore[no-any-return]

    def run(self, name: str, *, window: str | None = None) -> MonitorRun:
        """Run a monitor now over a window of captured data (``1h``, ``30m``, or ``START/END``)."""
        return self._call(ops.RUN, name=name, window=window)  # type: ignore[no-any-return]

    def runs(self, name: str, *, limit: int = 50) -> list[MonitorRun]:
        return self._call(ops.RUNS, name=name, limit=limit)  # type: ignore[no-any-return]

    def get_run(self, name: str, run_id: str) -> MonitorRun:
        return self._call(ops.GET_RUN, name=name, run_id=run_id)  # type: ignore[no-any-return]

    def report(self, name: str, run_id: str) -> RunReport:
        return self._call(ops.REPORT, name=name, run_id=run_id)  # type: ignore[no-any-return]

    def ground_truth(self, name: str, data: str | bytes | Path) -> GroundTruthUpload:
        """Upload ground truth (a file path, or its text): SageMaker's JSONL or a CSV inference_id,label."""
        if isinstance(data, Path):
            try:
                data = data.read_bytes()
            except OSError as exc:
                raise InvalidArgument(f"cannot read {data}: {exc.strerror}") from None
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidArgument("ground truth must be UTF-8 text") from None
        return self._call(ops.GROUND_TRUTH, name=name, data=data)  # type: ignore[no-any-return]
