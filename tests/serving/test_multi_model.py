"""Multi-model endpoints as real processes: models chosen per request, fetched through the
supervisor with the registry's trust rules, loaded on first use, evicted LRU under the
budget; SageMaker's multi-model server API."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

import kiln
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied
from kiln.serving._metrics import snapshot
from kiln.serving._multi import allowed, normalize
from kiln.serving._service import endpoint_dir

from .conftest import custom_model, register, wait_for

pytestmark = pytest.mark.xdist_group("endpoints")


def _heavy(folder: Path, factor: float, kb: int) -> Path:
    custom_model(folder, factor)
    (folder / "padding.bin").write_bytes(b"\0" * (kb << 10))
    return folder


@pytest.mark.parametrize(("target", "ref"), [("churn@3", "churn@3"), ("churn/3", "churn@3"), ("churn/3.tar.gz", "churn@3"), ("churn", "churn"), ("churn@prod", "churn@prod")])
def test_target_models_name_a_version_sagemaker_style_or_the_latest(target: str, ref: str) -> None:
    assert normalize(target) == ref


@pytest.mark.parametrize("target", ["../churn", "churn/../x", "/etc/passwd", "churn%2f3", "churn@3/4", "Churn", "churn;x", ""])
def test_anything_else_is_refused(target: str) -> None:
    with pytest.raises(InvalidArgument, match="not a model reference"):
        normalize(target)


def test_allow_patterns() -> None:
    assert allowed("churn", ["churn"]) and allowed("churn-eu", ["churn*"]) and allowed("x", ["*"])
    assert not allowed("churner", ["churn"]) and not allowed("other", ["churn*"])


def test_multi_model_endpoint(client: kiln.Client, models: dict[str, str], tmp_path: Path) -> None:
    register(client, "heavy", _heavy(tmp_path / "h1", 2.0, 600))
    register(client, "heavy", _heavy(tmp_path / "h2", 4.0, 600))
    register(client, "huge", _heavy(tmp_path / "h3", 1.0, 1500))
    ep = client.endpoints.create("mme", multi_model={"memory_mb": 1, "allow": ["times", "heavy*", "huge", "stranger", "ghost"]})
    assert (ep.state, ep.variants, ep.multi_model) == ("InService", [], {"memory_mb": 1, "allow": ["times", "heavy*", "huge", "stranger", "ghost"]})

    def invoke(target: str | None) -> list[float]:
        return orjson.loads(client.endpoints.invoke("mme", "[[1, 1]]", target_model=target).body)  # type: ignore[no-any-return]

    assert invoke("times@1") == [6.0]
    assert invoke("times/2") == [10.0]
    assert invoke("times") == [10.0]  # the latest version
    with pytest.raises(PermissionDenied, match="kiln models trust stranger@1"):
        invoke("stranger@1")
    with pytest.raises(PermissionDenied, match="may load"):
        invoke("other@1")
    with pytest.raises(NotFound, match="ghost"):
        invoke("ghost@1")
    with pytest.raises(InvalidArgument, match="not a model reference"):
        invoke("../times")
    with pytest.raises(InvalidArgument, match="X-Amzn-SageMaker-Target-Model"):
        invoke(None)
    # SageMaker's multi-model server API on the endpoint itself.
    url = client.endpoints.get("mme").url
    assert url is not None
    with httpx.Client(base_url=url, timeout=60) as http:
        listed = {m["modelName"]: m["modelUrl"] for m in http.get("/models").json()["models"]}
        assert listed == {"times@1": "times@1", "times/2": "times@2", "times": "times@2"}
        assert http.post("/models", json={"model_name": "h1", "url": "heavy@1"}).status_code == 200
        again = http.post("/models", json={"model_name": "h1", "url": "heavy@1"})
        assert again.status_code == 409 and "already loaded" in again.json()["error"]["message"]
        r = http.post("/invocations", content=b"1,2", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "h1"})
        assert r.json() == [6.0]
        assert http.post("/models", json={"model_name": "h2", "url": "heavy/2"}).status_code == 200
        names = [m["modelName"] for m in http.get("/models").json()["models"]]
        assert "h2" in names and "h1" not in names  # least recently used, evicted under the 1 MB budget
        full = http.post("/models", json={"model_name": "big", "url": "huge@1"})
        assert full.status_code == 507 and "memory" in full.json()["error"]["message"]
        assert http.delete("/models/h2").status_code == 200
        assert http.delete("/models/h2").status_code == 404
        assert http.delete("/models/..%2f..%2fetc").status_code == 404
        assert http.post("/models", content=b"not json").status_code == 400
    run_dir = endpoint_dir(client.settings.home, "mme")
    per_model = wait_for(lambda: (s := snapshot(run_dir)).get("heavy@1") and s, what="per-model metrics")
    assert per_model["times@1"]["invocations"] == 1 and per_model["times@1"]["cold_starts"] == 1
    assert per_model["heavy@1"]["invocations"] == 1


class _Channel:
    """The supervisor's side, faked: records what reached it, knows no model."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def fetch(self, model: str) -> dict[str, object]:
        self.asked.append(model)
        raise NotFound(f"model {model!r} does not exist")


def test_traversal_strings_never_reach_the_supervisor_or_a_5xx() -> None:
    """DESIGN §8 for the worker's multi-model faces: the target model header, POST /models
    and /models/{name} refuse every traversal string before the supervisor is asked."""
    from urllib.parse import quote

    from kiln.serving._spec import EndpointSpec, MultiModelSpec
    from tests.conftest import TRAVERSAL
    from tests.serving._http_support import serve

    channel = _Channel()
    spec = EndpointSpec(name="mme", multi_model=MultiModelSpec(memory_mb=8))
    with serve(spec, {}, channel=channel) as (url, _), httpx.Client(base_url=url, timeout=10) as http:
        for bad in TRAVERSAL:
            answers = [
                http.post("/invocations", content=b"1", headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": bad.encode()}),
                http.post("/models", json={"model_name": bad, "url": bad}),
                http.post("/models", json={"model_name": "ok", "url": bad}),
                http.delete("/models/" + quote(bad, safe="")),
                http.get("/models/" + quote(bad, safe="")),
            ]
            for resp in answers:
                listing = resp.status_code == 200 and resp.json() == {"models": []}  # the client made "/models/." "/models/"
                assert resp.status_code in (400, 403, 404) or listing, (bad, resp.status_code, resp.text)
                assert b"Traceback" not in resp.content
    assert all("/" not in a and ".." not in a and "%" not in a for a in channel.asked), channel.asked


@pytest.mark.parametrize("pattern", ["../x*", "/etc/*", "a/b", "..", "x;y*"])
def test_allow_patterns_are_names(client: kiln.Client, pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="allow pattern"):
        client.endpoints.create("mme", multi_model={"allow": [pattern]})
    assert client.endpoints.list() == []
