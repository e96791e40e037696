"""The metric store: exact count/sum/min/max, percentiles within the sketch's stated 1%,
hourly roll-ups that agree with their minutes, dimension matching, bad input refused whole,
roles, retention, and concurrent writers of one new series losing nothing."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

import kiln
from kiln.core.errors import InvalidArgument, PermissionDenied
from kiln.core.workspace import Workspace
from kiln.metrics import _tables as t
from kiln.metrics._retention import enforce_retention
from kiln.metrics._service import MetricsService
from kiln.metrics._sketch import ACCURACY, Sketch

from .conftest import as_role

NS = "app/test"


def _minute(now: float | None = None) -> float:
    return (int((now or time.time()) // 3600) * 3600) - 3600  # the start of the previous hour: complete, well inside retention


@pytest.mark.parametrize("q", [0.01, 0.5, 0.9, 0.99, 0.999])
def test_the_sketch_is_within_its_stated_accuracy_and_merges_exactly(q: float) -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.lognormal(3, 1.5, 5000), -rng.lognormal(0, 1, 500), np.zeros(50)])
    whole = Sketch.of((float(v), 1.0) for v in values)
    halves = Sketch.of((float(v), 1.0) for v in values[::2]).merge(Sketch.of((float(v), 1.0) for v in values[1::2]))
    truth = float(np.percentile(values, q * 100, method="inverted_cdf"))
    for sk in (whole, halves):
        got = sk.quantile(q)
        assert got is not None
        assert abs(got - truth) <= ACCURACY * abs(truth) + 1e-12
    assert Sketch.from_json(whole.to_json()).quantile(q) == whole.quantile(q)


def test_a_query_answers_exact_basic_statistics_and_close_percentiles(client: kiln.Client) -> None:
    base = _minute()
    rng = np.random.default_rng(1)
    per_minute = {m: rng.gamma(2.0, 30.0, 100) for m in range(5)}
    for m, vals in per_minute.items():
        client.metrics.put(NS, [{"name": "latency", "values": vals[:50].tolist(), "dimensions": {"host": "a"}, "timestamp": base + m * 60 + 5},
                                {"name": "latency", "values": vals[50:].tolist(), "dimensions": {"host": "b"}, "timestamp": base + m * 60 + 30}])
    got = client.metrics.query(NS, "latency", start=base, end=base + 300, period=60, statistics=["count", "sum", "avg", "min", "max", "p50", "p99"])
    assert got.resolution == 60 and got.series == 2 and len(got.datapoints) == 5
    for m, point in enumerate(got.datapoints):
        vals = per_minute[m]
        assert point.timestamp == base + m * 60
        assert point.values["SampleCount"] == 100
        assert point.values["Sum"] == pytest.approx(vals.sum())
        assert point.values["Average"] == pytest.approx(vals.mean())
        assert point.values["Minimum"] == pytest.approx(vals.min()) and point.values["Maximum"] == pytest.approx(vals.max())
        for p in (50, 99):
            truth = np.percentile(vals, p, method="inverted_cdf")
            assert abs(point.values[f"p{p}"] - truth) <= ACCURACY * truth
    # five minutes as one period, and one series by its dimension
    five = client.metrics.query(NS, "latency", start=base, end=base + 300, period=300, statistics=["count", "p99"])
    everything = np.concatenate(list(per_minute.values()))
    assert [p.values["SampleCount"] for p in five.datapoints] == [500]
    assert abs(five.datapoints[0].values["p99"] - np.percentile(everything, 99, method="inverted_cdf")) <= ACCURACY * everything.max()
    only_a = client.metrics.query(NS, "latency", dimensions={"host": "a"}, start=base, end=base + 300, period=300, statistics=["count"])
    assert only_a.series == 1 and only_a.datapoints[0].values["SampleCount"] == 250
    assert client.metrics.query(NS, "latency", dimensions={"host": "zzz"}, start=base, end=base + 300).datapoints == []


def test_the_hourly_roll_up_agrees_with_its_minutes(client: kiln.Client) -> None:
    base = _minute()
    for m in range(0, 60, 7):
        client.metrics.put(NS, [{"name": "n", "values": [m, m + 0.5], "counts": [2, 1], "timestamp": base + m * 60}])
    minutes = client.metrics.query(NS, "n", start=base, end=base + 3600, period=60, statistics=["count", "sum", "min", "max"])
    hour = client.metrics.query(NS, "n", start=base, end=base + 3600, period=3600, statistics=["count", "sum", "min", "max"])
    assert hour.resolution == 3600 and len(hour.datapoints) == 1
    h = hour.datapoints[0].values
    assert h["SampleCount"] == sum(p.values["SampleCount"] for p in minutes.datapoints) == 27
    assert h["Sum"] == pytest.approx(sum(p.values["Sum"] for p in minutes.datapoints))
    assert (h["Minimum"], h["Maximum"]) == (0.0, 56.5)


@pytest.mark.parametrize("bad", [
    {"name": "x", "value": float("nan")},
    {"name": "x", "value": float("inf")},
    {"name": "x"},
    {"name": "x", "value": 1, "values": [1]},
    {"name": "x", "values": [1, 2], "counts": [1]},
    {"name": "x", "values": [1], "counts": [0]},
    {"name": "x", "values": list(range(151))},
    {"name": "../x", "value": 1},
    {"name": "x", "value": 1, "dimensions": {"a b": "c"}},
    {"name": "x", "value": 1, "dimensions": {"a": ""}},
    {"name": "x", "value": 1, "timestamp": time.time() + 86_400},
    {"name": "x", "value": 1, "timestamp": 1.0},
    {"name": "x", "value": "many"},
])
def test_a_bad_datum_refuses_the_whole_put_and_stores_nothing(client: kiln.Client, mws: Workspace, bad: dict) -> None:
    with pytest.raises(InvalidArgument):
        MetricsService(mws, as_role("editor")).put(namespace=NS, data=[{"name": "good", "value": 1.0}, bad])
    with mws.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.points)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(t.series)).scalar() == 0


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.metrics.put("", [{"name": "x", "value": 1}]), "namespace"),
    (lambda c: c.metrics.put(NS, []), "1 to 1000"),
    (lambda c: c.metrics.query(NS, "x", statistics=["p100"]), "statistic"),
    (lambda c: c.metrics.query(NS, "x", statistics=["median"]), "statistic"),
    (lambda c: c.metrics.query(NS, "x", period=90), "multiple of 60"),
    (lambda c: c.metrics.query(NS, "x", start=10.0, end=5.0), "before"),
    (lambda c: c.metrics.query(NS, "x", start=0.0, end=time.time(), period=60), "periods"),
])
def test_bad_queries_say_what_to_do(client: kiln.Client, call, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call(client)


def test_roles_viewers_read_editors_write_and_only_admins_write_platform_namespaces(mws: Workspace) -> None:
    datum = [{"name": "x", "value": 1.0}]
    with pytest.raises(PermissionDenied):
        MetricsService(mws, as_role("viewer")).put(namespace=NS, data=datum)
    with pytest.raises(PermissionDenied):
        MetricsService(mws, as_role("editor")).put(namespace="kiln/endpoints", data=datum)
    assert MetricsService(mws, as_role("editor")).put(namespace=NS, data=datum).accepted == 1
    assert MetricsService(mws, as_role("admin")).put(namespace="kiln/monitoring", data=datum).accepted == 1
    listed = MetricsService(mws, as_role("viewer")).list()
    assert {(s.namespace, s.name) for s in listed} == {(NS, "x"), ("kiln/monitoring", "x")}


def test_retention_drops_old_minutes_and_keeps_the_hours_that_answer_long_ranges(client: kiln.Client, mws: Workspace) -> None:
    now = time.time()
    old = int((now - 20 * 86_400) // 3600) * 3600
    client.metrics.put(NS, [{"name": "old", "value": 4.0, "timestamp": old + 60}, {"name": "old", "value": 6.0, "timestamp": old + 120}])
    removed = enforce_retention(mws, now=now)
    assert removed["minute_rows"] == 2 and removed["hour_rows"] == 0
    with pytest.raises(InvalidArgument, match="multiple of 3600"):
        client.metrics.query(NS, "old", start=old, end=old + 3600, period=60)
    hour = client.metrics.query(NS, "old", start=old, end=old + 3600, period=3600, statistics=["avg", "count"])
    assert hour.datapoints[0].values == {"Average": 5.0, "SampleCount": 2.0}
    assert enforce_retention(mws, now=now + 456 * 86_400)["series"] == 1
    assert client.metrics.list() == []


def test_concurrent_writers_of_one_new_series_lose_nothing(mws: Workspace) -> None:
    svc = MetricsService(mws, as_role("editor"))
    ts = _minute() + 10
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            for _ in range(5):
                svc.put(namespace=NS, data=[{"name": "race", "value": float(i), "dimensions": {"k": "v"}, "timestamp": ts}])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    got = svc.query(namespace=NS, name="race", start=ts - 10, end=ts + 50, statistics=["count", "sum"])
    assert got.datapoints[0].values == {"SampleCount": 20.0, "Sum": 5.0 * (0 + 1 + 2 + 3)}
    assert math.isclose(got.datapoints[0].timestamp, ts - 10)


def test_a_killed_writer_loses_no_acknowledged_put_and_leaves_no_half_put(mws: Workspace) -> None:
    import os
    import signal
    import subprocess
    import sys

    ts = _minute() + 5
    script = (
        "import sys, kiln\n"
        "from kiln.core.config import load_settings\n"
        f"c = kiln.Client(settings=load_settings(home={str(mws.settings.home)!r}, database_url={mws.settings.database_url!r}))\n"
        "for i in range(100000):\n"
        f"    c.metrics.put('app/kill', [{{'name': 'k', 'values': [1.0] * 10, 'timestamp': {ts}}}, {{'name': 'k2', 'value': 1.0, 'timestamp': {ts}}}])\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ})
    acked = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        acked = int(line) + 1
        if acked >= 15:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    svc = MetricsService(mws, as_role("viewer"))
    k = svc.query(namespace="app/kill", name="k", start=ts - 5, end=ts + 55, statistics=["count"]).datapoints[0].values["SampleCount"]
    k2 = svc.query(namespace="app/kill", name="k2", start=ts - 5, end=ts + 55, statistics=["count"]).datapoints[0].values["SampleCount"]
    assert k >= 10 * acked and k % 10 == 0 and k == 10 * k2  # every acknowledged put, and whole puts only
    hour = svc.query(namespace="app/kill", name="k", start=ts - 5 - 3595, end=ts + 3600, period=3600, statistics=["count"])
    assert sum(p.values["SampleCount"] for p in hour.datapoints) == k  # the roll-up never lags its minutes


def test_a_query_merging_too_many_series_asks_for_more_dimensions(client: kiln.Client) -> None:
    data = [{"name": "wide", "value": 1.0, "dimensions": {"user": f"u{i}"}} for i in range(1001)]
    client.metrics.put(NS, data[:1000])
    client.metrics.put(NS, data[1000:])
    with pytest.raises(InvalidArgument, match="name more dimensions"):
        client.metrics.query(NS, "wide")
    assert client.metrics.query(NS, "wide", dimensions={"user": "u7"}, statistics=["count"]).datapoints[0].values == {"SampleCount": 1.0}


def test_stages_put_their_results_as_kiln_whatever_role_started_them(mws: Workspace) -> None:
    from kiln.metrics import MetricDatum, put_platform_metrics

    ts = _minute() + 1
    got = put_platform_metrics(mws, "kiln/monitoring", [MetricDatum(name="feature_baseline_drift", value=0.4, dimensions={"monitor": "m1", "feature": "age"}, timestamp=ts),
                                                         {"name": "violations", "value": 2.0, "dimensions": {"monitor": "m1"}, "timestamp": ts}])
    assert (got.accepted, got.series) == (2, 2)
    q = MetricsService(mws, as_role("viewer")).query(namespace="kiln/monitoring", name="feature_baseline_drift", dimensions={"monitor": "m1"}, start=ts - 1, end=ts + 59, statistics=["max"])
    assert q.datapoints[0].values == {"Maximum": 0.4}
    with pytest.raises(InvalidArgument):
        put_platform_metrics(mws, "kiln/monitoring", [{"name": "x", "value": float("nan")}])
