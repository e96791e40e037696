"""kiln monitor: baselines, comparisons, monitors of endpoints' captured data, runs, ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kiln.cli._common import JsonOpt, busy, console, emit, get_client, parse_pairs, print_json
from kiln.core.errors import InvalidArgument

app = typer.Typer(help="Model Monitor: baselines, drift and data quality of endpoints' captured data, model quality, schedules.", no_args_is_help=True)

_MONITOR_COLS = ["name", "kind", "endpoint", "schedule", "next_run_at", "last_run", "created_at"]
_RUN_COLS = ["id", "status", "trigger", "window", "rows", "violations", "drift", "failure_reason"]


def _when(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _run_row(r: Any) -> dict[str, Any]:
    row = r.model_dump(mode="json")
    row["window"] = f"{_when(r.window_start)} .. {_when(r.window_end)}"
    return row


def _monitor_row(m: Any) -> dict[str, Any]:
    row = m.model_dump(mode="json")
    last = m.last_run
    row["last_run"] = f"{last['status']} ({last['violations']} violations) at {_when(last['started_at'])}" if last else ""
    return row
MethodOpt = typer.Option(None, "--method", help="Drift method per column COLUMN=METHOD ('*' for all): ks, chisquare, z, wasserstein, jensenshannon, psi, linf.")
ThresholdOpt = typer.Option(None, "--threshold", help="Drift threshold per column COLUMN=VALUE ('*' for all).")


def _thresholds(pairs: list[str] | None) -> dict[str, float] | None:
    raw = parse_pairs(pairs, option="--threshold", example="'*=0.2' or age=0.05", shape="COLUMN=VALUE")
    out = {}
    for col, v in raw.items():
        try:
            out[col] = float(v)
        except ValueError:
            raise InvalidArgument(f"--threshold {col}={v}: the threshold must be a number") from None
    return out or None


def _methods(pairs: list[str] | None) -> dict[str, str] | None:
    return parse_pairs(pairs, option="--method", example="'*=psi' or age=ks", shape="COLUMN=METHOD") or None


def _g(v: Any) -> Any:
    return f"{v:.4g}" if isinstance(v, float) else v


def _summary(result: dict[str, Any], violations: list[dict[str, Any]]) -> None:
    dd = result.get("dataset_drift") or {}
    if dd:
        console.print(f"dataset drift: {'[red]yes[/red]' if dd.get('drift') else '[green]no[/green]'} "
                      f"({dd.get('drifted_columns')} of {dd.get('columns')} columns, share {dd.get('share', 0):.2f} >= {dd.get('threshold')}?)")
        shown = [c for c in result.get("columns", []) if c.get("drifted") or c.get("baseline_drift") or "error" in c]
        if shown:
            emit([{"column": c["name"], "method": c.get("method", c.get("error")), "score": _g(c.get("score")), "threshold": c.get("threshold"),
                   "drifted": c.get("drifted"), "model_monitor_distance": _g(c.get("distance"))} for c in shown],
                 json=False, title=f"columns that drifted by their test or past Model Monitor's distance threshold "
                                   f"({len(shown)} of {len(result.get('columns', []))}; all in result.json and report.html)")
    mq = result.get("model_quality")
    if mq:
        emit({k: _g(v) for k, v in mq.get("metrics", {}).items()}, json=False, title="model quality")
    emit([{k: v.get(k) for k in ("feature_name", "constraint_check_type", "description")} for v in violations] or [], json=False, title=f"{len(violations)} violations")


@app.command("baseline")
def baseline(
    dataset: str = typer.Argument(..., help="The dataset version: NAME or NAME@VERSION."),
    output: Path = typer.Option(Path("baseline"), "--output", "-o", help="The folder for statistics.json and constraints.json."),
    json: bool = JsonOpt,
) -> None:
    """Suggest a baseline: Model Monitor's statistics.json and constraints.json of a dataset."""
    with busy(f"baselining {dataset}"):
        files = get_client().monitoring.baseline(dataset, output=output)
    if json:
        print_json({"output": str(output), "features": len(files.statistics["features"]), "rows": files.statistics["dataset"]["item_count"]})
    else:
        console.print(f"wrote {output}/statistics.json and {output}/constraints.json ({len(files.statistics['features'])} features, "
                      f"{files.statistics['dataset']['item_count']} rows)")


@app.command("compare")
def compare(
    reference: str = typer.Argument(..., help="The reference: a dataset (NAME[@V]) or a baseline folder (statistics.json + constraints.json)."),
    current: str = typer.Argument(..., help="The dataset to check: NAME[@V]."),
    output: Path = typer.Option(None, "--output", "-o", help="A folder for statistics.json, constraint_violations.json, result.json, report.html."),
    method: list[str] = MethodOpt,
    threshold: list[str] = ThresholdOpt,
    drift_share: float = typer.Option(0.5, "--drift-share", help="The dataset drifts when this share of columns drift."),
    psi: bool = typer.Option(False, "--psi", help="Also report each column's PSI."),
    json: bool = JsonOpt,
) -> None:
    """Check one dataset against another (or a baseline) with no endpoint; exits 1 on violations."""
    with busy(f"comparing {current} with {reference}"):
        res = get_client().monitoring.compare(reference, current, output=output, methods=_methods(method), thresholds=_thresholds(threshold),
                                              drift_share=drift_share, psi=psi)
    if json:
        print_json({"result": res.result, "violations": res.constraint_violations["violations"]})
    else:
        _summary(res.result, res.constraint_violations["violations"])
        if output is not None:
            console.print(f"wrote {output}/ (statistics.json, constraint_violations.json, result.json, report.html)")
    if res.constraint_violations["violations"]:
        raise typer.Exit(1)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The monitor's name."),
    endpoint: str = typer.Option(..., "--endpoint", help="The endpoint whose captured data it checks."),
    baseline: str = typer.Option(None, "--baseline", help="A dataset (NAME[@V]) or a baseline folder (statistics.json + constraints.json, Kiln's or SageMaker's)."),
    constraints: Path = typer.Option(None, "--constraints", help="A constraints.json (model quality: binary_classification_constraints ...)."),
    schedule: str = typer.Option("hourly", "--schedule", help="hourly, daily, a cron expression ('*/15 * * * *'), or none."),
    kind: str = typer.Option("data_quality", "--kind", help="data_quality or model_quality."),
    problem_type: str = typer.Option(None, "--problem-type", help="Model quality: BinaryClassification, MulticlassClassification or Regression."),
    label: str = typer.Option(None, "--label", help="Model quality baseline: the dataset's column of true labels."),
    prediction: str = typer.Option(None, "--prediction", help="Model quality baseline: the dataset's column of predictions."),
    positive_label: str = typer.Option(None, "--positive-label", help="Binary classification: the positive class (default 1)."),
    method: list[str] = MethodOpt,
    threshold: list[str] = ThresholdOpt,
    drift_share: float = typer.Option(0.5, "--drift-share", help="The dataset drifts when this share of columns drift."),
    psi: bool = typer.Option(False, "--psi", help="Also report each column's PSI."),
    json: bool = JsonOpt,
) -> None:
    """Create a monitor of an endpoint's captured data, run by the server on its schedule."""
    if constraints is not None and not constraints.is_file():
        raise InvalidArgument(f"--constraints {constraints}: no such file")
    pos: Any = positive_label
    if isinstance(pos, str) and pos.lstrip("-").isdigit():
        pos = int(pos)
    mon = get_client().monitoring.create(name, endpoint=endpoint, baseline=baseline, constraints=constraints, schedule=schedule, kind=kind,
                                         problem_type=problem_type, label=label, prediction=prediction, positive_label=pos,
                                         methods=_methods(method), thresholds=_thresholds(threshold), drift_share=drift_share, psi=psi)
    emit(mon if json else _monitor_row(mon), json=json, columns=_MONITOR_COLS)


@app.command("list")
def list_(json: bool = JsonOpt) -> None:
    """Every monitor."""
    monitors = get_client().monitoring.list()
    emit(monitors if json else [_monitor_row(m) for m in monitors], json=json, columns=_MONITOR_COLS)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="The monitor."), json: bool = JsonOpt) -> None:
    """A monitor: endpoint, baseline, schedule, next slot, last run."""
    emit(get_client().monitoring.describe(name), json=json)


@app.command("delete")
def delete(name: str = typer.Argument(..., help="The monitor."), json: bool = JsonOpt) -> None:
    """Delete a monitor with its runs and ground truth."""
    mon = get_client().monitoring.delete(name)
    emit(mon if json else _monitor_row(mon), json=json, columns=_MONITOR_COLS)


@app.command("run")
def run(
    name: str = typer.Argument(..., help="The monitor."),
    window: str = typer.Option("1h", "--window", help="Captured data of the last 1h / 30m / 2d, or START/END in ISO-8601."),
    json: bool = JsonOpt,
) -> None:
    """Run a monitor now over a window of captured data; exits 1 on violations or failure."""
    client = get_client()
    with busy(f"running monitor {name}"):
        r = client.monitoring.run(name, window=window)
    if json:
        print_json(r)
    else:
        emit(_run_row(r), json=False, columns=_RUN_COLS)
        if r.status != "Failed":
            full = client.monitoring.get_run(name, r.id)
            _summary(full.result or {}, full.constraint_violations or [])
    if r.status != "Completed":
        raise typer.Exit(1)


@app.command("runs")
def runs(name: str = typer.Argument(..., help="The monitor."), limit: int = typer.Option(50, "--limit"), json: bool = JsonOpt) -> None:
    """A monitor's runs and missed slots, newest first."""
    found = get_client().monitoring.runs(name, limit=limit)
    emit(found if json else [_run_row(r) for r in found], json=json, columns=_RUN_COLS)


@app.command("show")
def show(name: str = typer.Argument(..., help="The monitor."), run_id: str = typer.Argument(..., help="The run id (or a unique prefix)."),
         output: Path = typer.Option(None, "--output", "-o", help="A folder for the run's result.json, constraint_violations.json and report.html."),
         json: bool = JsonOpt) -> None:
    """One run: drift per column, violations, model quality."""
    client = get_client()
    r = client.monitoring.get_run(name, run_id)
    if output is not None and r.result is not None:
        from kiln.sdk.monitoring import write_files

        write_files(output, {"result.json": r.result, "constraint_violations.json": {"violations": r.constraint_violations or []},
                             "report.html": client.monitoring.report(name, r.id).html})
    if json:
        print_json(r)
    else:
        emit(_run_row(r), json=False, columns=_RUN_COLS)
        if r.result:
            _summary(r.result, r.constraint_violations or [])


@app.command("ground-truth")
def ground_truth(name: str = typer.Argument(..., help="The model quality monitor."),
                 file: Path = typer.Argument(..., help="SageMaker's ground truth JSONL, or a CSV with inference_id,label."),
                 json: bool = JsonOpt) -> None:
    """Upload ground truth labels; runs join them to captured predictions by inference id."""
    if not file.is_file():
        raise InvalidArgument(f"{file}: no such file")
    emit(get_client().monitoring.ground_truth(name, file), json=json)
