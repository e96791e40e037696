"""kiln monitor: the README's commands work, and bad input is one line saying what to do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import kiln
from kiln.core.config import Settings
from tests.faces.conftest import CliResult
from tests.monitoring.conftest import frame


def test_baseline_compare_and_errors(cli: Callable[..., CliResult], settings: Settings, tmp_path: Path) -> None:
    client = kiln.Client(settings=settings)
    client.datasets.ingest("train", pd.DataFrame(frame(2000)))
    client.datasets.ingest("may", pd.DataFrame(frame(2000, shift=1.0, seed=1)))
    client.datasets.ingest("june", pd.DataFrame(frame(2000, seed=2)))
    client.close()
    r = cli("monitor", "baseline", "train", "-o", tmp_path / "baseline")
    assert r.code == 0 and "3 features" in r.out
    stats = json.loads((tmp_path / "baseline" / "statistics.json").read_text())
    assert [f["name"] for f in stats["features"]] == ["x", "k", "c"]
    r = cli("monitor", "compare", tmp_path / "baseline", "may", "-o", tmp_path / "may")
    assert r.code == 1 and "baseline_drift_check" in r.out
    assert {p.name for p in (tmp_path / "may").iterdir()} == {"statistics.json", "constraint_violations.json", "result.json", "report.html"}
    r = cli("monitor", "compare", "train", "june", "--json", "--method", "*=psi", "--psi")
    assert r.code == 0, r.out
    out = json.loads(r.out)
    assert out["violations"] == [] and {c["method"] for c in out["result"]["columns"]} == {"psi"}
    for args, words in [(("compare", "train", "may", "--method", "x=magic"), "unknown drift method"),
                        (("compare", "train", "may", "--threshold", "x=high"), "must be a number"),
                        (("compare", "ghost", "may"), "does not exist"),
                        (("compare", str(tmp_path / "nowhere") + "/", "may"), "no statistics.json"),
                        (("create", "m", "--endpoint", "ghost", "--baseline", "train"), "endpoint 'ghost' does not exist"),
                        (("run", "ghost"), "monitor 'ghost' does not exist"),
                        (("ground-truth", "ghost", tmp_path / "none.csv"), "no such file")]:
        r = cli("monitor", *args)
        assert r.code != 0 and words in r.err and "Traceback" not in r.err, (args, r.err)
    assert np.isfinite(out["result"]["dataset_drift"]["share"])
