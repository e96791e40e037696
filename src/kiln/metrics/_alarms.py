"""Metric alarms with CloudWatch's semantics: a statistic of a metric per period, compared with
a threshold over the last ``evaluation_periods`` periods; ``datapoints_to_alarm`` of them
breaching puts the alarm in ALARM. Missing periods count as ``treat_missing_data`` says
(missing, notBreaching, breaching, ignore). Every state change is recorded in the alarm's
history and audited; its actions (a webhook POST, a log line) run after the change commits,
and their outcome is recorded too, so a failing webhook never stops the evaluator.

Who may name a webhook: DESIGN.md §8 keeps the server from being made to call what it
should not (SSRF). An editor may name only hosts an admin listed in
``alarm_webhook_hosts``; an admin may name any http(s) host. Link-local addresses (cloud
metadata services) are refused for everyone, when the alarm is put and again, after DNS,
when the webhook is sent; redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.metrics import _tables as t
from kiln.metrics._base import check_dimensions, check_metric_name, check_namespace, check_period, normalise_statistic
from kiln.metrics._models import Alarm, AlarmEvaluation, AlarmHistoryItem

__all__ = ["AlarmService", "COMPARISONS", "STATES", "TREAT_MISSING"]

log = logging.getLogger("kiln.alarms")

STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
COMPARISONS = {
    "GreaterThanThreshold": (">", lambda v, th: v > th),
    "GreaterThanOrEqualToThreshold": (">=", lambda v, th: v >= th),
    "LessThanThreshold": ("<", lambda v, th: v < th),
    "LessThanOrEqualToThreshold": ("<=", lambda v, th: v <= th),
}
TREAT_MISSING = ("missing", "notBreaching", "breaching", "ignore")
MAX_ACTIONS = 5
_SPEC_KEYS = (
    "description", "namespace", "metric", "dimensions", "statistic", "period", "evaluation_periods", "datapoints_to_alarm",
    "threshold", "comparison", "treat_missing_data", "alarm_actions", "ok_actions", "insufficient_data_actions", "actions_enabled",
)
SYSTEM = Context(actor="system:alarms", role="admin", source="server", request_id="alarms-evaluator")


def _alarm(row: Any) -> Alarm:
    spec = orjson.loads(row.spec)
    return Alarm(
        name=row.name, **spec, state=row.state, state_reason=row.state_reason, state_updated_at=row.state_updated_at,
        evaluated_at=row.evaluated_at, created_at=row.created_at, created_by=row.created_by, updated_at=row.updated_at, updated_by=row.updated_by,
    )


def _blocked_ip(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_link_local)


def check_action(action: str, ctx: Context, allowed_hosts: set[str]) -> str:
    """An action is ``log`` or an http(s) webhook URL that this caller may name."""
    if action == "log":
        return action
    if not isinstance(action, str) or len(action) > 2048:
        raise InvalidArgument("an alarm action is 'log' or an http(s) URL of at most 2048 characters")
    try:
        parts = urlsplit(action)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        raise InvalidArgument(f"alarm action {action[:100]!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in action):
        raise InvalidArgument(f"alarm action {action[:100]!r}: use 'log' or an http:// or https:// URL")
    if _blocked_ip(host) or host in ("metadata.google.internal", "metadata"):
        raise InvalidArgument(f"alarm action {action[:100]!r}: link-local and metadata addresses are refused")
    if ctx.role != "admin" and host not in allowed_hosts:
        raise PermissionDenied(
            f"webhook host {host!r} is not in alarm_webhook_hosts; an admin may add it (KILN_ALARM_WEBHOOK_HOSTS) or put the alarm"
        )
    return action


class AlarmService:
    """Put, describe, list, delete and evaluate metric alarms; read their history."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- configuration ----------------------------------------------------------------------

    def put(
        self,
        *,
        name: str,
        namespace: str,
        metric: str,
        threshold: float,
        comparison: str,
        statistic: str = "Average",
        period: int = 60,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        treat_missing_data: str = "missing",
        dimensions: dict[str, str] | None = None,
        alarm_actions: list[str] | None = None,
        ok_actions: list[str] | None = None,
        insufficient_data_actions: list[str] | None = None,
        actions_enabled: bool = True,
        description: str = "",
    ) -> Alarm:
        """Create or replace an alarm (CloudWatch's PutMetricAlarm).

        A new alarm starts in INSUFFICIENT_DATA; a replaced one keeps its state until its
        next evaluation. Actions are ``log`` or webhook URLs (POSTed a JSON body on a change
        to that state).

        Raises:
            InvalidArgument: a bad name, metric, statistic, comparison, period or action.
            PermissionDenied: a viewer, or an editor naming a webhook host not allowed.
        """
        check_name(name, kind="alarm")
        self.ctx.require("editor")
        spec = self._check(
            namespace=namespace, metric=metric, threshold=threshold, comparison=comparison, statistic=statistic, period=period,
            evaluation_periods=evaluation_periods, datapoints_to_alarm=datapoints_to_alarm, treat_missing_data=treat_missing_data,
            dimensions=dimensions, alarm_actions=alarm_actions, ok_actions=ok_actions, insufficient_data_actions=insufficient_data_actions,
            actions_enabled=actions_enabled, description=description,
        )
        now = time.time()
        with self.ws.mutation(self.ctx, action="alarms.put", resource=f"alarms/{name}") as (conn, details):
            row = conn.execute(sa.select(t.alarms.c.name).where(t.alarms.c.name == name)).first()
            text = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode()
            if row is None:
                conn.execute(t.alarms.insert().values(
                    name=name, spec=text, state="INSUFFICIENT_DATA", state_reason="Unchecked: initial alarm creation", state_updated_at=now,
                    created_at=now, created_by=self.ctx.actor, updated_at=now, updated_by=self.ctx.actor,
                ))
            else:
                conn.execute(t.alarms.update().where(t.alarms.c.name == name).values(spec=text, updated_at=now, updated_by=self.ctx.actor))
            details["created"] = row is None
            _history(conn, name, now, "ConfigurationUpdate", "alarm created" if row is None else "alarm updated", data=spec)
        return self.get(name=name)

    def _check(self, **spec: Any) -> dict[str, Any]:
        check_namespace(spec["namespace"])
        check_metric_name(spec["metric"])
        spec["dimensions"] = check_dimensions(spec["dimensions"])
        spec["statistic"] = normalise_statistic(spec["statistic"])
        check_period(spec["period"])
        if spec["comparison"] not in COMPARISONS:
            raise InvalidArgument(f"unknown comparison {str(spec['comparison'])[:60]!r}: use one of {', '.join(COMPARISONS)}")
        if spec["treat_missing_data"] not in TREAT_MISSING:
            raise InvalidArgument(f"unknown treat_missing_data {str(spec['treat_missing_data'])[:60]!r}: use one of {', '.join(TREAT_MISSING)}")
        m = spec["evaluation_periods"]
        if not isinstance(m, int) or isinstance(m, bool) or not 1 <= m <= 1440 or m * spec["period"] > 7 * 86_400:
            raise InvalidArgument("evaluation_periods must be 1 to 1440, and evaluation_periods × period at most 7 days")
        n = m if spec["datapoints_to_alarm"] is None else spec["datapoints_to_alarm"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= m:
            raise InvalidArgument(f"datapoints_to_alarm must be between 1 and evaluation_periods ({m})")
        spec["datapoints_to_alarm"] = n
        th = spec["threshold"]
        if not isinstance(th, int | float) or isinstance(th, bool) or not math.isfinite(th):
            raise InvalidArgument("threshold must be a finite number")
        spec["threshold"] = float(th)
        if not isinstance(spec["description"], str) or len(spec["description"]) > 1024:
            raise InvalidArgument("description must be at most 1024 characters")
        allowed = {h.strip().lower() for h in self.ws.settings.alarm_webhook_hosts.split(",") if h.strip()}
        for key in ("alarm_actions", "ok_actions", "insufficient_data_actions"):
            actions = list(spec[key] or [])
            if len(actions) > MAX_ACTIONS:
                raise InvalidArgument(f"{key}: at most {MAX_ACTIONS} actions")
            spec[key] = [check_action(a, self.ctx, allowed) for a in actions]
        spec["actions_enabled"] = bool(spec["actions_enabled"])
        return {k: spec[k] for k in _SPEC_KEYS}

    def get(self, *, name: str) -> Alarm:
        """Describe an alarm: its configuration and state.

        Raises:
            NotFound: no such alarm.
        """
        check_name(name, kind="alarm")
        self.ctx.require("viewer")
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(t.alarms).where(t.alarms.c.name == name)).first()
        if row is None:
            raise NotFound(f"alarm {name!r} does not exist; `kiln alarms ls` lists alarms")
        return _alarm(row)

    def list(self, *, state: str | None = None, namespace: str | None = None) -> list[Alarm]:
        """Every alarm by name, optionally only those in one state or over one namespace."""
        self.ctx.require("viewer")
        if state is not None and state not in STATES:
            raise InvalidArgument(f"unknown alarm state {str(state)[:60]!r}; one of {', '.join(STATES)}")
        if namespace is not None:
            check_namespace(namespace)
        q = sa.select(t.alarms).order_by(t.alarms.c.name)
        if state is not None:
            q = q.where(t.alarms.c.state == state)
        with self.ws.db.read() as conn:
            alarms = [_alarm(r) for r in conn.execute(q)]
        return [a for a in alarms if namespace is None or a.namespace == namespace]

    def history(self, *, name: str, limit: int = 100) -> list[AlarmHistoryItem]:
        """The alarm's history, newest first: configuration updates, state changes and actions."""
        self.get(name=name)
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        h = t.alarm_history
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(h).where(h.c.alarm == name).order_by(h.c.id.desc()).limit(limit)).all()
        return [AlarmHistoryItem(alarm=r.alarm, time=r.at, kind=r.kind, summary=r.summary, old_state=r.old_state, new_state=r.new_state, data=orjson.loads(r.data)) for r in rows]

    def delete(self, *, name: str) -> Alarm:
        """Delete an alarm and its history; returns it as it was.

        Raises:
            NotFound: no such alarm.
        """
        check_name(name, kind="alarm")
        with self.ws.mutation(self.ctx, action="alarms.delete", resource=f"alarms/{name}") as (conn, details):
            row = conn.execute(sa.select(t.alarms).where(t.alarms.c.name == name)).first()
            if row is None:
                raise NotFound(f"alarm {name!r} does not exist; `kiln alarms ls` lists alarms")
            details["state"] = row.state
            conn.execute(t.alarm_history.delete().where(t.alarm_history.c.alarm == name))
            conn.execute(t.alarms.delete().where(t.alarms.c.name == name))
        return _alarm(row)

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, *, names: list[str] | None = None) -> list[AlarmEvaluation]:
        """Evaluate alarms now (all, or those named), as the server does every minute: a
        changed state is recorded and audited, then its actions run.

        Raises:
            NotFound: a named alarm does not exist.
        """
        self.ctx.require("editor")
        if names is not None:
            if len(names) > 1000:
                raise InvalidArgument("name at most 1000 alarms")
            for n in names:
                check_name(n, kind="alarm")
        with self.ws.db.read() as conn:
            q = sa.select(t.alarms).order_by(t.alarms.c.name)
            if names is not None:
                q = q.where(t.alarms.c.name.in_(names))
            rows = conn.execute(q).all()
        if names is not None:
            missing = sorted(set(names) - {r.name for r in rows})
            if missing:
                raise NotFound(f"alarm {missing[0]!r} does not exist; `kiln alarms ls` lists alarms")
        return [self._evaluate(_alarm(r)) for r in rows]

    def _evaluate(self, alarm: Alarm, *, now: float | None = None) -> AlarmEvaluation:
        from kiln.metrics._service import MetricsService

        now = time.time() if now is None else now
        period, m = alarm.period, alarm.evaluation_periods
        end = (int(now // period) + 1) * period  # the current period counts: no waiting for it to close
        start = end - m * period
        stats = MetricsService(self.ws, SYSTEM).query(
            namespace=alarm.namespace, name=alarm.metric, dimensions=alarm.dimensions, start=start, end=end, period=period, statistics=[alarm.statistic],
        )
        by_start = {int(p.timestamp): p.values.get(alarm.statistic) for p in stats.datapoints}
        values = [by_start.get(start + i * period) for i in range(m)]
        new_state, reason = _decide(alarm, values)
        old = alarm.state
        changed = new_state != old
        if changed:
            changed = self._change(alarm, old, new_state, reason, values, now)
        else:
            with self.ws.db.write() as conn:
                conn.execute(t.alarms.update().where(t.alarms.c.name == alarm.name).values(evaluated_at=now))
        return AlarmEvaluation(alarm=alarm.name, old_state=old, new_state=new_state, changed=changed, reason=reason, values=values)

    def _change(self, alarm: Alarm, old: str, new: str, reason: str, values: list[float | None], now: float) -> bool:
        data = {"values": values, "threshold": alarm.threshold, "statistic": alarm.statistic, "period": alarm.period}
        with self.ws.mutation(self.ctx, action="alarms.state_change", resource=f"alarms/{alarm.name}", details={"old_state": old, "new_state": new}) as (conn, _):
            # Compare and set: of two evaluators seeing the same change, one records it and acts.
            done = conn.execute(t.alarms.update().where(t.alarms.c.name == alarm.name, t.alarms.c.state == old).values(
                state=new, state_reason=reason, state_updated_at=now, evaluated_at=now,
            )).rowcount
            if done:
                _history(conn, alarm.name, now, "StateUpdate", f"Alarm updated from {old} to {new}", old=old, new=new, data={**data, "reason": reason})
        if not done:
            return False
        if alarm.actions_enabled:
            actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions, "INSUFFICIENT_DATA": alarm.insufficient_data_actions}[new]
            for action in actions:
                self._act(alarm, action, old, new, reason, values, now)
        return True

    def _act(self, alarm: Alarm, action: str, old: str, new: str, reason: str, values: list[float | None], now: float) -> None:
        body = {
            "alarm": alarm.name, "old_state": old, "new_state": new, "reason": reason, "at": now, "namespace": alarm.namespace,
            "metric": alarm.metric, "dimensions": alarm.dimensions, "statistic": alarm.statistic, "threshold": alarm.threshold,
            "comparison": alarm.comparison, "values": values, "description": alarm.description,
        }
        if action == "log":
            log.warning("alarm %s: %s -> %s: %s", alarm.name, old, new, reason)
            outcome: dict[str, Any] = {"action": "log", "ok": True}
        else:
            outcome = {"action": action, **_post(action, body, timeout=self.ws.settings.alarm_webhook_timeout_s)}
        summary = f"action {'log' if action == 'log' else 'webhook'} {'succeeded' if outcome['ok'] else 'failed'}"
        try:
            with self.ws.db.write() as conn:
                _history(conn, alarm.name, time.time(), "Action", summary, old=old, new=new, data=outcome)
        except Exception:  # noqa: BLE001 - recording an action's outcome must not stop the evaluator
            log.warning("alarm %s: could not record the outcome of %s", alarm.name, action, exc_info=True)


def _decide(alarm: Alarm, values: list[float | None]) -> tuple[str, str]:
    symbol, breaches = COMPARISONS[alarm.comparison]
    th, n, m = alarm.threshold, alarm.datapoints_to_alarm, alarm.evaluation_periods
    treat = alarm.treat_missing_data
    present = [v for v in values if v is not None]
    if not present and treat in ("missing", "ignore"):
        if treat == "ignore":
            return alarm.state, f"no datapoints in the last {m} period(s); state kept (treat_missing_data=ignore)"
        return "INSUFFICIENT_DATA", f"Insufficient Data: no datapoints in the last {m} period(s) of {alarm.period} s"
    if treat == "breaching":
        flags = [v is None or breaches(v, th) for v in values]
    elif treat == "notBreaching":
        flags = [v is not None and breaches(v, th) for v in values]
    else:
        flags = [breaches(v, th) for v in present]
    shown = ", ".join("missing" if v is None else f"{v:g}" for v in values)
    nb = sum(flags)
    if nb >= n:
        return "ALARM", f"Threshold Crossed: {nb} of the last {m} datapoints [{shown}] were {symbol} the threshold ({th:g}) (minimum {n} to alarm)"
    return "OK", f"Threshold not crossed: {nb} of the last {m} datapoints [{shown}] were {symbol} the threshold ({th:g}) (minimum {n} to alarm)"


def _history(conn: Any, alarm: str, at: float, kind: str, summary: str, *, old: str | None = None, new: str | None = None, data: Any = None) -> None:
    conn.execute(t.alarm_history.insert().values(
        alarm=alarm, at=at, kind=kind, summary=summary, old_state=old, new_state=new, data=orjson.dumps(data or {}, default=str).decode(),
    ))


def _post(url: str, body: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """POST the JSON body; never raises: the outcome says what happened."""
    import httpx

    host = urlsplit(url).hostname or ""
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        return {"ok": False, "error": f"cannot resolve {host!r}: {exc}"}
    if any(_blocked_ip(a.split("%")[0]) for a in addrs):
        return {"ok": False, "error": f"{host!r} resolves to a link-local address; refused"}
    try:
        r = httpx.post(url, content=orjson.dumps(body), headers={"content-type": "application/json", "user-agent": "kiln-alarms"},
                       timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {"ok": 200 <= r.status_code < 300, "status": r.status_code}


