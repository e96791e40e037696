"""Buffered metrics and params survive a failed write (a remote error) and reach the run later."""

from __future__ import annotations

import pytest

from kiln.core.errors import Unavailable
from kiln.sdk.run import Run


def _fail_once(monkeypatch, run, method):
    real = getattr(run._runs, method)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Unavailable("server went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(run._runs, method, flaky)


def test_params_survive_a_failed_flush(client, monkeypatch):
    with Run("durable", client=client) as run:
        run.log_parameter("lr", 0.1)
        run.log_metric("m", 1.0)
        _fail_once(monkeypatch, run, "log_batch")
        with pytest.raises(Unavailable):
            run.flush()
        run.flush()
    got = client.runs.get(run.id)
    assert got.params == {"lr": "0.1"}
    assert got.metrics == {"m": 1.0}


def test_points_survive_a_failed_finish(client, monkeypatch):
    run = Run("durable", client=client)
    with pytest.raises(Unavailable):
        with run:
            run.log_parameter("lr", 0.1)
            run.log_metric("m", 1.0)
            _fail_once(monkeypatch, run, "finish")
    run.flush()  # what the exit hook does: the points and params are still there to send
    got = client.runs.get(run.id)
    assert got.params == {"lr": "0.1"}
    assert got.metrics == {"m": 1.0}
