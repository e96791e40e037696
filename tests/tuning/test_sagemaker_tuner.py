"""SageMaker's tuner example shapes, unchanged but for the import: the XGBoost built-in tuned on
validation:auc, and a script-mode job with regex metric definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln.sagemaker import Estimator, SKLearn, image_uris
from kiln.sagemaker.tuner import (
    CategoricalParameter, ContinuousParameter, HyperparameterTuner, IntegerParameter, WarmStartConfig, WarmStartTypes,
)

from .conftest import SCORE, SCRIPTS



def _csv(path: Path, y: np.ndarray, X: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", fmt="%.6g")
    return str(path.parent)


def test_xgboost_built_in_tuned_on_validation_auc(client: kiln.Client, tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, valid = order[:400], order[400:]
    inputs = {"train": _csv(tmp_path / "train" / "train.csv", y[train], X[train]),
              "validation": _csv(tmp_path / "validation" / "validation.csv", y[valid], X[valid])}
    xgb = Estimator(image_uri=image_uris.retrieve("xgboost", "us-east-1", "1.7-1"), role="arn:aws:iam::1:role/x", instance_count=1,
                    instance_type="ml.m5.xlarge", output_path="s3://bucket/out", client=client)
    xgb.set_hyperparameters(objective="binary:logistic", eval_metric="auc", num_round=5)
    tuner = HyperparameterTuner(xgb, "validation:auc", {"eta": ContinuousParameter(0.05, 0.5, "Logarithmic"), "max_depth": IntegerParameter(2, 4)},
                                max_jobs=2, max_parallel_jobs=2, base_tuning_job_name="xgb-tune")
    tuner.fit(inputs)
    best = tuner.best_training_job()
    assert best.startswith("xgb-tune-") and client.jobs.get(best).metrics["validation:auc"] > 0.9
    frame = tuner.analytics().dataframe()
    assert set(frame.columns) >= {"eta", "max_depth", "TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue", "TrainingElapsedTimeSeconds"}
    assert len(frame) == 2 and frame["FinalObjectiveValue"].max() == client.jobs.get(best).metrics["validation:auc"]
    assert all(0.05 <= e <= 0.5 for e in frame["eta"]) and set(frame["max_depth"]) <= {2, 3, 4}
    described = tuner.describe()
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["BestTrainingJob"]["TrainingJobName"] == best
    assert described["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:auc"}
    # The best estimator carries the model the best job registered.
    assert tuner.best_estimator().model_data == client.jobs.get(best).outputs["model"]
    # attach: a tuner for the job by name, as after a notebook restart.
    again = HyperparameterTuner.attach(tuner.latest_tuning_job.name, client=client)
    assert again.best_training_job() == best and again.estimator.algorithm == "xgboost"
    assert set(again.hyperparameter_ranges()["IntegerParameterRanges"][0]) == {"Name", "MinValue", "MaxValue", "ScalingType"}


def test_script_mode_with_regex_metric_definitions_and_warm_start(client: kiln.Client) -> None:
    est = SKLearn(entry_point="quadratic.py", source_dir=str(SCRIPTS), role="r", instance_type="ml.m5.large", framework_version="1.2-1",
                  hyperparameters={"steps": 2}, client=client)
    ranges = {"lr": ContinuousParameter(0.0, 1.0), "kind": CategoricalParameter(["a", "b"])}
    tuner = HyperparameterTuner(est, "score", ranges, metric_definitions=SCORE, objective_type="Maximize", max_jobs=3, max_parallel_jobs=3,
                                random_seed=1, base_tuning_job_name="sk")
    tuner.fit(job_name="sk-parent")
    assert tuner.describe()["TrainingJobStatusCounters"]["Completed"] == 3
    child = HyperparameterTuner(est, "score", {"lr": ContinuousParameter(0.1, 0.6)}, metric_definitions=SCORE, max_jobs=1,
                                warm_start_config=WarmStartConfig(WarmStartTypes.IDENTICAL_DATA_AND_ALGORITHM, parents={"sk-parent"}))
    child.fit(job_name="sk-child")
    job = client.tuning.get("sk-child")
    assert job.warm_start_type == "IdenticalDataAndAlgorithm" and job.warm_start_parents == ["sk-parent"]
    assert job.static_hyperparameters == {"steps": 2} and 0.1 <= job.trials[0].hyperparameters["lr"] <= 0.6
    assert child.describe()["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [{"HyperParameterTuningJobName": "sk-parent"}]
