"""Alarms: CloudWatch's evaluation (M of N, the four ways to treat missing data), state
history and audit, webhook actions to a real receiver on loopback (failures recorded, never
raised), who may name a webhook, and bad configurations refused."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import kiln
from kiln.core.audit import list_events
from kiln.core.config import load_settings
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied
from kiln.core.workspace import Workspace
from kiln.metrics._alarms import AlarmService, _decide
from kiln.metrics._models import Alarm

from .conftest import as_role

NS = "app/test"


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).got.append({"body": json.loads(body), "content_type": self.headers["content-type"]})
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"got": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _alarm(values_state: str = "OK", **kw: Any) -> Alarm:
    spec = {"name": "a", "namespace": NS, "metric": "m", "statistic": "Average", "period": 60, "evaluation_periods": 3, "datapoints_to_alarm": 2,
            "threshold": 10.0, "comparison": "GreaterThanThreshold", "treat_missing_data": "missing", "state": values_state,
            "state_updated_at": 0.0, "created_at": 0.0, "created_by": "t", "updated_at": 0.0, "updated_by": "t"}
    return Alarm(**{**spec, **kw})


@pytest.mark.parametrize(("values", "treat", "state", "expected"), [
    ([11, 12, 1], "missing", "OK", "ALARM"),       # 2 of 3 breach
    ([11, 1, 1], "missing", "ALARM", "OK"),        # 1 of 3: not enough
    ([None, None, None], "missing", "OK", "INSUFFICIENT_DATA"),
    ([None, None, None], "ignore", "ALARM", "ALARM"),  # state kept
    ([None, None, None], "breaching", "OK", "ALARM"),
    ([None, None, None], "notBreaching", "ALARM", "OK"),
    ([None, 11, None], "breaching", "OK", "ALARM"),
    ([None, 11, None], "notBreaching", "OK", "OK"),
    ([None, 11, 12], "missing", "OK", "ALARM"),     # present ones decide
    ([10, 10, 10], "missing", "OK", "OK"),          # equal is not greater
])
def test_evaluation_follows_cloudwatch(values: list, treat: str, state: str, expected: str) -> None:
    new, reason = _decide(_alarm(state, treat_missing_data=treat), values)
    assert new == expected, reason


@pytest.mark.parametrize(("comparison", "value", "breaches"), [
    ("GreaterThanOrEqualToThreshold", 10.0, True), ("GreaterThanThreshold", 10.0, False),
    ("LessThanThreshold", 9.9, True), ("LessThanOrEqualToThreshold", 10.0, True), ("LessThanThreshold", 10.0, False),
])
def test_each_comparison(comparison: str, value: float, breaches: bool) -> None:
    new, _ = _decide(_alarm(comparison=comparison, evaluation_periods=1, datapoints_to_alarm=1), [value])
    assert (new == "ALARM") is breaches


def test_an_alarm_over_put_metrics_changes_state_records_history_audits_and_posts_its_webhook(
    client: kiln.Client, mws: Workspace, receiver: tuple[str, Any]
) -> None:
    url, handler = receiver
    alarm = client.alarms.put("errors-high", namespace=NS, metric="errors", threshold=5, comparison="GreaterThanThreshold", statistic="Sum",
                              dimensions={"endpoint": "e1"}, alarm_actions=[url, "log"], ok_actions=[url],
                              evaluation_periods=2, datapoints_to_alarm=1)  # the current minute and the one before: no race with the clock
    assert alarm.state == "INSUFFICIENT_DATA"
    client.metrics.put(NS, [{"name": "errors", "value": 4, "dimensions": {"endpoint": "e1", "variant": "a"}},
                            {"name": "errors", "value": 3, "dimensions": {"endpoint": "e1", "variant": "b"}},
                            {"name": "errors", "value": 100, "dimensions": {"endpoint": "other"}}])
    [ev] = client.alarms.evaluate(["errors-high"])
    assert (ev.old_state, ev.new_state, ev.changed, sorted(ev.values, key=str)) == ("INSUFFICIENT_DATA", "ALARM", True, [7.0, None])
    [again] = client.alarms.evaluate()
    assert not again.changed  # no second change, no second POST
    assert len(handler.got) == 1
    body = handler.got[0]["body"]
    assert handler.got[0]["content_type"] == "application/json"
    assert (body["alarm"], body["old_state"], body["new_state"], body["threshold"]) == ("errors-high", "INSUFFICIENT_DATA", "ALARM", 5.0)
    assert "Threshold Crossed" in body["reason"]
    kinds = [(h.kind, h.new_state, h.data.get("ok")) for h in client.alarms.history("errors-high")]
    assert kinds == [("Action", "ALARM", True), ("Action", "ALARM", True), ("StateUpdate", "ALARM", None), ("ConfigurationUpdate", None, None)]
    with mws.db.read() as conn:
        events = list_events(conn, resource="alarms/errors-high")
    assert [e.action for e in events] == ["alarms.state_change", "alarms.put"]
    assert events[0].details["new_state"] == "ALARM"
    assert client.alarms.list(state="ALARM")[0].name == "errors-high"


def test_a_failing_webhook_is_recorded_and_never_stops_the_evaluator(client: kiln.Client, receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    handler.status = 500
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/nobody"
    client.alarms.put("a1", namespace=NS, metric="m", threshold=0, comparison="GreaterThanThreshold", alarm_actions=[closed, url, "log"],
                      evaluation_periods=2, datapoints_to_alarm=1)
    client.alarms.put("a2", namespace=NS, metric="m", threshold=0, comparison="LessThanThreshold", evaluation_periods=2, datapoints_to_alarm=1)
    client.metrics.put_value(NS, "m", 1.0)
    got = {e.alarm: e.new_state for e in client.alarms.evaluate()}
    assert got == {"a1": "ALARM", "a2": "OK"}
    actions = {h.data["action"]: h.data for h in client.alarms.history("a1") if h.kind == "Action"}
    assert actions[closed]["ok"] is False and "error" in actions[closed]
    assert actions[url] == {"action": url, "ok": False, "status": 500}
    assert actions["log"]["ok"] is True


def test_only_allowed_hosts_for_editors_and_never_link_local(tmp_path: Any) -> None:
    ws = Workspace(load_settings(home=str(tmp_path / "k"), alarm_webhook_hosts="hooks.example.com"))
    try:
        kw = {"namespace": NS, "metric": "m", "threshold": 1.0, "comparison": "GreaterThanThreshold"}
        editor, admin = AlarmService(ws, as_role("editor")), AlarmService(ws, as_role("admin"))
        with pytest.raises(PermissionDenied, match="alarm_webhook_hosts"):
            editor.put(name="x", alarm_actions=["http://127.0.0.1:9/x"], **kw)
        assert editor.put(name="x", alarm_actions=["https://hooks.example.com/a"], **kw).alarm_actions == ["https://hooks.example.com/a"]
        assert admin.put(name="y", ok_actions=["http://127.0.0.1:9/x"], **kw).ok_actions == ["http://127.0.0.1:9/x"]
        for bad in ("http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "file:///etc/passwd", "gopher://x", "http://", "log2"):
            with pytest.raises(InvalidArgument):
                admin.put(name="z", alarm_actions=[bad], **kw)
        with pytest.raises(PermissionDenied):
            AlarmService(ws, as_role("viewer")).put(name="v", **kw)
        with pytest.raises(PermissionDenied):
            AlarmService(ws, as_role("viewer")).evaluate()
        assert [a.name for a in AlarmService(ws, as_role("viewer")).list()] == ["x", "y"]
    finally:
        ws.close()


@pytest.mark.parametrize(("kw", "message"), [
    ({"comparison": "Bigger"}, "comparison"),
    ({"statistic": "p101"}, "statistic"),
    ({"period": 61}, "period"),
    ({"evaluation_periods": 0}, "evaluation_periods"),
    ({"evaluation_periods": 2, "datapoints_to_alarm": 3}, "datapoints_to_alarm"),
    ({"treat_missing_data": "zero"}, "treat_missing_data"),
    ({"threshold": float("nan")}, "threshold"),
    ({"alarm_actions": ["log"] * 6}, "at most 5"),
    ({"namespace": "bad ns"}, "namespace"),
])
def test_bad_alarms_are_refused_and_nothing_is_stored(client: kiln.Client, kw: dict, message: str) -> None:
    args = {"namespace": NS, "metric": "m", "threshold": 1.0, "comparison": "GreaterThanThreshold", **kw}
    with pytest.raises(InvalidArgument, match=message):
        client.alarms.put("bad", **args)
    assert client.alarms.list() == []


def test_replacing_keeps_state_deleting_removes_and_missing_alarms_are_not_found(client: kiln.Client) -> None:
    window = {"evaluation_periods": 2, "datapoints_to_alarm": 1}
    client.alarms.put("r", namespace=NS, metric="m", threshold=0, comparison="GreaterThanThreshold", **window)
    client.metrics.put_value(NS, "m", 1.0)
    client.alarms.evaluate(["r"])
    replaced = client.alarms.put("r", namespace=NS, metric="m", threshold=5, comparison="GreaterThanThreshold", description="higher", **window)
    assert (replaced.state, replaced.threshold, replaced.description) == ("ALARM", 5.0, "higher")
    assert client.alarms.evaluate(["r"])[0].new_state == "OK"
    assert client.alarms.delete("r").name == "r"
    for call in (lambda: client.alarms.get("r"), lambda: client.alarms.history("r"), lambda: client.alarms.delete("r"), lambda: client.alarms.evaluate(["r"])):
        with pytest.raises(NotFound, match="kiln alarms ls"):
            call()


def test_the_current_period_counts_so_nothing_waits(client: kiln.Client, mws: Workspace) -> None:
    alarm = client.alarms.put("now", namespace=NS, metric="m", threshold=0.5, comparison="GreaterThanThreshold", period=300, evaluation_periods=2)
    ts = (time.time() // 300) * 300 - 300 + 10  # 10 s into the last period, evaluated 5 s later: still in that period
    client.metrics.put_value(NS, "m", 1.0, timestamp=ts)
    got = AlarmService(mws, as_role("editor"))._evaluate(alarm, now=ts + 5)
    assert got.values == [None, 1.0]


def test_the_server_loop_collects_evaluates_and_keeps_retention(client: kiln.Client, mws: Workspace) -> None:
    from kiln.metrics._watcher import one_round
    from kiln.server.app import LIFESPAN_HOOKS

    assert "kiln.metrics._watcher:lifespan" in LIFESPAN_HOOKS
    client.alarms.put("loop", namespace=NS, metric="m", threshold=0, comparison="GreaterThanThreshold", evaluation_periods=2, datapoints_to_alarm=1)
    client.metrics.put_value(NS, "m", 2.0)
    one_round(mws)
    assert client.alarms.get("loop").state == "ALARM"
    from kiln.metrics._retention import enforce_retention

    assert enforce_retention(mws, now=time.time() + 31 * 86_400)["alarm_history"] == 2  # created, then the change
    assert client.alarms.history("loop") == [] and client.alarms.get("loop").state == "ALARM"
