"""A package's own schema file (an AutoML package's automl.json) is read on every registration
of its folder, strictly, as data: a good one becomes the version's signature, task and
classes; a malformed one is refused with a 4xx or a CLI error naming the file, and nothing is
registered."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument, NotFound
from kiln.registry import ModelService
from kiln.registry._package import new_manifest, write_manifest

SPEC = {
    "task": "classification", "problem_type": "BinaryClassification", "metric": "F1", "classes": ["hi", "lo"], "target": "y",
    "schema": {"columns": [{"name": "x", "kind": "numeric"}, {"name": "code", "kind": "categorical", "cardinality": 3}],
               "dropped": {"id": "an identifier (a distinct value in every row)"}, "target": "y"},
    "inputs": ["x", "code", "id"], "members": [{"candidate": "c01-lightgbm", "weight": 1.0, "files": ["c01-lightgbm-fold0.skops"]}],
}
BAD = [
    (b"{not json", "automl.json in the model package is not valid JSON"),
    (b"[" * 100_000, "automl.json in the model package is not valid JSON"),
    (b"[1, 2]", "automl.json in the model package must be a JSON object, not list"),
    (json.dumps({**SPEC, "inputs": "x"}).encode(), "automl.json in the model package is malformed: inputs: Input should be a valid list"),
    (json.dumps({**SPEC, "schema": {"columns": [{"name": "x", "kind": "python"}]}}).encode(), "malformed: schema.columns.0.kind"),
    (json.dumps({**SPEC, "schema": {"columns": [{"name": 7, "kind": "numeric"}]}}).encode(), "malformed: schema.columns.0.name"),
    (json.dumps({**SPEC, "schema": {"columns": [{"name": "z", "kind": "numeric"}]}}).encode(), "'z', which is not among the inputs"),
    (json.dumps({**SPEC, "classes": [{"py/object": "os.system"}, "lo"]}).encode(), "malformed: classes.0"),
    (json.dumps({**SPEC, "classes": None}).encode(), "classes must be a list for a classification model"),
    (json.dumps({k: v for k, v in SPEC.items() if k != "schema"}).encode(), "malformed: schema: Field required"),
]


@pytest.fixture
def svc(sqlite_ws):
    return ModelService(sqlite_ws, local_context())


def _package(folder: Path, spec: bytes) -> Path:
    folder.mkdir()
    (folder / "automl.json").write_bytes(spec)
    (folder / "c01-lightgbm-fold0.skops").write_bytes(b"not loaded at registration")
    return folder


def _tar(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(str(path), arcname=path.name)
    return buf.getvalue()


@pytest.mark.parametrize("flavor", [None, "automl"])
def test_a_path_registration_records_the_schema_the_package_carries(svc, tmp_path, flavor):
    version = svc.register_folder(name="am", folder=_package(tmp_path / "pkg", json.dumps(SPEC).encode()), flavor=flavor)
    assert version.flavor == "automl" and (version.task, version.classes) == ("classification", ["hi", "lo"])
    assert [(c.name, c.type) for c in version.signature.inputs] == [("x", "float64"), ("code", "str"), ("id", "str")]


def test_the_package_schema_wins_over_what_its_manifest_claims(svc, tmp_path):
    folder = _package(tmp_path / "pkg", json.dumps(SPEC).encode())
    write_manifest(folder, new_manifest(folder, flavor="automl", options={}, origin="kiln", task="regression"))
    version = svc.register_folder(name="am", folder=folder)
    assert version.task == "classification" and version.signature.inputs[1].type == "str"


@pytest.mark.parametrize(("spec", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_a_malformed_schema_file_is_refused_naming_it(svc, rest, cli, tmp_path, spec, message):
    folder = _package(tmp_path / "pkg", spec)
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(".", r"\.")):
        svc.register_folder(name="bad", folder=folder)
    resp = rest.post("/v1/models/bad/versions", content=_tar(folder), headers={"content-type": "application/octet-stream"})
    assert resp.status_code == 400 and message in resp.json()["error"]["message"], resp.text
    code, out, err = cli("models", "register", "bad", str(folder))
    assert code == 2 and "automl.json" in err and "Traceback" not in out + err, (code, err)
    write_manifest(folder, new_manifest(folder, flavor="automl", options={}, origin="kiln"))  # hashes that match do not help
    with pytest.raises(InvalidArgument, match="automl.json in the model package"):
        svc.register_folder(name="bad", folder=folder)
    with pytest.raises(NotFound):
        svc.get(name="bad")
    assert svc.ws.store.list("models") == []
