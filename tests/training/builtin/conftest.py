"""A SageMaker job folder built by hand, and the built-in algorithm run on it in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import datasets

from kiln.training.builtin import metric_definitions

LOADERS = {"breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris, "diabetes": datasets.load_diabetes}


def split(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A bundled scikit-learn dataset split 75/25: X_train, y_train, X_valid, y_valid."""
    X, y = LOADERS[name](return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = len(y) * 3 // 4
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


def write_csv(path: Path, y: np.ndarray | None, X: np.ndarray) -> Path:
    """Headerless CSV, label first (SageMaker's text/csv); no label column when ``y`` is None."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = X if y is None else np.column_stack([y, X])
    np.savetxt(path, rows, delimiter=",", fmt="%.8g")
    return path


@dataclass
class Job:
    base: Path
    result: subprocess.CompletedProcess[str] | None = None

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def failure(self) -> str:
        return (self.base / "output" / "failure").read_text()

    def channel(self, name: str) -> Path:
        path = self.base / "input" / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, algorithm: str, hps: dict[str, Any], *, content_types: dict[str, str] | None = None,
            hosts: list[str] | None = None, host: str = "algo-1", sm_env: bool = True,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``python -m kiln.training.builtin ALGO`` with the SM_* environment a runner sets."""
        channels = sorted(p.name for p in (self.base / "input" / "data").iterdir()) if (self.base / "input" / "data").is_dir() else []
        config = self.base / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        data_config = {c: {"TrainingInputMode": "File", **({"ContentType": content_types[c]} if content_types and c in content_types else {})} for c in channels}
        (config / "hyperparameters.json").write_text(json.dumps({k: json.dumps(v) for k, v in hps.items()}))
        (config / "inputdataconfig.json").write_text(json.dumps(data_config))
        (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts or [host]}))
        for folder in ("model", "output/data"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "KILN_DIST_", "KILN_HOST_"))}
        env["SAGEMAKER_BASE_DIR"] = str(self.base)
        if sm_env:
            env.update({
                "SM_HPS": json.dumps(hps), "SM_CHANNELS": json.dumps(channels), "SM_INPUT_DATA_CONFIG": json.dumps(data_config),
                "SM_MODEL_DIR": str(self.model_dir), "SM_OUTPUT_DIR": str(self.base / "output"),
                "SM_OUTPUT_DATA_DIR": str(self.base / "output" / "data"), "SM_NUM_CPUS": "1",
                "SM_HOSTS": json.dumps(hosts or [host]), "SM_CURRENT_HOST": host,
                **{f"SM_CHANNEL_{c.upper()}": str(self.base / "input" / "data" / c) for c in channels},
            })
        env.update(extra_env or {})
        self.result = subprocess.run([sys.executable, "-m", "kiln.training.builtin", algorithm], env=env,
                                     capture_output=True, text=True, timeout=240)
        return self.result

    def unread_metric_lines(self, algorithm: str) -> list[str]:
        """Printed metric lines whose metrics the default definitions do not read exactly once each
        (a ``[n]#011a-m:v#011b-m:v`` line holds one metric per ``#011``, a ``#quality_metric:`` line one)."""
        assert self.result is not None
        regexes = [re.compile(d["Regex"]) for d in metric_definitions(algorithm)]
        lines = [ln for ln in self.result.stdout.splitlines() if re.match(r"\[\d+\]#011|#quality_metric:", ln)]
        return [ln for ln in lines if sum(bool(r.search(ln)) for r in regexes) != max(ln.count("#011"), 1)]

    def metrics(self, algorithm: str) -> dict[str, list[float]]:
        """Every value each default metric definition captures in the job's output."""
        assert self.result is not None
        log = self.result.stdout + self.result.stderr
        return {d["Name"]: [float(v) for v in re.findall(d["Regex"], log)] for d in metric_definitions(algorithm)}


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(base=tmp_path / "job")


@pytest.fixture
def dataset_job(job: Job) -> Callable[..., tuple[Job, np.ndarray, np.ndarray]]:
    """A job whose train and validation channels hold a bundled dataset; returns it with the validation rows."""

    def make(name: str, *, label: bool = True, validation: str = "validation") -> tuple[Job, np.ndarray, np.ndarray]:
        Xt, yt, Xv, yv = split(name)
        write_csv(job.channel("train") / "part-0.csv", yt if label else None, Xt)
        write_csv(job.channel(validation) / "part-0.csv", yv if label else None, Xv)
        return job, Xv, yv

    return make
