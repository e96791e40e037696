"""kiln metrics: put data points, list series, query statistics, collect now."""

from __future__ import annotations

from typing import Any

import typer

from kiln.cli._common import JsonOpt, emit, get_client, parse_pairs, print_json

app = typer.Typer(help="Metrics: the platform's and your own data points, queried by name, dimensions, range and period.", no_args_is_help=True)

DimOpt = typer.Option(None, "--dimension", "-d", help="A dimension NAME=VALUE (repeat for more).")


def _dims(pairs: list[str] | None) -> dict[str, str]:
    return parse_pairs(pairs, option="--dimension", example="endpoint=churn", shape="NAME=VALUE")


def _time(text: str | None) -> float | None:
    if text is None:
        return None
    from kiln.metrics._base import parse_since

    return parse_since(text)


@app.command("put")
def put(
    namespace: str = typer.Argument(..., help="The namespace, e.g. myteam/app."),
    name: str = typer.Argument(..., help="The metric name."),
    value: float = typer.Argument(..., help="The value."),
    dimension: list[str] = DimOpt,
    timestamp: str = typer.Option(None, "--at", help="When: Unix seconds, ISO-8601 or a duration ago (5m); default now."),
    unit: str = typer.Option(None, help="Unit (Count, Seconds, Percent...)."),
    json: bool = JsonOpt,
) -> None:
    """Store one data point."""
    emit(get_client().metrics.put_value(namespace, name, value, dimensions=_dims(dimension), timestamp=_time(timestamp), unit=unit), json=json)


@app.command("ls")
def ls(
    namespace: str = typer.Option(None, help="Only this namespace."),
    name: str = typer.Option(None, help="Only this metric name."),
    limit: int = typer.Option(500, help="At most this many series."),
    json: bool = JsonOpt,
) -> None:
    """List stored series, most recently written first."""
    emit(get_client().metrics.list(namespace=namespace, name=name, limit=limit), json=json, columns=["namespace", "name", "dimensions", "unit", "last_at"])


@app.command("query")
def query(
    namespace: str = typer.Argument(..., help="The namespace, e.g. kiln/endpoints."),
    name: str = typer.Argument(..., help="The metric name, e.g. Invocations."),
    dimension: list[str] = DimOpt,
    since: str = typer.Option("1h", help="Start: a duration ago (10m, 1d), ISO-8601 or Unix seconds."),
    until: str = typer.Option(None, help="End (default now), in the same forms."),
    period: int = typer.Option(60, help="Seconds per datapoint, a multiple of 60."),
    stat: list[str] = typer.Option(None, "--stat", "-s", help="A statistic: sum, avg, min, max, count, p50, p99... (repeat)."),
    json: bool = JsonOpt,
) -> None:
    """Statistics of a metric per period (all series matching the dimensions merged)."""
    result = get_client().metrics.query(namespace, name, dimensions=_dims(dimension), start=_time(since), end=_time(until), period=period, statistics=stat or None)
    if json:
        print_json(result)
        return
    rows: list[dict[str, Any]] = [{"timestamp": p.timestamp, **p.values} for p in result.datapoints]
    title = f"{namespace} {name} {result.dimensions or ''} period {period}s ({result.series} series)"
    emit(rows, json=False, columns=["timestamp", *result.statistics], title=title)


@app.command("collect")
def collect(json: bool = JsonOpt) -> None:
    """Collect endpoints' and jobs' metrics and endpoints' logs now (the server does it every minute)."""
    emit(get_client().metrics.collect(), json=json)
