"""Bad input to the registry: tampered files, unknown flavors, pickles, MLflow folders, traversal."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import orjson
import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression

from kiln.core.context import local_context
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied
from kiln.registry import ModelService, package_model

from .conftest import TRAVERSAL

X = [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 3.0]]
Y = [1.0, 2.0, 3.0, 5.0]


class HomeMade(BaseEstimator):
    """A class skops does not know: Kiln must not load it unless told to."""

    def fit(self, X, y):  # noqa: N803
        self.mean_ = sum(y) / len(y)
        return self

    def predict(self, X):  # noqa: N803
        return [self.mean_] * len(X)


@pytest.fixture
def svc(sqlite_ws):
    return ModelService(sqlite_ws, local_context())


@pytest.fixture
def package(tmp_path):
    package_model(LinearRegression().fit(X, Y), tmp_path / "pkg", sample_input=X[:2])
    return tmp_path / "pkg"


def _nothing_registered(svc, name):
    with pytest.raises(NotFound):
        svc.get(name=name)
    assert svc.ws.store.list("models") == []


def test_files_not_matching_their_hashes_are_refused(svc, package):
    (package / "model.skops").write_bytes(b"tampered")
    with pytest.raises(InvalidArgument, match="does not match its sha256"):
        svc.register_folder(name="tampered", folder=package)
    _nothing_registered(svc, "tampered")


def test_extra_or_missing_files_are_refused(svc, package):
    (package / "extra.bin").write_bytes(b"x")
    with pytest.raises(InvalidArgument, match="not listed"):
        svc.register_folder(name="extra", folder=package)
    (package / "extra.bin").unlink()
    (package / "model.skops").unlink()
    with pytest.raises(InvalidArgument, match="missing"):
        svc.register_folder(name="extra", folder=package)
    _nothing_registered(svc, "extra")


def test_stored_file_changed_after_registering_is_not_loaded(svc, package):
    version = svc.register_folder(name="later", folder=package)
    row_prefix = next(k for k, *_ in svc.ws.store.list("models/later") if k.endswith("model.skops"))
    svc.ws.store.put_bytes(row_prefix, b"swapped on disk")
    with pytest.raises(InvalidArgument, match="sha256"):
        svc.load(ref=version.ref)


@pytest.mark.parametrize("flavor", ["pytorch", "../sklearn", ""])
def test_unknown_flavor(svc, package, flavor):
    manifest = orjson.loads((package / "kiln-model.json").read_bytes())
    manifest["flavor"] = flavor
    (package / "kiln-model.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(InvalidArgument, match="unknown model flavor"):
        svc.register_folder(name="flv", folder=package)
    _nothing_registered(svc, "flv")


def test_untrusted_skops_types_need_an_explicit_trust(svc, tmp_path):
    package_model(HomeMade().fit(X, Y), tmp_path / "homemade")
    version = svc.register_folder(name="homemade", folder=tmp_path / "homemade")
    with pytest.raises(PermissionDenied, match="HomeMade"):
        svc.load(ref=version.ref)


def _mlflow_folder(root: Path, *, flavor: str = "sklearn") -> Path:
    folder = root / "mlflow-model"
    folder.mkdir()
    with open(folder / "model.pkl", "wb") as fh:
        pickle.dump(LinearRegression().fit(X, Y), fh)
    signature = {"inputs": '[{"type": "double", "name": "a"}, {"type": "double", "name": "b"}]', "outputs": '[{"type": "double"}]'}
    spec = {
        "artifact_path": "model", "run_id": "abc123", "signature": signature,
        "flavors": {"python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
                    flavor: {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}},
    }
    import yaml

    (folder / "MLmodel").write_text(yaml.safe_dump(spec))
    return folder


def test_mlflow_pickle_needs_trust_pickle(svc, tmp_path):
    version = svc.register_folder(name="from-mlflow", folder=_mlflow_folder(tmp_path))
    assert (version.flavor, version.origin) == ("sklearn", "mlflow")
    assert [c.name for c in version.signature.inputs] == ["a", "b"] and version.lineage.extra["run_id"] == "abc123"
    with pytest.raises(PermissionDenied, match="trust_pickle=True"):
        svc.load(ref="from-mlflow")
    assert svc.load(ref="from-mlflow", trust_pickle=True).predict([[1.0, 1.0]]).shape == (1,)


def test_mlflow_flavor_kiln_cannot_load_is_refused(svc, tmp_path):
    with pytest.raises(InvalidArgument, match="not supported"):
        svc.register_folder(name="torch", folder=_mlflow_folder(tmp_path, flavor="pytorch"))


def _tar(members: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("member", ["../evil.skops", "/abs.skops", "a/../../evil.skops", "link"])
def test_uploaded_tar_cannot_escape(rest, svc, member):
    body = _tar([(member, None if member == "link" else b"x")])
    resp = rest.post("/v1/models/escape/versions", content=body, headers={"content-type": "application/octet-stream"})
    assert resp.status_code == 400, resp.text
    _nothing_registered(svc, "escape")


def test_traversal_strings_on_registry_routes_and_cli(raw, cli, svc, package, tmp_path):
    svc.register_folder(name="safe", folder=package)
    routes = [
        ("GET", "/v1/models/{}"), ("GET", "/v1/models/{}/versions"), ("GET", "/v1/models/safe/versions/{}"),
        ("GET", "/v1/models/safe/versions/1/files/{}"), ("GET", "/v1/models/safe/versions/{}/package.tar"),
        ("PUT", "/v1/models/safe/aliases/{}"), ("POST", "/v1/models/{}/versions"), ("POST", "/v1/models/safe/versions/{}/approve"),
    ]
    accepted = [(bad, m, u, s) for bad in TRAVERSAL for m, u in routes if not 400 <= (s := raw(m, u, bad, body=b'{"version": 1}')) < 500]
    assert accepted == []
    failures = []
    for bad in TRAVERSAL:
        for args in (("models", "show", bad), ("models", "versions", bad), ("models", "approve", bad), ("models", "alias", "safe", bad, "1"), ("models", "register", bad, str(package))):
            code, out, err = cli(*args)
            if code not in (2, 3) or "Traceback" in out + err:
                failures.append((args, code, err[-200:]))
    assert failures == []
    assert [v.version for v in svc.list_versions(name="safe")] == [1]


def test_cli_register_approve_alias_download(cli, package, tmp_path):
    code, out, err = cli("models", "register", "cli-model", str(package), "--json")
    assert code == 0, err
    assert orjson.loads(out)["version"] == 1
    assert cli("models", "approve", "cli-model@1")[0] == 0
    assert cli("models", "alias", "cli-model", "champion", "1")[0] == 0
    code, out, _ = cli("models", "show", "cli-model@champion", "--json")
    assert orjson.loads(out)["status"] == "Approved"
    code, out, _ = cli("models", "ls", "--json")
    assert orjson.loads(out)[0]["aliases"] == {"champion": 1}
    assert cli("models", "download", "cli-model@champion", str(tmp_path / "dl"))[0] == 0
    assert (tmp_path / "dl" / "model.skops").is_file()
    code, _, err = cli("models", "register", "cli-model", str(package), "--flavor", "banana")
    assert code == 2 and "unknown model flavor" in err


def test_gc_keeps_registered_packages_and_removes_half_written_ones(svc, package):
    import time

    from kiln.core.gc import collect_garbage

    version = svc.register_folder(name="kept", folder=package)
    svc.ws.store.put_bytes("models/kept/0123456789abcdef/model.skops", b"left by a crash")
    report = collect_garbage(svc.ws, local_context(), grace_s=0, dry_run=False, now=time.time() + 1)
    assert [k for k in report.removed if k.startswith("models/")] == ["models/kept/0123456789abcdef/model.skops"]
    assert svc.load(ref=version.ref).predict(X[:1]).shape == (1,)


@pytest.mark.parametrize("fmt", ["pickle", "Pickle", "pkl"])
def test_a_folder_pickle_claiming_kiln_origin_needs_trust_pickle(svc, tmp_path, fmt):
    from kiln.registry._package import new_manifest, write_manifest

    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "model.bin").write_bytes(pickle.dumps(LinearRegression().fit(X, Y)))
    write_manifest(folder, new_manifest(folder, flavor="sklearn", options={"file": "model.bin", "format": fmt}, origin="kiln"))
    version = svc.register_folder(name="claims-kiln", folder=folder)
    assert version.origin == "folder"
    with pytest.raises((PermissionDenied, InvalidArgument)):
        svc.load(ref=f"claims-kiln@{version.version}")
