"""An AutoML package brought as a folder (its files, without the registry's kiln-model.json)
and registered by path serves exactly as the job's own registration does: the package's
automl.json says which columns are categories, so a string category and a category of
number-like codes ("1", "07") reach the model as text, over CSV and JSON alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kiln
from kiln.core.config import load_settings
from kiln.serving._runtime import Servable
from tests.jobs.conftest import stop_all

pytestmark = pytest.mark.xdist_group("automl-jobs")


def _coded(n: int = 240, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    code = rng.choice(["1", "2", "3", "07", "7"], size=n)  # "07" and "7" are different categories
    signal = 0.3 * x + (color == "red") * 1.0 + (code == "07") * 2.5 - (code == "2") * 1.5 + 0.1 * rng.normal(size=n)
    return pd.DataFrame({"x": x, "color": color, "code": code, "label": np.where(signal > np.median(signal), "hi", "lo")})


@pytest.fixture(scope="module")
def job_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kiln.Client, pd.DataFrame]]:
    """One short AutoML job over a Parquet dataset whose code column is strings."""
    root = tmp_path_factory.mktemp("automl-path")
    client = kiln.Client(settings=load_settings(home=str(root / "home")))
    frame = _coded()
    frame.to_parquet(root / "coded.parquet", index=False)
    client.datasets.ingest("coded", root / "coded.parquet")
    job = client.automl("coded@1", target="label", time_budget_s=10, n_jobs=1, name="am-coded")
    assert job.state == "Completed", job.failure_reason
    try:
        yield client, frame
    finally:
        stop_all(client)
        client.close()


def _copy_files(client: kiln.Client, ref: str, dest: Path) -> Path:
    """The package's own files, one by one (no kiln-model.json): a folder as a user brings one."""
    dest.mkdir()
    for f in client.models.get_version(ref).files:
        (dest / f.path).write_bytes(client.models.read_file(ref, f.path))
    return dest


def _remote(client: kiln.Client) -> kiln.Client:
    from kiln.server.app import create_app
    from tests.faces.conftest import SyncASGI

    return kiln.Client("http://testserver", http_transport=SyncASGI(create_app(client.workspace, auth=False, allowed_hosts=["testserver"])))


def _served(client: kiln.Client, ref: str, rows: pd.DataFrame, folder: Path) -> tuple[list[object], list[object], list[object]]:
    """Predictions for ``rows`` through the serving runtime: CSV, JSON rows and JSON records."""
    client.models.download(ref, folder)
    servable = Servable.load(folder, trusted=False)
    csv = servable.invoke(rows.to_csv(index=False, header=False).encode(), "text/csv", "application/json")
    listed = servable.invoke(json.dumps(rows.astype(object).values.tolist()).encode(), "application/json", "application/json")
    records = json.dumps({"dataframe_records": rows.astype(object).to_dict("records")}).encode()
    recs = servable.invoke(records, "application/json", "application/json")
    return json.loads(csv.body), json.loads(listed.body), json.loads(recs.body)["predictions"]


@pytest.mark.parametrize(("face", "flavor"), [("sdk", None), ("rest", None), ("sdk", "automl")])
def test_a_package_registered_by_path_serves_as_the_jobs_own(
    job_model: tuple[kiln.Client, pd.DataFrame], tmp_path: Path, face: str, flavor: str | None,
) -> None:
    client, frame = job_model
    own = client.models.get_version("coded-automl@1")
    folder = _copy_files(client, own.ref, tmp_path / "pkg")
    registrar = _remote(client) if face == "rest" else client
    version = registrar.models.register(f"coded-copy-{face}", path=folder, flavor=flavor)
    assert version.flavor == "automl" and not version.runs_code
    assert version.signature == own.signature and (version.task, version.classes) == (own.task, own.classes)
    assert {c.name: c.type for c in version.signature.inputs} == {"x": "float64", "color": "str", "code": "str"}
    rows = frame.drop(columns="label").iloc[:40].reset_index(drop=True)
    expected = [str(v) for v in client.models.load(own.ref).predict(rows)]
    assert set(expected) == {"hi", "lo"}
    assert _served(client, own.ref, rows, tmp_path / "own") == (expected, expected, expected)
    assert _served(client, version.ref, rows, tmp_path / "copy") == (expected, expected, expected)
