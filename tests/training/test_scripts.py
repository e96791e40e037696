"""Training scripts written the way SageMaker users write them run unchanged through
Kiln's contract, and what they save loads through the sagemaker flavor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.tracking._runs import RunService

from .harness import CASES, Case, load_package, run_case

pytestmark = pytest.mark.xdist_group("training-scripts")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_script(case: Case, tmp_path: Path) -> None:
    for module in case.requires:
        pytest.importorskip(module)
    extra_env: dict[str, str] = {}
    ws = None
    if case.run_metrics:
        ws = Workspace(load_settings(home=tmp_path / "home"))
        run = RunService(ws, local_context()).create(experiment_name="scripts", run_name=case.name.replace("_", "-"))
        extra_env = {"KILN_HOME": str(tmp_path / "home"), "KILN_RUN_ID": run.id}
    try:
        result = run_case(case, tmp_path, extra_env=extra_env)
        assert result.exit_code == case.exit_code, result.log[-3000:]
        assert result.requirements is None  # every requirements.txt here is already satisfied
        if case.failure is not None:
            assert result.failure_reason is not None and case.failure in result.failure_reason, result.failure_reason
            assert len(result.failure_reason) <= 1024
        assert {name: len(result.metrics.get(name, [])) for name in case.metrics} == dict(case.metrics)
        for rel, want in case.files.items():
            path = result.layout.base / rel
            assert path.is_file(), f"{rel} was not written; log:\n{result.log[-2000:]}"
            if want is not None:
                got = path.read_text()
                assert (json.loads(got) == json.loads(want)) if rel.endswith(".json") else got == want
        if ws is not None:
            detail = RunService(ws, local_context()).get(run_id=extra_env["KILN_RUN_ID"])
            assert set(case.run_metrics) <= set(detail.metrics)
        if case.predict is not None:
            predictor = load_package(case, result)
            X, y = case.predict.rows()
            forms = [X.to_numpy(), X, X.to_csv(header=False, index=False)]
            preds = [np.asarray(predictor.predict(form)) for form in forms]
            for other in preds[1:]:
                np.testing.assert_allclose(np.asarray(other, dtype=float), np.asarray(preds[0], dtype=float), rtol=1e-6)
            assert case.predict.score(y, preds[0]) >= case.predict.at_least
    finally:
        if ws is not None:
            ws.close()
