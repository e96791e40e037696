"""Runs the user-style training scripts in tests/training/scripts/ through Kiln's
script-mode contract, one case at a time, and loads what they save.

Each case is data: its channels (files a function writes), hyperparameters, and what
must come out (exit code, failure reason, metrics, files, predictions). ``run_case``
does what a job runner does, with the contract functions only: pack and unpack the
code, lay out the job folder, write the channels and config files, build the argv and
environment, run the script, read metrics and the failure reason, and lay out the
model package. ``load_package`` loads that package through the sagemaker flavor.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kiln.registry import LoadOptions, Predictor
from kiln.registry._flavors import get_flavor
from kiln.registry._package import new_manifest
from kiln.training import (
    TrainingLayout,
    failure_reason,
    make_layout,
    metric_matcher,
    model_package,
    pack_source,
    requirements_command,
    training_argv,
    training_env,
    unpack_source,
    write_configs,
)

SCRIPTS = Path(__file__).parent / "scripts"

# -- data: sklearn's bundled sets, small and offline -----------------------------------------


@cache
def _frame(name: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = {"iris": datasets.load_iris, "cancer": datasets.load_breast_cancer, "diabetes": datasets.load_diabetes}[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    return frame.rename(columns={"target": "species"}) if name == "iris" else frame


def _label(name: str) -> str:
    return "species" if name == "iris" else "target"


def csv_label_first(name: str, files: int = 1, rows: slice = slice(None), stem: str = "") -> Callable[[Path], None]:
    """Headerless CSV, label in the first column (SageMaker's built-in algorithm layout), in ``files`` parts
    (``<stem>.csv``, or ``<stem>-0.csv``... when there are several)."""

    def write(folder: Path) -> None:
        frame = _frame(name).iloc[rows]
        ordered = frame[[_label(name)] + [c for c in frame.columns if c != _label(name)]]
        bounds = np.linspace(0, len(ordered), files + 1).astype(int)
        for i in range(files):
            filename = f"{stem or name}-{i}.csv" if files > 1 else f"{stem or name}.csv"
            ordered.iloc[bounds[i]:bounds[i + 1]].to_csv(folder / filename, header=False, index=False)

    return write


def csv_with_header(name: str, filename: str) -> Callable[[Path], None]:
    """CSV with a header row, label last."""

    def write(folder: Path) -> None:
        _frame(name).to_csv(folder / filename, index=False)

    return write


def features_only(name: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        _frame(name).drop(columns=[_label(name)]).to_csv(folder / "X.csv", index=False)

    return write


def labels_only(name: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        _frame(name)[[_label(name)]].to_csv(folder / "y.csv", index=False)

    return write


def npz(name: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        frame = _frame(name)
        np.savez(folder / "train.npz", x=frame.drop(columns=[_label(name)]).to_numpy(), y=frame[_label(name)].to_numpy())

    return write


# -- what must come out --------------------------------------------------------------------


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred).ravel() == y))


def accuracy_at_half(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(pred).ravel() > 0.5) == y))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    pred = np.asarray(pred, dtype=float).ravel()
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2))


@dataclass(frozen=True)
class Eval:
    """Rows to predict on (every ``step``-th row of a dataset), and the score they must reach."""

    dataset: str
    score: Callable[[np.ndarray, np.ndarray], float]
    at_least: float
    step: int = 5

    def rows(self) -> tuple[pd.DataFrame, np.ndarray]:
        frame = _frame(self.dataset).iloc[:: self.step]
        return frame.drop(columns=[_label(self.dataset)]), frame[_label(self.dataset)].to_numpy()


@dataclass(frozen=True)
class Case:
    """One training script and its data, as a Kiln job would get them."""

    name: str  # its folder under scripts/
    channels: Mapping[str, Callable[[Path], None]]
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    entry_point: str = "train.py"
    source_dir: str = "."  # inside the case folder
    dependencies: tuple[str, ...] = ()  # folders inside the case folder, shipped beside the code
    framework: str = "sklearn"
    content_types: Mapping[str, str] = field(default_factory=dict)
    metric_definitions: tuple[Mapping[str, str], ...] = ()
    # expected
    exit_code: int = 0
    failure: str | None = None  # text the failure reason must hold
    metrics: Mapping[str, int] = field(default_factory=dict)  # metric name -> values found in the log
    files: Mapping[str, str | None] = field(default_factory=dict)  # job-folder path -> content (None: exists)
    predict: Eval | None = None
    run_metrics: tuple[str, ...] = ()  # metrics the script logs to its Kiln run (KILN_RUN_ID)
    requires: tuple[str, ...] = ()  # modules the case needs importable

    def __str__(self) -> str:
        return self.name


_XGB_RMSE = r".*\[[0-9]+\].*validation-rmse:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*"

CASES: tuple[Case, ...] = (
    Case(
        "sklearn_iris", {"train": csv_label_first("iris", files=3)}, {"max_leaf_nodes": 30},
        files={"model/model.joblib": None}, predict=Eval("iris", accuracy, 0.95),
    ),
    Case(
        "breast_cancer_inference", {"train": csv_with_header("cancer", "breast_cancer.csv")}, {"C": 0.5, "max_iter": 500},
        content_types={"train": "text/csv"}, predict=Eval("cancer", accuracy, 0.95, step=10),
    ),
    Case(
        "diabetes_labels_pickle", {"features": features_only("diabetes"), "labels": labels_only("diabetes")}, {"alpha": 0.01, "fit_intercept": True},
        files={"model/model.pkl": None}, predict=Eval("diabetes", r2, 0.4),
    ),
    Case("npz_training", {"training": npz("cancer")}, {"max-iter": 300, "penalty": "l2"}, predict=Eval("cancer", accuracy, 0.95, step=10)),
    Case(
        "mlp_list_hps", {"train": csv_with_header("iris", "iris.csv")},
        {"layers": "16 8", "early_stopping": False, "solver_opts": {"alpha": 0.001, "tol": 0.0001}, "seeds": [3, 4], "activation": "tanh"},
        files={
            "output/data/args.json": '{"layers": [16, 8], "early_stopping": false, "solver_opts": {"alpha": 0.001, "tol": 0.0001}, "seeds": [3, 4], '
            '"activation": "tanh", "hps": {"activation": "tanh", "early_stopping": false, "layers": "16 8", "seeds": [3, 4], "solver_opts": {"alpha": 0.001, "tol": 0.0001}}}',
        },
        predict=Eval("iris", accuracy, 0.9),
    ),
    Case(
        "helper_dependency", {"train": csv_with_header("iris", "iris.csv")}, {"max_depth": 4},
        source_dir="src", dependencies=("mylib",), files={"code/mylib/features.py": None}, predict=Eval("iris", accuracy, 0.95),
    ),
    Case(
        "xgboost_native", {"train": csv_label_first("diabetes", files=2, rows=slice(0, 350)), "validation": csv_label_first("diabetes", rows=slice(350, None))},
        {"max_depth": 3, "eta": 0.2, "gamma": 0, "min_child_weight": 1, "subsample": 1.0, "verbosity": 1, "objective": "reg:squarederror", "num_round": 20},
        framework="xgboost", content_types={"train": "text/csv", "validation": "text/csv"},
        metric_definitions=({"Name": "validation:rmse", "Regex": _XGB_RMSE},), metrics={"validation:rmse": 20},
        files={"model/xgboost-model": None}, predict=Eval("diabetes", r2, 0.5),
    ),
    Case(
        "xgboost_pickle_model_fn", {"train": csv_label_first("cancer", stem="train")}, {"num_round": 10, "max_depth": 3, "objective": "binary:logistic"},
        framework="xgboost", predict=Eval("cancer", accuracy_at_half, 0.95, step=10),
    ),
    Case(
        "lightgbm_native", {"train": csv_with_header("diabetes", "diabetes.csv")}, {"num_leaves": 15, "learning_rate": 0.1, "num_boost_round": 30, "objective": "regression"},
        framework="lightgbm", files={"model/model.txt": None}, predict=Eval("diabetes", r2, 0.5),
    ),
    Case("failure_file", {}, {"n_estimators": -1}, exit_code=255, failure="Exception during training: n_estimators must be positive, got -1\nTraceback"),
    Case("missing_channel", {"train": csv_with_header("iris", "iris.csv")}, exit_code=1, failure="KeyError: 'SM_CHANNEL_TEST'"),
    Case(
        "kiln_load_run", {"train": csv_with_header("iris", "iris.csv")}, {"max_iter": 500, "solver": "lbfgs"},
        run_metrics=("train:accuracy",), predict=Eval("iris", accuracy, 0.9),
    ),
    Case(
        "printed_metrics", {"train": csv_label_first("cancer", stem="train")}, {"epochs": 4, "learning-rate": 0.01},
        metric_definitions=({"Name": "train:loss", "Regex": r"loss=([0-9.]+)"}, {"Name": "train:accuracy", "Regex": r"accuracy=([0-9.]+)"}),
        metrics={"train:loss": 4, "train:accuracy": 4}, predict=Eval("cancer", accuracy, 0.9, step=10),
    ),
    Case(
        "shell_entry", {}, {"layers": "64 32", "K": 3}, entry_point="train.sh",
        files={"model/args.txt": "-K\n3\n--layers\n64 32\n", "output/data/layers.txt": "64 32\n"},
    ),
    Case(
        "toolkit_environment", {"train": csv_with_header("iris", "iris.csv")}, {"n_estimators": 10, "max_depth": 3},
        requires=("sagemaker_training",), predict=Eval("iris", accuracy, 0.9),
    ),
    Case("transform_fn_json", {"train": csv_with_header("iris", "iris.csv")}, {"k": 3, "weights": "distance"}, predict=Eval("iris", accuracy, 0.95)),
)


# -- running a case ---------------------------------------------------------------------------


@dataclass
class Result:
    layout: TrainingLayout
    argv: list[str]
    exit_code: int
    log: str
    metrics: dict[str, list[float]]
    failure_reason: str | None
    package: Path | None
    source_sha256: str
    requirements: list[str] | None


def run_case(case: Case, work: Path, *, extra_env: Mapping[str, str] | None = None, timeout: float = 120) -> Result:
    """Run one case as a Kiln job would, with the contract functions only."""
    src = SCRIPTS / case.name
    archive = work / "sourcedir.tar.gz"
    sha = pack_source(source_dir=src / case.source_dir, entry_point=case.entry_point, dependencies=[src / d for d in case.dependencies], out=archive)
    layout = make_layout(work / "job", list(case.channels))
    unpack_source(archive, layout.code)
    requirements = requirements_command(layout.code, work / "deps")
    for name, write in case.channels.items():
        write(layout.channel(name))
    channels = {name: case.content_types.get(name) for name in case.channels}
    write_configs(layout, hyperparameters=case.hyperparameters, channels=channels, hosts=["algo-1"], current_host="algo-1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update(extra_env or {})
    env.update(
        training_env(
            layout, entry_point=case.entry_point, hyperparameters=case.hyperparameters, channels=channels, hosts=["algo-1"],
            current_host="algo-1", job_name=f"case-{case.name}", num_cpus=1, num_gpus=0, pythonpath=os.environ.get("PYTHONPATH"),
        )
    )
    argv = training_argv(case.entry_point, case.hyperparameters, python=sys.executable, code_dir=layout.code)
    proc = subprocess.run(argv, cwd=layout.code, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    match = metric_matcher(case.metric_definitions)
    metrics: dict[str, list[float]] = defaultdict(list)
    for line in proc.stdout.splitlines():
        for name, value in match(line):
            metrics[name].append(value)
    ok = proc.returncode == 0
    reason = None if ok else failure_reason(layout, proc.stdout[-4000:], proc.returncode)
    package = model_package(layout.model, layout.code, work / "package") if ok else None
    return Result(layout, argv, proc.returncode, proc.stdout, dict(metrics), reason, package, sha, requirements)


def load_package(case: Case, result: Result) -> Predictor:
    """Load a case's model package through the sagemaker flavor (trusted: this job made it)."""
    assert result.package is not None
    options = {"entry_point": case.entry_point, "framework": case.framework, "source_sha256": result.source_sha256}
    manifest = new_manifest(result.package, flavor="sagemaker", options=options, origin="kiln")
    flavor = get_flavor("sagemaker")
    flavor.check(result.package, manifest)
    return flavor.load(result.package, manifest, LoadOptions(trust_pickle=True))
