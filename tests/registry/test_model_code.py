"""Model code runs only for a caller allowed to run it, only when an admin trusted it,
and never in the API process: each attack of the security review, replayed over REST."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from kiln.core.auth import TokenService
from kiln.core.config import load_settings
from kiln.core.context import ROLES, local_context
from kiln.core.workspace import Workspace
from kiln.server.app import create_app

pytestmark = pytest.mark.xdist_group("model-code")


class _Payload:
    """Pickles into a call that writes a marker file: proof that a pickle's code ran."""

    def __init__(self, mark: Path) -> None:
        self.mark = str(mark)

    def __reduce__(self) -> Any:
        return (exec, (f"import os; open({self.mark!r}, 'w').write(str(os.getpid()))",))


def _inference(mark: Path, body: str = "") -> str:
    return (
        "import os, json\n"
        "def model_fn(model_dir):\n"
        "    print('a model that prints does not break its worker')\n"
        f"    open({str(mark)!r}, 'w').write(json.dumps({{'pid': os.getpid(), 'env': sorted(os.environ)}}))\n"
        f"{body}"
        "    return 'sum'\n"
        "def predict_fn(data, model):\n"
        "    return data.sum(axis=1).to_numpy()\n"
    )


def _packages(mark: Path) -> dict[str, dict[str, bytes]]:
    evil = pickle.dumps(_Payload(mark))
    mlmodel = {"flavors": {"python_function": {"loader_module": "mlflow.sklearn"}, "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}}
    lgbm = {"flavors": {"lightgbm": {"data": "model.lgb", "model_class": "lightgbm.sklearn.LGBMRegressor"}}}
    forged = {
        "format_version": 1, "flavor": "sklearn", "flavor_options": {"file": "model.bin", "format": "pickle"}, "origin": "kiln",
        "files": {"model.bin": {"size": len(evil), "sha256": __import__("hashlib").sha256(evil).hexdigest()}},
    }
    train = _inference(mark).encode()
    job_model = {
        "format_version": 1, "flavor": "sagemaker", "flavor_options": {"entry_point": "train.py"}, "origin": "kiln",
        "lineage": {"job": "job-1", "extra": {"submitter": "local:alice"}},
        "files": {"code/train.py": {"size": len(train), "sha256": __import__("hashlib").sha256(train).hexdigest()}},
    }
    return {
        "pkl": {"model.pkl": evil},
        "joblib": {"model.joblib": evil},
        "pickle": {"model.pickle": evil},
        "mlflow-sklearn": {"model.pkl": evil, "MLmodel": yaml.safe_dump(mlmodel).encode()},
        "mlflow-lightgbm": {"model.lgb": evil, "MLmodel": yaml.safe_dump(lgbm).encode()},
        "forged-kiln": {"model.bin": evil, "kiln-model.json": orjson.dumps(forged)},
        "inference-py": {"code/inference.py": _inference(mark).encode()},
        "sagemaker-job-claim": {"code/train.py": train, "kiln-model.json": orjson.dumps(job_model)},
    }


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Any, dict[str, dict[str, str]], Workspace]]:
    from fastapi.testclient import TestClient

    ws = Workspace(load_settings(home=str(tmp_path / "kiln"), worker_timeout_s=20))
    tokens = TokenService(ws, local_context())
    headers = {r: {"authorization": f"Bearer {tokens.create(name=f'as-{r}', role=r).token}"} for r in ROLES}
    import pandas as pd

    from kiln.lake.datasets import DatasetService

    DatasetService(ws, local_context()).ingest("d", pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.5, 1.0], "y": [1.5, 2.5, 4.0]}))
    with TestClient(create_app(ws, auth=True), base_url="http://127.0.0.1", raise_server_exceptions=False) as http:
        yield http, headers, ws
    ws.close()


def _upload(http: Any, headers: dict[str, str], name: str, files: dict[str, bytes]) -> Any:
    return http.post(f"/v1/models/{name}/versions", content=_tar(files), headers={**headers, "content-type": "application/octet-stream"})


def _evaluate(http: Any, headers: dict[str, str], model: str, **extra: Any) -> Any:
    return http.post("/v1/evaluations", json={"model": model, "target": "y", "dataset": "d", **extra}, headers=headers)


@pytest.mark.parametrize("kind", list(_packages(Path("x"))))
def test_untrusted_model_code_never_runs(server: Any, tmp_path: Path, kind: str) -> None:
    http, as_, _ = server
    mark = tmp_path / "ran"
    created = _upload(http, as_["editor"], kind, _packages(mark)[kind])
    assert created.status_code == 201, created.text
    assert created.json()["runs_code"] is True and created.json()["trusted_by"] is None
    # A viewer may not evaluate at all; a request cannot ask for trust; an editor gets a 403 naming the fix.
    assert _evaluate(http, as_["viewer"], kind, trust_pickle=True).status_code == 403
    assert _evaluate(http, as_["editor"], kind, trust_pickle=True).status_code == 400
    refused = _evaluate(http, as_["editor"], kind)
    assert refused.status_code == 403 and "kiln models trust" in refused.json()["error"]["message"]
    assert _evaluate(http, as_["admin"], kind).status_code == 403  # an admin's request is no trust either
    assert not mark.exists(), "the package's code ran"


def test_trusted_code_runs_in_a_worker_without_the_servers_secrets(server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    http, as_, _ = server
    monkeypatch.setenv("KILN_AUDIT_KEY", "a-secret-that-stays-in-the-api")
    mark = tmp_path / "ran.json"
    assert _upload(http, as_["editor"], "custom", {"code/inference.py": _inference(mark).encode()}).status_code == 201
    assert http.post("/v1/models/custom/versions/1/trust", json={}, headers=as_["editor"]).status_code == 403
    trusted = http.post("/v1/models/custom/versions/1/trust", json={"comment": "reviewed"}, headers=as_["admin"])
    assert trusted.status_code == 200 and trusted.json()["trusted_by"] == "token:as-admin"
    report = _evaluate(http, as_["editor"], "custom")
    assert report.status_code == 200, report.text
    assert report.json()["metrics"]["mae"] == pytest.approx(0.0)
    ran = orjson.loads(mark.read_bytes())
    assert ran["pid"] != os.getpid()
    assert not [k for k in ran["env"] if k.startswith(("KILN_", "AWS_"))]
    events = http.get("/v1/audit", params={"action": "models.trust"}, headers=as_["admin"]).json()
    assert sorted((e["actor"], e["outcome"]) for e in events) == [("token:as-admin", "success"), ("token:as-editor", "failure")]
    # Distrusting takes effect at once.
    http.post("/v1/models/custom/versions/1/trust", json={"trusted": False}, headers=as_["admin"])
    assert _evaluate(http, as_["editor"], "custom").status_code == 403


@pytest.mark.parametrize(("body", "says"), [
    ("    import time; time.sleep(120)\n", "did not answer within"),
    ("    os.kill(os.getpid(), 9)\n", "crashed its worker"),
    ("    os._exit(3)\n", "exit code 3"),
])
def test_a_model_that_hangs_or_crashes_cannot_take_the_api_down(server: Any, tmp_path: Path, body: str, says: str) -> None:
    http, as_, ws = server
    _upload(http, as_["editor"], "bad", {"code/inference.py": _inference(tmp_path / "m", body).encode()})
    http.post("/v1/models/bad/versions/1/trust", json={}, headers=as_["admin"])
    start = time.monotonic()
    resp = _evaluate(http, as_["editor"], "bad")
    assert resp.status_code == 424 and says in resp.json()["error"]["message"], resp.text
    assert time.monotonic() - start < ws.settings.worker_timeout_s + 10
    assert http.get("/v1/health").status_code == 200
    _upload(http, as_["editor"], "good", {"code/inference.py": _inference(tmp_path / "g").encode()})
    http.post("/v1/models/good/versions/1/trust", json={}, headers=as_["admin"])
    assert _evaluate(http, as_["editor"], "good").status_code == 200


def test_model_code_off_refuses_even_trusted_versions(tmp_path: Path) -> None:
    from kiln.core.errors import PermissionDenied
    from kiln.registry import ModelService

    ws = Workspace(load_settings(home=str(tmp_path / "k"), model_code="never"))
    folder = tmp_path / "pkg" / "code"
    folder.mkdir(parents=True)
    (folder / "inference.py").write_text(_inference(tmp_path / "m"))
    svc = ModelService(ws, local_context())
    svc.register_folder(name="c", folder=tmp_path / "pkg")
    svc.trust(ref="c@1")
    with pytest.raises(PermissionDenied, match="KILN_MODEL_CODE=never"):
        svc.start_worker(ref="c@1")
    assert not (tmp_path / "m").exists()
    ws.close()


def test_a_gzip_bomb_upload_writes_nothing(server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from tests.catalog.test_bundles import gzip_bomb

    http, as_, _ = server
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", "model.skops").read_bytes()
    # The upload's scratch folder in a temp dir of this test's own: the machine's is shared with
    # other test processes, whose uploads come and go (seen failing under a second suite's load).
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert _upload_raw(http, as_["viewer"], bomb).status_code == 403
    resp = _upload_raw(http, as_["editor"], bomb)
    assert resp.status_code == 413 and "unpacks to more than 64 MB" in resp.json()["error"]["message"]
    assert list(scratch.iterdir()) == []
    assert http.get("/v1/models", headers=as_["viewer"]).json() == []


def _upload_raw(http: Any, headers: dict[str, str], data: bytes) -> Any:
    return http.post("/v1/models/bomb/versions", content=data, headers={**headers, "content-type": "application/octet-stream"})


@pytest.mark.parametrize(("kind", "files", "says"), [
    ("skops", {"model.skops": b"not a zip file"}, "could not be loaded as a sklearn model"),
    ("xgboost", {"xgboost-model": b"\x00not a model at all"}, "could not be loaded as a xgboost model"),
    ("onnx", {"model.onnx": b"garbage"}, "could not be loaded as a onnx model"),
])
def test_a_package_that_is_not_what_it_says_is_a_4xx_without_server_paths(server: Any, kind: str, files: dict[str, bytes], says: str) -> None:
    pytest.importorskip({"skops": "skops", "xgboost": "xgboost", "onnx": "onnxruntime"}[kind])
    http, as_, ws = server
    assert _upload(http, as_["editor"], kind, files).status_code == 201
    resp = _evaluate(http, as_["editor"], kind)
    assert 400 <= resp.status_code < 500 and says in resp.json()["error"]["message"], resp.text
    assert str(ws.settings.home) not in resp.text and "/tmp" not in resp.text
