"""Each built-in trains on a bundled dataset through `python -m kiln.training.builtin`, like a job."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kiln.training.builtin import load_builtin

R2 = "r2"
# (algorithm, dataset, hyperparameters as SageMaker's API sends them (strings), score, floor, a metric it must log)
CASES = [
    ("xgboost", "breast_cancer", {"num_round": "30", "objective": "binary:logistic", "max_depth": "3"}, "accuracy", 0.9, "validation:logloss"),
    ("xgboost", "iris", {"num_round": "20", "objective": "multi:softprob", "num_class": "3", "eval_metric": "merror"}, "accuracy", 0.9, "validation:merror"),
    ("xgboost", "diabetes", {"num_round": "30", "eta": "0.1", "max_depth": "2"}, R2, 0.3, "train:rmse"),
    ("lightgbm", "breast_cancer", {"num_boost_round": "50"}, "accuracy", 0.9, "validation:binary_logloss"),
    ("lightgbm", "iris", {"num_boost_round": "30", "objective": "multiclass"}, "accuracy", 0.9, "validation:multi_logloss"),
    ("lightgbm", "diabetes", {"num_boost_round": "50", "learning_rate": "0.05", "num_leaves": "8"}, R2, 0.3, "validation:rmse"),
    ("linear-learner", "breast_cancer", {"predictor_type": "binary_classifier"}, "accuracy", 0.9, "validation:binary_classification_accuracy"),
    ("linear-learner", "iris", {"predictor_type": "multiclass_classifier", "num_classes": "3", "epochs": "30"}, "accuracy", 0.85, "validation:multiclass_accuracy"),
    ("linear-learner", "diabetes", {"predictor_type": "regressor"}, R2, 0.3, "validation:mse"),
    ("random-forest", "breast_cancer", {"predictor_type": "classifier", "n_estimators": "30"}, "accuracy", 0.9, "validation:accuracy"),
    ("random-forest", "diabetes", {"predictor_type": "regressor", "n_estimators": "30", "min_samples_leaf": "5"}, R2, 0.3, "validation:r2"),
    ("knn", "iris", {"k": "5", "predictor_type": "classifier"}, "accuracy", 0.9, "test:accuracy"),
    ("knn", "diabetes", {"k": "10", "predictor_type": "regressor", "sample_size": "300"}, R2, 0.2, "test:mse"),
]
NATIVE = {"xgboost": ("xgboost-model", b"{"), "lightgbm": ("model.txt", b"tree"), "linear-learner": ("model.skops", b"PK"),
          "random-forest": ("model.skops", b"PK"), "knn": ("model.skops", b"PK"), "kmeans": ("model.skops", b"PK")}


def score(kind: str, y: np.ndarray, pred: np.ndarray) -> float:
    if kind == R2:
        return float(1 - np.mean((y - pred) ** 2) / np.var(y))
    return float(np.mean(pred == y))


@pytest.mark.parametrize(("algorithm", "dataset", "hps", "kind", "floor", "metric"), CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_trains_saves_natively_and_predicts(dataset_job, algorithm, dataset, hps, kind, floor, metric):
    job, Xv, yv = dataset_job(dataset, validation="test" if algorithm == "knn" else "validation")
    result = job.run(algorithm, hps)
    assert result.returncode == 0, result.stderr[-2000:]
    name, magic = NATIVE[algorithm]
    assert (job.model_dir / name).read_bytes().startswith(magic)
    manifest = json.loads((job.model_dir / "kiln-algorithm.json").read_text())
    assert (manifest["algorithm"], manifest["feature_count"], manifest["model_file"]) == (algorithm, Xv.shape[1], name)
    model = load_builtin(job.model_dir)
    assert score(kind, yv, model.predict(Xv)) > floor
    values = job.metrics(algorithm)[metric]
    assert values and all(np.isfinite(values)) and job.unread_metric_lines(algorithm) == []


def test_kmeans_clusters_iris_and_logs_sagemakers_lines(dataset_job):
    job, Xv, yv = dataset_job("iris", label=False, validation="test")
    result = job.run("kmeans", {"k": "3", "init_method": "kmeans++", "eval_metrics": '["msd", "ssd"]'})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "#quality_metric: host=algo-1, test msd <loss>=" in result.stdout
    clusters = load_builtin(job.model_dir).predict(Xv)
    # Each cluster is mostly one species.
    purity = sum(np.bincount(yv[clusters == c].astype(int)).max() for c in np.unique(clusters)) / len(yv)
    assert purity > 0.8 and job.metrics("kmeans")["test:ssd"]


@pytest.mark.parametrize("algorithm", ["xgboost", "lightgbm", "random-forest", "linear-learner"])
def test_probabilities_follow_the_classes(dataset_job, algorithm):
    job, Xv, yv = dataset_job("iris")
    hps = {"xgboost": {"num_round": 10, "objective": "multi:softprob", "num_class": 3}, "lightgbm": {"objective": "multiclass", "num_boost_round": 10},
           "random-forest": {"predictor_type": "classifier"}, "linear-learner": {"predictor_type": "multiclass_classifier", "num_classes": 3}}[algorithm]
    assert job.run(algorithm, hps).returncode == 0, job.result.stderr[-2000:]
    model = load_builtin(job.model_dir)
    assert model.has_proba
    proba = model.predict_proba(Xv)
    assert proba.shape == (len(yv), 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(np.asarray(model.manifest["classes"])[proba.argmax(axis=1)], model.predict(Xv))
