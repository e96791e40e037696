"""CatBoost as an AutoML model family and SHAP importance in the report, where they are
installed (`pip install 'kiln[automl-extras]'`; neither is part of `kiln[dev]`, see
docs/automl.md): a CatBoost candidate is searched, kept in the ensemble, packaged in the
servable package that loads without trust, and reproduced by its exported script."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kiln
from kiln.automl._frame import prepare
from kiln.automl._model import load_package
from kiln.core.config import load_settings
from kiln.serving._runtime import Servable
from tests.jobs.conftest import stop_all

from ._data import mixed

REASON = "needs the optional extra kiln[automl-extras] (catboost, shap: about 0.5 GB installed), left out of kiln[dev]"
MISSING = [m for m in ("catboost", "shap") if importlib.util.find_spec(m) is None]  # found, not imported: the engine imports them
pytestmark = [pytest.mark.xdist_group("automl-engine"), pytest.mark.skipif(bool(MISSING), reason=f"{REASON}; missing: {MISSING}")]

# The engine in a process of its own, warnings as errors (as pytest's filterwarnings here),
# that has not imported CatBoost or SHAP before: what an AutoML job's runner does.
_ENGINE = "import json, sys; from kiln.automl._engine import run_engine; json.dump(run_engine(json.loads(sys.argv[1])), open(sys.argv[2], 'w'), default=str)"


def _engine(tmp_path: Path, frame: pd.DataFrame, **kw: object) -> dict[str, object]:
    frame.to_parquet(tmp_path / "train.parquet")
    config = {"data": str(tmp_path / "train.parquet"), "out": str(tmp_path / "out"), "target": "label",
              "time_budget_s": 120.0, "n_jobs": 1, "job": "t", **kw}
    ran = subprocess.run([sys.executable, "-W", "error", "-W", "ignore::ResourceWarning", "-c", _ENGINE, json.dumps(config),
                          str(tmp_path / "summary.json")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads((tmp_path / "summary.json").read_text())  # type: ignore[no-any-return]


def test_shap_explains_a_model_of_text_columns(tmp_path: Path) -> None:
    """Text makes the prepared matrix sparse, and LightGBM's binary SHAP values come with a
    notice about their shape: neither keeps SHAP values out of the report."""
    _engine(tmp_path, mixed(200, task="binary"), max_candidates=1)
    shap = json.loads((tmp_path / "out" / "report" / "report.json").read_text())["shap"]
    assert shap["status"] == "ok" and shap["candidate"] == "c01-lightgbm", shap
    assert max(shap["values"], key=shap["values"].get) == "num__x" and shap["values"]["text0__great"] > 0  # "great" is in the signal


def test_a_catboost_candidate_is_packaged_served_reproduced_and_explained(tmp_path: Path) -> None:
    """An AutoML job on this data (200 rows, three classes, no text; every seed fixed): CatBoost's
    defaults, the 7th candidate, join the ensemble, which is registered, served without trust,
    and reproduced by the candidate's script; the report has SHAP values."""
    client = kiln.Client(settings=load_settings(home=str(tmp_path / "home")))
    try:
        client.datasets.ingest("cb", mixed(200, task="multiclass").drop(columns=["review"]))
        frame = client.datasets.read("cb@1").to_pandas()
        job = client.automl("cb@1", target="label", time_budget_s=120, n_jobs=1, max_candidates=7, name="am-cb")
        assert job.state == "Completed", job.failure_reason
        board = {r["id"]: r for r in client.automl.describe("am-cb").leaderboard}
        assert board["c07-catboost"]["status"] == "ok" and 0.5 < board["c07-catboost"]["score"] <= 1.0, board
        client.models.download(job.outputs["model"], tmp_path / "pkg")
        spec = json.loads((tmp_path / "pkg" / "automl.json").read_text())
        members = [m["candidate"] for m in spec["members"]]
        assert "c07-catboost" in members, members
        model = load_package(tmp_path / "pkg")  # no trusted types: CatBoost's estimators are vetted
        folds = model.members[members.index("c07-catboost")][1]
        assert type(folds[0].steps[-1][1]).__name__ == "CatBoostClassifier"
        rows = frame.drop(columns="label").head(5)
        servable = Servable.load(tmp_path / "pkg", trusted=False)
        reply = servable.invoke(rows.to_csv(index=False, header=False).encode(), "text/csv", "application/json")
        assert json.loads(reply.body) == list(model.predict(rows))
        assert (model.predict(frame.drop(columns="label")) == frame["label"]).mean() > 0.7
        script = tmp_path / "c07-catboost.py"
        script.write_text(client.automl.script("am-cb", "c07-catboost").script)
        frame.to_parquet(tmp_path / "train.parquet")
        done = subprocess.run([sys.executable, str(script), str(tmp_path / "train.parquet"), "--out", str(tmp_path / "cb.csv")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        got = pd.read_csv(tmp_path / "cb.csv")[[f"proba_{c}" for c in spec["classes"]]].to_numpy()
        want = sum(f.predict_proba(prepare(frame, spec["schema"])) for f in folds) / len(folds)
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert not (tmp_path / "catboost_info").exists()  # CatBoost writes no training log into the working folder
        shap = client.automl.report("am-cb").report["shap"]
        assert shap["status"] == "ok" and shap["candidate"] in members, shap
        assert max(shap["values"], key=shap["values"].get) == "num__x"  # the signal's strongest column
    finally:
        stop_all(client)
        client.close()
