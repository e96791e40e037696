"""kiln evaluate: score registered models on a dataset, into a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kiln.cli._common import busy, console, emit, get_client, to_jsonable
from kiln.core.errors import InvalidArgument

app = typer.Typer()


def _data(arg: str) -> tuple[str | None, Any]:
    """A Kiln dataset reference, or a local .csv / .parquet file read here."""
    path = Path(arg)
    if path.suffix.lower() in (".csv", ".parquet", ".pq") :
        if not path.is_file():
            raise InvalidArgument(f"{arg!r} is not a file")
        import pandas as pd

        return None, pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    return arg, None


def _fmt(value: Any) -> str:
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


@app.command("evaluate")
def evaluate(
    args: list[str] = typer.Argument(..., help="MODEL_REF DATASET, or with --compare: MODEL_A MODEL_B [...] DATASET."),
    target: str = typer.Option(..., "--target", "-t", help="The label column."),
    compare: bool = typer.Option(False, "--compare", help="Evaluate several models side by side."),
    experiment: str = typer.Option("evaluations", help="Experiment the evaluation runs go to."),
    problem_type: str = typer.Option(None, help="classification or regression (default: inferred)."),
    json: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of a table."),
) -> None:
    """Evaluate a model on a dataset (a Kiln dataset reference or a .csv/.parquet file) into a run."""
    client = get_client()
    if compare:
        if len(args) < 3:
            raise InvalidArgument("--compare takes two or more models and then the dataset: MODEL_A MODEL_B DATASET")
        dataset, data = _data(args[-1])
        with busy(f"evaluating {len(args) - 1} models on {args[-1]}"):
            result = client.evaluations.compare(args[:-1], target=target, dataset=dataset, data=data, experiment=experiment)
        if json:
            emit(to_jsonable(result), json=True)
            return
        table = Table(title=f"{', '.join(result.models)} on {result.dataset}")
        table.add_column("metric")
        for m in result.models:
            table.add_column(m)
        table.add_column("best")
        for key, values in result.metrics.items():
            table.add_row(key, *[_fmt(v) for v in values], result.best.get(key, ""))
        console.print(table)
        return
    if len(args) != 2:
        raise InvalidArgument("evaluate takes MODEL_REF DATASET (or --compare MODEL_A MODEL_B DATASET)")
    dataset, data = _data(args[1])
    with busy(f"evaluating {args[0]} on {args[1]}"):
        report = client.evaluations.evaluate(args[0], target=target, dataset=dataset, data=data, experiment=experiment, problem_type=problem_type)
    if json:
        emit(to_jsonable(report), json=True)
        return
    table = Table(title=f"{report.model} on {report.dataset} ({report.problem_type}, {report.rows:,} rows)")
    table.add_column("metric")
    table.add_column("value")
    for key, value in report.metrics.items():
        table.add_row(key, _fmt(value))
    console.print(table)
    console.print(f"run {report.run_id} in experiment {experiment!r}; artifacts: {', '.join(report.artifacts)}", highlight=False)
