"""kiln alarms: metric alarms: put, ls, describe, history, delete, evaluate."""

from __future__ import annotations

import typer

from kiln.cli._common import JsonOpt, emit, get_client, parse_pairs

app = typer.Typer(help="Alarms over metrics (CloudWatch): thresholds, states OK / ALARM / INSUFFICIENT_DATA, webhook and log actions.", no_args_is_help=True)

_COLS = ["name", "state", "namespace", "metric", "statistic", "comparison", "threshold", "state_updated_at"]
_OPS = {">": "GreaterThanThreshold", ">=": "GreaterThanOrEqualToThreshold", "<": "LessThanThreshold", "<=": "LessThanOrEqualToThreshold"}


@app.command("put")
def put(
    name: str = typer.Argument(..., help="The alarm's name."),
    namespace: str = typer.Option(..., help="The metric's namespace (kiln/endpoints, kiln/monitoring...)."),
    metric: str = typer.Option(..., help="The metric's name."),
    threshold: float = typer.Option(..., help="The threshold."),
    comparison: str = typer.Option(">", help="> >= < <= or CloudWatch's GreaterThanThreshold..."),
    statistic: str = typer.Option("Average", help="Average, Sum, SampleCount, Minimum, Maximum, p50, p99..."),
    period: int = typer.Option(60, help="Seconds per evaluated period (a multiple of 60)."),
    evaluation_periods: int = typer.Option(1, help="How many recent periods are evaluated."),
    datapoints_to_alarm: int = typer.Option(None, help="How many of them must breach (default: all)."),
    treat_missing_data: str = typer.Option("missing", help="missing, notBreaching, breaching or ignore."),
    dimension: list[str] = typer.Option(None, "--dimension", "-d", help="A dimension NAME=VALUE (repeat)."),
    alarm_action: list[str] = typer.Option(None, "--alarm-action", help="On ALARM: 'log' or a webhook URL (repeat)."),
    ok_action: list[str] = typer.Option(None, "--ok-action", help="On OK: 'log' or a webhook URL (repeat)."),
    insufficient_data_action: list[str] = typer.Option(None, "--insufficient-data-action", help="On INSUFFICIENT_DATA (repeat)."),
    description: str = typer.Option("", help="What the alarm means."),
    json: bool = JsonOpt,
) -> None:
    """Create or replace an alarm."""
    alarm = get_client().alarms.put(
        name, namespace=namespace, metric=metric, threshold=threshold, comparison=_OPS.get(comparison, comparison), statistic=statistic,
        period=period, evaluation_periods=evaluation_periods, datapoints_to_alarm=datapoints_to_alarm, treat_missing_data=treat_missing_data,
        dimensions=parse_pairs(dimension, option="--dimension", example="endpoint=churn", shape="NAME=VALUE"),
        alarm_actions=alarm_action, ok_actions=ok_action, insufficient_data_actions=insufficient_data_action, description=description,
    )
    emit(alarm, json=json)


@app.command("ls")
def ls(
    state: str = typer.Option(None, help="Only alarms in this state (OK, ALARM, INSUFFICIENT_DATA)."),
    namespace: str = typer.Option(None, help="Only alarms over this namespace."),
    json: bool = JsonOpt,
) -> None:
    """List alarms and their states."""
    emit(get_client().alarms.list(state=state, namespace=namespace), json=json, columns=_COLS)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="The alarm's name."), json: bool = JsonOpt) -> None:
    """Show an alarm's configuration and state."""
    emit(get_client().alarms.get(name), json=json)


@app.command("history")
def history(name: str = typer.Argument(..., help="The alarm's name."), limit: int = typer.Option(100, help="At most this many entries."), json: bool = JsonOpt) -> None:
    """An alarm's history, newest first: configuration updates, state changes, actions."""
    emit(get_client().alarms.history(name, limit=limit), json=json, columns=["time", "kind", "old_state", "new_state", "summary", "data"])


@app.command("delete")
def delete(name: str = typer.Argument(..., help="The alarm's name."), json: bool = JsonOpt) -> None:
    """Delete an alarm and its history."""
    emit(get_client().alarms.delete(name), json=json, columns=_COLS)


@app.command("evaluate")
def evaluate(names: list[str] = typer.Argument(None, help="Alarms to evaluate (default: all)."), json: bool = JsonOpt) -> None:
    """Evaluate alarms now (the server does it every minute); changed states run their actions."""
    emit(get_client().alarms.evaluate(names or None), json=json, columns=["alarm", "old_state", "new_state", "changed", "reason"])
