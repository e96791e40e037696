"""Declarations, coercion, metric definitions and loading, without running a job."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

import kiln.training.builtin as builtin
from kiln.training.builtin import BuiltinError, Hyperparameter, get_algorithm, load_builtin, metric_definitions
from kiln.training.builtin._base import coerce_hyperparameters, quality_line

ALGORITHMS = ["kmeans", "knn", "lightgbm", "linear-learner", "random-forest", "xgboost"]


def test_the_six_builtins_are_registered_and_the_package_exports_what_it_says():
    assert builtin.algorithm_names() == ALGORITHMS
    assert sorted(builtin.__all__) == builtin.__all__ and all(hasattr(builtin, name) for name in builtin.__all__)


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("int", "5", 5), ("int", 5.0, 5), ("int", "+7", 7), ("float", "0.1", 0.1), ("float", 3, 3.0), ("bool", "true", True),
    ("bool", "False", False), ("bool", 1, True), ("str", "gbtree", "gbtree"), ("list", '["msd", "ssd"]', ("msd", "ssd")),
    ("list", "msd,ssd", ("msd", "ssd")), ("list", ["ssd"], ("ssd",)),
])
def test_values_arrive_as_strings_or_json_and_are_coerced_by_type(kind, raw, expected):
    assert Hyperparameter("h", kind).coerce(raw) == expected


@pytest.mark.parametrize(("hp", "raw", "message"), [
    (Hyperparameter("max_depth", "int", min=0), "x", "hyperparameter max_depth must be an integer ≥ 0, got 'x'"),
    (Hyperparameter("n", "int", min=1), True, "must be an integer ≥ 1, got True"),
    (Hyperparameter("eta", "float", min=0, max=1), "1.5", "must be a number ≥ 0 and ≤ 1, got '1.5'"),
    (Hyperparameter("eta", "float"), "nan", "must be a number, got 'nan'"),
    (Hyperparameter("lr", "float", min=0, min_open=True, auto=True), 0, 'must be a number > 0 or "auto", got 0'),
    (Hyperparameter("flag", "bool"), "yes", "must be true or false, got 'yes'"),
    (Hyperparameter("booster", "str", choices=("gbtree", "dart")), "gblinear", "must be one of gbtree, dart, got 'gblinear'"),
    (Hyperparameter("m", "list", choices=("msd", "ssd")), '["mse"]', "must be a list of one of msd, ssd"),
])
def test_a_bad_value_names_the_rule(hp, raw, message):
    with pytest.raises(BuiltinError, match=re.escape(message)):
        hp.coerce(raw)


def test_reserved_names_are_skipped_aliases_resolve_and_defaults_fill_in():
    declared = get_algorithm("xgboost").hyperparameters
    given = {"num_round": "3", "learning_rate": "0.2", "sagemaker_program": "x", "_tuning_objective_metric": "validation:auc"}
    values = coerce_hyperparameters("xgboost", declared, given)
    assert values == {"num_round": 3, "eta": 0.2, "objective": "reg:squarederror", "seed": 0, "csv_weights": 0}


@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_default_is_valid_and_metric_names_are_unique(name):
    cls = get_algorithm(name)
    for hp in cls.hyperparameters:
        if hp.default is not None:
            assert hp.coerce(hp.default) == hp.default, hp.name
    names = [d["Name"] for d in metric_definitions(name)]
    assert len(names) == len(set(names)) and all(re.compile(d["Regex"]).groups == 1 for d in metric_definitions(name))


def test_quality_lines_are_read_by_sagemakers_own_kmeans_definition():
    line = quality_line("algo-1", "test", "msd", 0.25, maximize=False)
    assert re.search(r"#quality_metric: host=\S+, test msd <loss>=(\S+)", line).group(1) == "0.25"
    epoch = quality_line("algo-1", "train", "objective_loss", 0.5, maximize=False, epoch=2)
    ours = {d["Name"]: d["Regex"] for d in metric_definitions("linear-learner")}
    assert re.search(ours["train:objective_loss"], epoch).group(1) == "0.5"


def test_xgboost_model_file_reads_back_with_the_plain_library(tmp_path):
    import xgboost as xgb

    from kiln.training.builtin._env import TrainingEnv
    from kiln.training.builtin._xgboost import XGBoost

    X = np.random.default_rng(0).random((60, 3)).astype(np.float32)
    env = TrainingEnv(hyperparameters={}, channels={}, content_types={}, model_dir=tmp_path, output_dir=tmp_path, output_data_dir=tmp_path, num_cpus=1)
    algo = XGBoost(hyperparameters={"num_round": 4, "objective": "reg:squarederror", "seed": 0}, env=env)
    algo.fit(builtin._data.Channels(train=builtin._data.Frame(X=X, y=X[:, 0]))).save(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the name has no extension: xgboost says it guesses UBJSON
        booster = xgb.Booster(model_file=str(tmp_path / "xgboost-model"))
    assert booster.num_boosted_rounds() == 4
    assert np.allclose(booster.predict(xgb.DMatrix(X)), algo.booster_.predict(xgb.DMatrix(X)))


def test_load_builtin_trusts_only_the_types_its_algorithm_saves(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(make_pipeline(FunctionTransformer(np.exp)), tmp_path / "model.skops")
    (tmp_path / "kiln-algorithm.json").write_text(json.dumps({"algorithm": "kmeans", "model_file": "model.skops", "task": "clustering"}))
    with pytest.raises(BuiltinError, match="refusing to load it"):
        load_builtin(tmp_path)


@pytest.mark.parametrize("model_file", ["../model.skops", "/etc/passwd", "..", ""])
def test_load_builtin_refuses_a_model_file_outside_its_folder(tmp_path, model_file):
    (tmp_path / "kiln-algorithm.json").write_text(json.dumps({"algorithm": "kmeans", "model_file": model_file}))
    with pytest.raises(BuiltinError, match="must be a file name inside"):
        load_builtin(tmp_path)


def test_a_missing_optional_library_names_the_extra():
    from kiln.training.builtin._base import require

    with pytest.raises(BuiltinError, match=r"needs no_such_lib: pip install 'kiln\[ml\]'"):
        require("no_such_lib")
