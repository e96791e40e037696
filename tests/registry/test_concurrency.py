"""Registrations racing on PostgreSQL: each gets its own version, none fails."""

from __future__ import annotations

import threading

import numpy as np
from sklearn.linear_model import LinearRegression

from tests.tracking.conftest import local_client


def test_first_registrations_of_a_model_at_once_all_succeed(_pg_ws, uniq):
    client = local_client(_pg_ws)
    model = LinearRegression().fit(np.arange(10).reshape(-1, 1), np.arange(10))
    name = f"racy-{uniq}"
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def register() -> None:
        barrier.wait()
        try:
            client.models.register(name, model=model)
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v.version for v in client.models.versions(name)) == [1, 2, 3, 4]
