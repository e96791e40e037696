"""Micro-batching in a worker's app: concurrent requests share one predict, and every
answer is byte for byte the one the request gets alone."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import numpy as np
import pytest

from kiln.serving._runtime import Servable
from kiln.serving._spec import BatchingSpec, EndpointSpec, VariantSpec
from tests.serving._http_support import custom_package, logistic_package, serve


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("models")
    folder, _, X = logistic_package(root / "lr")
    custom = custom_package(root / "custom", 2.0)
    return {"lr": Servable.load(folder, trusted=False, name="lr"), "custom": Servable.load(custom, trusted=True, name="custom"), "lr_folder": folder, "custom_folder": custom, "X": X}


def _spec(models: dict[str, Any], batching: BatchingSpec | None) -> EndpointSpec:
    variants = (
        VariantSpec(name="lr", model_ref="lr@1", folder=str(models["lr_folder"])),
        VariantSpec(name="custom", model_ref="custom@1", folder=str(models["custom_folder"]), trusted=True, weight=0),
    )
    return EndpointSpec(name="ep", variants=variants, batching=batching)


def _requests(X: np.ndarray) -> list[tuple[bytes, str, str | None]]:
    out = []
    for i in range(60):
        rows = X[i % 50 : i % 50 + 1 + i % 3]
        if i % 2:
            out.append((",".join(map(repr, rows[0].tolist())).encode() if len(rows) == 1 else "\n".join(",".join(map(repr, r)) for r in rows.tolist()).encode(), "text/csv", "text/csv" if i % 4 == 1 else None))
        else:
            out.append((repr(rows.tolist()).encode(), "application/json", None))
    out.append((b'{"instances": [[1.0, 2.0, 3.0, 4.0]]}', "application/json", None))  # MLflow's JSON: the normal way
    out.append((b"1,2,3", "text/csv", None))  # wrong column count: the error it gets alone
    return out


def test_batched_answers_equal_unbatched_and_requests_share_predicts(models: dict[str, Any]) -> None:
    asked = _requests(models["X"])
    headers = [{"Content-Type": ct, **({"Accept": acc} if acc else {}), "X-Amzn-SageMaker-Target-Variant": "lr"} for _, ct, acc in asked]

    def run(url: str) -> list[tuple[int, bytes, str]]:
        with httpx.Client(base_url=url, timeout=20) as http, concurrent.futures.ThreadPoolExecutor(16) as pool:
            def one(i: int) -> tuple[int, bytes, str]:
                r = http.post("/invocations", content=asked[i][0], headers=headers[i])
                return r.status_code, r.content if r.status_code == 200 else r.json()["error"]["message"].encode(), r.headers["content-type"]
            return list(pool.map(one, range(len(asked))))

    with serve(_spec(models, None), {"lr": models["lr"], "custom": models["custom"]}) as (url, _):
        alone = run(url)
    with serve(_spec(models, BatchingSpec(max_batch=16, max_delay_ms=20)), {"lr": models["lr"], "custom": models["custom"]}) as (url, app):
        together = run(url)
        counters = app.metrics.variant("lr")
        # A package with its own handlers is never batched, and still answers.
        custom = httpx.post(url + "/invocations", content=b"1,2", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "custom"})
    assert together == alone
    assert alone[-1][0] == 400 and alone[-2][0] == 200
    assert counters.batches >= 1 and counters.batched >= 2 * counters.batches
    assert app.by_name["custom"].batcher is None and custom.json() == [6.0]


def test_batching_off_costs_nothing(models: dict[str, Any]) -> None:
    with serve(_spec(models, None), {"lr": models["lr"], "custom": models["custom"]}) as (_, app):
        assert app._batching is False and all(v.batcher is None for v in app.variants)
        assert "_invocations" not in vars(app)  # no serverless wrapper either
