"""Bad inputs fail with one sentence in output/failure; the other data formats train."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from kiln.training.builtin import load_builtin

from .conftest import split, write_csv


def iris_table(names: bool = True) -> pa.Table:
    Xt, yt, _, _ = split("iris")
    species = np.array(["setosa", "versicolor", "virginica"])[yt.astype(int)]
    return pa.table({"sepal_l": Xt[:, 0], "sepal_w": Xt[:, 1], "petal_l": Xt[:, 2], "petal_w": Xt[:, 3],
                     "species": species if names else yt})


def bad_csv(job, text):
    (job.channel("train") / "data.csv").write_text(text)


def good_csv(job):
    Xt, yt, _, _ = split("breast_cancer")
    write_csv(job.channel("train") / "data.csv", yt, Xt)


BAD = [
    ("xgboost", {}, good_csv, "hyperparameter num_round is required for xgboost"),
    ("xgboost", {"num_round": 5, "depth": 3}, good_csv, "unknown hyperparameter 'depth' for xgboost; known hyperparameters are: alpha, base_score"),
    ("xgboost", {"num_round": 5, "max_depth": "x"}, good_csv, "hyperparameter max_depth must be an integer ≥ 0, got 'x'"),
    ("xgboost", {"num_round": "2.5"}, good_csv, "hyperparameter num_round must be an integer ≥ 1, got '2.5'"),
    ("xgboost", {"num_round": 5, "subsample": 0}, good_csv, "hyperparameter subsample must be a number > 0 and ≤ 1, got 0"),
    ("xgboost", {"num_round": 5, "eval_metric": "accuracyy"}, good_csv, "eval_metric 'accuracyy' is not an XGBoost metric"),
    ("xgboost", {"num_round": 5, "objective": "multi:softmax"}, good_csv, "hyperparameter num_class is required when objective is multi:softmax"),
    ("linear-learner", {"predictor_type": "classifier"}, good_csv, "predictor_type must be one of binary_classifier, multiclass_classifier, regressor"),
    ("linear-learner", {"predictor_type": "multiclass_classifier"}, good_csv, "num_classes is required when predictor_type is multiclass_classifier"),
    ("knn", {"k": 3, "predictor_type": "classifier", "target": "y"}, good_csv, "with hyperparameter target set, CSV needs a header row"),
    ("xgboost", {"num_round": 2, "objective": "binary:logistic"}, lambda job: bad_csv(job, "3,1.0\n2,2.0\n"),
     "objective binary:logistic needs labels 0 and 1 (or probabilities in [0, 1]); the label has 3"),
    ("lightgbm", {}, lambda job: job.channel("train"), "channel train has no files"),
    ("lightgbm", {}, lambda job: bad_csv(job, ""), "channel train has no rows"),
    ("lightgbm", {}, lambda job: bad_csv(job, "y,a,b\n1,2,3\n"), "starts with a header row (y, a, b...)"),
    ("lightgbm", {}, lambda job: bad_csv(job, "1,2,3\n1,2\n"), "data.csv is not readable as CSV"),
    ("lightgbm", {"target": "label"}, lambda job: pq.write_table(iris_table(), job.channel("train") / "d.parquet"),
     "column 'label' not found in channel train; columns are: sepal_l, sepal_w, petal_l, petal_w, species"),
    ("lightgbm", {"target": "sepal_l"}, lambda job: pq.write_table(iris_table(), job.channel("train") / "d.parquet"),
     "column 'species' is string, not a number"),
    ("kmeans", {"k": 2}, lambda job: bad_csv(job, "1,2\n,3\n4,5\n"), "1 row(s) with missing or infinite features"),
    ("kmeans", {"k": 9}, lambda job: bad_csv(job, "1,2\n3,4\n"), "k is 9 but the train channel has only 2 rows"),
    ("kmeans", {"k": 2}, lambda job: bad_csv(job, "a,b\n3,4\n"), "starts with a header row (a, b...); this algorithm reads headerless CSV"),
    ("xgboost", {"num_round": 2, "csv_weights": 1, "target": "y"}, lambda job: bad_csv(job, "y,a\n1,2\n"), "csv_weights=1 applies to headerless CSV"),
    ("random-forest", {"predictor_type": "classifier"}, lambda job: (good_csv(job), job.channel("extra")), "channel extra is not read by this algorithm"),
    ("no-such-algo", {}, good_csv, "unknown built-in algorithm 'no-such-algo'; the built-ins are: kmeans, knn, lightgbm"),
]


@pytest.mark.parametrize(("algorithm", "hps", "setup", "message"), BAD, ids=[m[:40] for *_, m in BAD])
def test_bad_input_fails_with_an_actionable_reason(job, algorithm, hps, setup, message):
    setup(job)
    result = job.run(algorithm, hps)
    assert result.returncode != 0
    assert message in job.failure, job.failure
    assert f"Error: {job.failure.strip()}" in result.stderr
    assert not (job.model_dir / "kiln-algorithm.json").exists()


def test_a_library_error_is_reported_with_its_first_line(job):
    bad_csv(job, "-3,1.0\n2,2.0\n")
    assert job.run("xgboost", {"num_round": 2, "objective": "count:poisson"}).returncode == 1
    assert job.failure.startswith("xgboost failed: XGBoostError: ") and "label must be non-negative" in job.failure
    assert "/workspace/" not in job.failure and "Traceback" in job.result.stderr


def test_parquet_with_target_and_string_labels(job):
    pq.write_table(iris_table(), job.channel("train") / "part-0.parquet")
    assert job.run("xgboost", {"num_round": 10, "objective": "multi:softprob", "target": "species"}).returncode == 0, job.result.stderr
    model = load_builtin(job.model_dir)
    assert model.manifest["classes"] == ["setosa", "versicolor", "virginica"] and model.manifest["label_encoding"] == "classes"
    assert model.manifest["feature_names"] == ["sepal_l", "sepal_w", "petal_l", "petal_w"]
    _, _, Xv, yv = split("iris")
    assert np.mean(model.predict(Xv) == np.array(["setosa", "versicolor", "virginica"])[yv.astype(int)]) > 0.9


def test_csv_with_header_and_target_column(job):
    table = iris_table(names=False).select(["species", "sepal_l", "sepal_w", "petal_l", "petal_w"])
    pacsv.write_csv(table, job.channel("train") / "iris.csv")
    assert job.run("random-forest", {"predictor_type": "classifier", "target": "species", "n_estimators": 10}).returncode == 0, job.result.stderr
    manifest = load_builtin(job.model_dir).manifest
    assert manifest["label"] == {"column": "species", "source": "target"} and manifest["feature_count"] == 4


def test_libsvm_for_xgboost(job):
    (job.channel("train") / "train.libsvm").write_text("".join(f"{i % 2} 1:{i % 2 + 0.1 * i} 3:{i}\n" for i in range(40)))
    result = job.run("xgboost", {"num_round": 5, "objective": "binary:logistic"}, content_types={"train": "text/libsvm"})
    assert result.returncode == 0, result.stderr
    model = load_builtin(job.model_dir)
    assert model.manifest["feature_count"] == 4 and model.predict(np.array([[0, 1.1, 0, 9]])).tolist() == [1]


def test_content_type_the_algorithm_does_not_read(job):
    good_csv(job)
    assert job.run("lightgbm", {}, content_types={"train": "text/libsvm"}).returncode != 0
    assert "channel train is libsvm, which this algorithm does not read; accepted: text/csv, application/x-parquet" in job.failure


@pytest.mark.parametrize(("algorithm", "host", "message"), [
    ("xgboost", "algo-1", "algo-2 did not join algo-1 within 1 s"),
    ("lightgbm", "algo-2", "algo-2 could not reach algo-1 at 127.0.0.1:{port} within 1 s"),
])
def test_a_host_whose_peer_never_comes_fails_within_the_time_limit(job, algorithm, host, message):
    from kiln.training.builtin._collective import free_port

    Xt, yt, _, _ = split("breast_cancer")
    for i in range(2):
        write_csv(job.channel("train") / f"part-{i}.csv", yt[i::2], Xt[i::2])
    port = free_port("127.0.0.1")
    hosts_env = {"KILN_HOST_ADDRESSES": '{"algo-1":"127.0.0.1","algo-2":"127.0.0.1"}', "KILN_DIST_PORT": str(port), "KILN_DIST_TIMEOUT_S": "1"}
    hps = {"num_round": 3} if algorithm == "xgboost" else {"num_boost_round": 3}
    result = job.run(algorithm, hps, hosts=["algo-1", "algo-2"], host=host, extra_env=hosts_env)
    assert result.returncode != 0
    assert f"channel train: {len(yt[int(host[-1]) - 1::2])} rows" in result.stdout  # its own shard
    assert message.format(port=port) in job.failure


def test_several_hosts_without_the_runners_addresses_are_refused(job):
    Xt, yt, _, _ = split("breast_cancer")
    for i in range(2):
        write_csv(job.channel("train") / f"part-{i}.csv", yt[i::2], Xt[i::2])
    assert job.run("xgboost", {"num_round": 3}, hosts=["algo-1", "algo-2"]).returncode != 0
    assert "2 hosts train together only when KILN_HOST_ADDRESSES and KILN_DIST_PORT say where they are" in job.failure


def test_job_folder_alone_without_sm_variables(job):
    good_csv(job)
    result = job.run("xgboost", {"num_round": 3, "objective": "binary:logistic"}, sm_env=False)
    assert result.returncode == 0, result.stderr
    assert json.loads((job.model_dir / "kiln-algorithm.json").read_text())["hyperparameters"]["num_round"] == 3


def test_xgboost_weights_column_and_early_stopping_on_the_tuning_objective(job):
    Xt, yt, Xv, yv = split("breast_cancer")
    write_csv(job.channel("train") / "d.csv", yt, np.column_stack([np.ones_like(yt), Xt]))
    write_csv(job.channel("validation") / "d.csv", yv, np.column_stack([np.ones_like(yv), Xv]))
    hps = {"num_round": 300, "eta": 0.5, "early_stopping_rounds": 3, "csv_weights": 1, "objective": "binary:logistic",
           "_tuning_objective_metric": "validation:auc"}
    assert job.run("xgboost", hps).returncode == 0, job.result.stderr
    model = load_builtin(job.model_dir)
    assert model.manifest["feature_count"] == Xt.shape[1] and model.manifest["num_boosted_rounds"] < 300
    assert job.metrics("xgboost")["validation:auc"]


def test_lightgbm_stops_early_on_validation_and_saves_the_best_iteration(dataset_job):
    job, Xv, yv = dataset_job("breast_cancer")
    assert job.run("lightgbm", {"num_boost_round": 500, "learning_rate": 0.3, "early_stopping_rounds": 5}).returncode == 0
    manifest = load_builtin(job.model_dir).manifest
    assert manifest["best_iteration"] is not None and manifest["num_boosted_rounds"] == manifest["best_iteration"] < 500


def test_boolean_labels_are_zero_and_one(job):
    Xt, yt, _, _ = split("breast_cancer")
    pq.write_table(pa.table({"a": Xt[:, 0], "b": Xt[:, 20], "sick": yt == 0}), job.channel("train") / "d.parquet")
    assert job.run("lightgbm", {"target": "sick", "num_boost_round": 10}).returncode == 0, job.result.stderr
    model = load_builtin(job.model_dir)
    assert model.manifest["objective"] == "binary" and np.mean(model.predict(np.column_stack([Xt[:, 0], Xt[:, 20]])) == (yt == 0)) > 0.85
