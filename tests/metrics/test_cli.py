"""kiln metrics / alarms / logs: what works prints, what is wrong says what to do with no traceback."""

from __future__ import annotations

import json
import sys

import kiln

PY = sys.executable


def test_metrics_and_alarms_from_the_command_line(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("metrics", "put", "app/cli", "queue_depth", "7", "-d", "queue=jobs", "--unit", "Count").code == 0
    assert cli("metrics", "put", "app/cli", "queue_depth", "9", "-d", "queue=jobs").code == 0
    listed = cli("metrics", "ls", "--json")
    assert [s["dimensions"] for s in json.loads(listed.out)] == [{"queue": "jobs"}]
    q = cli("metrics", "query", "app/cli", "queue_depth", "-d", "queue=jobs", "--since", "10m", "-s", "max", "-s", "count", "--json")
    assert q.code == 0, q.err
    points = json.loads(q.out)["datapoints"]
    assert sum(p["values"]["SampleCount"] for p in points) == 2 and max(p["values"]["Maximum"] for p in points) == 9.0
    table = cli("metrics", "query", "app/cli", "queue_depth", "-s", "avg", "-s", "count", "--period", "3600", "--since", "2h")
    assert "Average" in table.out and "8.0" in table.out and "2.0" in table.out
    put = cli("alarms", "put", "deep", "--namespace", "app/cli", "--metric", "queue_depth", "--threshold", "8", "--comparison", ">=",
              "--statistic", "max", "--alarm-action", "log", "-d", "queue=jobs", "--evaluation-periods", "2", "--datapoints-to-alarm", "1")
    assert put.code == 0, put.err
    ev = cli("alarms", "evaluate", "--json")
    assert [(e["alarm"], e["new_state"]) for e in json.loads(ev.out)] == [("deep", "ALARM")]
    assert "ALARM" in cli("alarms", "ls").out
    assert json.loads(cli("alarms", "describe", "deep", "--json").out)["comparison"] == "GreaterThanOrEqualToThreshold"
    history = json.loads(cli("alarms", "history", "deep", "--json").out)
    assert [h["kind"] for h in history] == ["Action", "StateUpdate", "ConfigurationUpdate"]
    assert cli("alarms", "delete", "deep").code == 0
    assert cli("alarms", "ls", "--json").out.strip() == "[]"


def test_bad_input_is_one_line_with_what_to_do(cli) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (("metrics", "put", "app/cli", "x", "1", "-d", "novalue"), "NAME=VALUE"),
        (("metrics", "query", "app/cli", "x", "--period", "90"), "multiple of 60"),
        (("metrics", "query", "app/cli", "x", "--since", "someday"), "duration"),
        (("alarms", "put", "a", "--namespace", "n", "--metric", "m", "--threshold", "1", "--comparison", "~"), "comparison"),
        (("alarms", "describe", "ghost"), "kiln alarms ls"),
        (("logs", "pod/x"), "job/NAME or endpoint/NAME"),
        (("logs", "job/ghost"), "ghost"),
        (("logs", "endpoint/ghost"), "kiln endpoints ls"),
        (("logs", "job/x", "--grep", "(a+)+"), "exponential"),
    ]
    for args, message in cases:
        got = cli(*args)
        assert got.code != 0, args
        assert message in got.err and "Traceback" not in got.err + got.out, (args, got.err)


def test_logs_of_a_job_with_grep_and_follow(cli, settings) -> None:  # type: ignore[no-untyped-def]
    with kiln.Client(settings=settings) as client:
        assert client.processing.run(command=[PY, "-c", "print('alpha'); print('beta')"], name="p1", logs=False).state == "Completed"
    assert cli("logs", "job/p1", "--grep", "^be").out.splitlines() == ["beta"]
    followed = cli("logs", "job/p1", "--follow", "--since", "1h")
    assert followed.code == 0 and "alpha" in followed.out.splitlines()
    page = json.loads(cli("logs", "job/p1", "--json", "--limit", "1").out)
    assert len(page["lines"]) == 1 and page["done"] is False
