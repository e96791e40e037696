"""The SageMaker script-mode contract (CONTRACTS.md §1): job folder, config files, command
line, environment, metrics and failure reasons, with the values the toolkit produces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kiln.core.errors import InvalidArgument
from kiln.training import (
    decode_hyperparameters,
    failure_reason,
    make_layout,
    metric_matcher,
    parse_hyperparameters,
    training_argv,
    training_env,
    write_configs,
)

PY = "/usr/bin/python3"
RESERVED = {
    "sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://b/k/sourcedir.tar.gz", "sagemaker_region": "us-east-1",
    "sagemaker_container_log_level": 20, "sagemaker_job_name": "j", "sagemaker_enable_cloudwatch_metrics": False,
    "sagemaker_s3_output": "s3://b/out", "_tuning_objective_metric": "validation:rmse", "default_user_module_name": "m",
    "sagemaker_mpi_enabled": True,
}
# The keys of the toolkit's Environment as a dict (its properties), i.e. of SM_TRAINING_ENV.
TRAINING_ENV_KEYS = {
    "additional_framework_parameters", "channel_input_dirs", "current_host", "current_instance_group", "current_instance_group_hosts",
    "current_instance_type", "distribution_hosts", "distribution_instance_groups", "framework_module", "hosts", "hyperparameters",
    "input_config_dir", "input_data_config", "input_dir", "instance_groups", "instance_groups_dict", "is_hetero", "is_master",
    "is_modelparallel_enabled", "is_smddpmprun_installed", "is_smddprun_installed", "job_name", "log_level", "master_hostname",
    "model_dir", "module_dir", "module_name", "network_interface_name", "num_cpus", "num_gpus", "num_neurons", "output_data_dir",
    "output_dir", "output_intermediate_dir", "resource_config", "topology", "user_entry_point",
}


@pytest.mark.parametrize(
    ("hps", "args"),
    [
        ({"epochs": 5}, ["--epochs", "5"]),
        ({"K": 5}, ["-K", "5"]),
        ({"lr": 0.1, "batch_size": 32, "a": 1}, ["-a", "1", "--batch_size", "32", "--lr", "0.1"]),
        ({"flag": True, "off": False}, ["--flag", "True", "--off", "False"]),
        ({"objective": "reg:squarederror"}, ["--objective", "reg:squarederror"]),
        ({"layers": "64 32"}, ["--layers", "64 32"]),
        ({"layers": [64, 32]}, ["--layers", "[64, 32]"]),
        ({"opts": {"b": 2, "a": "x y"}}, ["--opts", "a=x y,b=2"]),
        ({"learning-rate": 0.01, "max_depth": 3}, ["--learning-rate", "0.01", "--max_depth", "3"]),
        ({"nothing": None, "name": "it's \"quoted\""}, ["--name", "it's \"quoted\"", "--nothing", ""]),
        ({**RESERVED, "epochs": 1}, ["--epochs", "1"]),
        ({}, []),
    ],
)
def test_argv_is_the_toolkits_to_cmd_args(hps: dict[str, Any], args: list[str]) -> None:
    assert training_argv("train.py", hps, python=PY) == [PY, "train.py", *args]


def test_shell_entry_points(tmp_path: Path) -> None:
    assert training_argv("train.sh", {"K": 2}) == ["/bin/sh", "train.sh", "-K", "2"]
    (tmp_path / "train.sh").write_text("#!/bin/bash -e\necho hi\n")
    assert training_argv("train.sh", {}, code_dir=tmp_path) == ["/bin/bash", "-e", "train.sh"]
    with pytest.raises(InvalidArgument, match="Python .* or shell"):
        training_argv("train.R", {})


def _env(tmp_path: Path, hps: dict[str, Any], channels: Any = ("train",), **kw: Any) -> dict[str, str]:
    names = list(channels)
    layout = make_layout(tmp_path / "job", names)
    args = {"hosts": ["algo-1"], "current_host": "algo-1", "job_name": "job-1", "num_cpus": 4, "num_gpus": 0, **kw}
    return training_env(layout, entry_point="train.py", hyperparameters=hps, channels=channels, **args)


@pytest.mark.parametrize(
    ("hps", "channels", "want"),
    [
        ({"epochs": 5, "lr": 0.1}, ["train"], {"SM_HP_EPOCHS": "5", "SM_HP_LR": "0.1", "SM_HPS": '{"epochs":5,"lr":0.1}', "SM_USER_ARGS": '["--epochs","5","--lr","0.1"]'}),
        ({"learning-rate": 0.1, "objective": "binary:logistic"}, ["train"], {"SM_HP_LEARNING-RATE": "0.1", "SM_HP_OBJECTIVE": "binary:logistic"}),
        ({"layers": [64, 32], "opts": {"b": 1, "a": True}, "flag": True}, ["train"], {"SM_HP_LAYERS": "[64,32]", "SM_HP_OPTS": '{"a":true,"b":1}', "SM_HP_FLAG": "true"}),
        ({"layers": "64 32"}, ["train"], {"SM_HP_LAYERS": "64 32", "SM_USER_ARGS": '["--layers","64 32"]'}),
        ({}, ["train", "features", "val-set"], {"SM_CHANNELS": '["features","train","val-set"]', "SM_HPS": "{}", "SM_USER_ARGS": "[]"}),
        (RESERVED, ["train"], {"SM_HPS": "{}", "SM_FRAMEWORK_PARAMS": '{"sagemaker_mpi_enabled":true}', "SM_MODULE_DIR": "s3://b/k/sourcedir.tar.gz", "SM_DISTRIBUTION_INSTANCE_GROUPS": '["homogeneousCluster"]'}),
        ({"sagemaker_container_log_level": 10}, ["train"], {"SM_LOG_LEVEL": "10", "SM_FRAMEWORK_PARAMS": "{}"}),
    ],
)
def test_env_values(tmp_path: Path, hps: dict[str, Any], channels: list[str], want: dict[str, str]) -> None:
    env = _env(tmp_path, hps, channels)
    assert {k: env.get(k) for k in want} == want
    assert not any(k.startswith("SM_HP_SAGEMAKER") or k == "SM_HP__TUNING_OBJECTIVE_METRIC" for k in env)


def test_env_names_paths_and_training_env(tmp_path: Path) -> None:
    env = _env(tmp_path, {"epochs": 5}, {"train": "text/csv", "features": None}, hosts=["algo-1", "algo-2"], current_host="algo-2", pythonpath="/x")
    job = tmp_path / "job"
    assert {k: env[k] for k in ("SM_MODEL_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_FEATURES", "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR", "SM_MODULE_DIR", "SAGEMAKER_BASE_DIR")} == {
        "SM_MODEL_DIR": f"{job}/model", "SM_CHANNEL_TRAIN": f"{job}/input/data/train", "SM_CHANNEL_FEATURES": f"{job}/input/data/features",
        "SM_OUTPUT_DATA_DIR": f"{job}/output/data", "SM_OUTPUT_DIR": f"{job}/output", "SM_MODULE_DIR": f"{job}/code", "SAGEMAKER_BASE_DIR": str(job),
    }
    assert {k: env[k] for k in ("SM_HOSTS", "SM_CURRENT_HOST", "SM_NUM_CPUS", "SM_NUM_GPUS", "SM_MODULE_NAME", "SM_USER_ENTRY_POINT", "SM_LOG_LEVEL")} == {
        "SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2", "SM_NUM_CPUS": "4", "SM_NUM_GPUS": "0",
        "SM_MODULE_NAME": "train", "SM_USER_ENTRY_POINT": "train.py", "SM_LOG_LEVEL": "20",
    }
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["ContentType"] == "text/csv"
    assert "ContentType" not in json.loads(env["SM_INPUT_DATA_CONFIG"])["features"]
    for name in ("SM_OUTPUT_INTERMEDIATE_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR", "SM_RESOURCE_CONFIG", "SM_CURRENT_INSTANCE_TYPE", "SM_NETWORK_INTERFACE_NAME", "SM_FRAMEWORK_PARAMS"):
        assert env[name]
    training = json.loads(env["SM_TRAINING_ENV"])
    assert set(training) == TRAINING_ENV_KEYS
    assert (training["hyperparameters"], training["is_master"], training["master_hostname"]) == ({"epochs": 5}, False, "algo-1")
    assert (env["PYTHONPATH"], env["PYTHONUNBUFFERED"], env["TRAINING_JOB_NAME"]) == (f"{job}/code:/x", "1", "job-1")


def test_config_files(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "job", ["train", "validation"])
    hps = {"num_round": 10, "eta": 0.2, "objective": "reg:squarederror", "layers": [1, 2], "flag": True}
    write_configs(layout, hyperparameters=hps, channels={"train": "text/csv", "validation": None}, hosts=["algo-1"], current_host="algo-1")
    raw = json.loads((layout.config / "hyperparameters.json").read_text())
    assert raw == {"num_round": "10", "eta": "0.2", "objective": '"reg:squarederror"', "layers": "[1, 2]", "flag": "true"}
    assert decode_hyperparameters(raw) == hps
    assert json.loads((layout.config / "inputdataconfig.json").read_text()) == {
        "train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None", "ContentType": "text/csv"},
        "validation": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
    }
    resources = json.loads((layout.config / "resourceconfig.json").read_text())
    assert (resources["current_host"], resources["hosts"], resources["network_interface_name"]) == ("algo-1", ["algo-1"], "eth0")
    with pytest.raises(InvalidArgument, match="current host 'algo-9'"):
        write_configs(layout, hyperparameters={}, channels={}, hosts=["algo-1"], current_host="algo-9")


def test_layout(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "job", ["train", "features"])
    for folder in (layout.code, layout.config, layout.channel("train"), layout.channel("features"), layout.model, layout.output_data, layout.intermediate, layout.checkpoints):
        assert folder.is_dir()
    assert (layout.failure_file, layout.output) == (tmp_path / "job/output/failure", tmp_path / "job/output")


@pytest.mark.parametrize("bad", ["../up", "a/b", "", "..", ".", "x" * 65, "sp ace", "a\\b"])
def test_bad_channel_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidArgument, match="channel name"):
        make_layout(tmp_path / "job", [bad])


@pytest.mark.parametrize(
    ("raw", "value"),
    [("5", 5), ("0.1", 0.1), ('"gbtree"', "gbtree"), ("gbtree", "gbtree"), ("[1, 2]", [1, 2]), ("true", True), ("64 32", "64 32"), ('{"a": 1}', {"a": 1})],
)
def test_decode_as_the_toolkit(raw: str, value: Any) -> None:
    assert decode_hyperparameters({"k": raw}) == {"k": value}


def test_parse_hyperparameters() -> None:
    assert parse_hyperparameters('{"epochs": 5, "layers": "64 32"}') == {"epochs": 5, "layers": "64 32"}
    assert parse_hyperparameters("  ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{epochs: 5}", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"a": NaN}', "must be a JSON value"),
        (json.dumps({"a": "x" * 2600}), "at most 2500"),
        (json.dumps({f"k{i}": i for i in range(101)}), "at most 100"),
        (json.dumps({"k" * 300: 1}), "invalid hyperparameter name"),
        (json.dumps({"a=b": 1}), "cannot hold '='"),
    ],
)
def test_bad_hyperparameters(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_hyperparameters(text)


def test_metric_matcher() -> None:
    match = metric_matcher([{"Name": "train:loss", "Regex": r"loss=([-0-9.e]+)"}, {"Name": "validation:rmse", "Regex": r"validation-rmse:([0-9.]+)"}])
    assert match("[3]\ttrain-rmse:1.5\tvalidation-rmse:2.25") == [("validation:rmse", 2.25)]
    assert match("epoch 1 loss=0.5 then loss=1e-3") == [("train:loss", 0.5), ("train:loss", 0.001)]
    assert match("loss=nan loss=. nothing") == []


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ([{"Name": "acc", "Regex": "acc=([0-9"}], "metric 'acc' has an invalid Regex"),
        ([{"Name": "acc", "Regex": "acc=[0-9]+"}], "metric 'acc'.*no capture group"),
        ([{"Regex": "a=(1)"}], "definition 0 needs a Name"),
        ([{"Name": "x", "Regex": ""}], "metric 'x' needs a Regex"),
        ("loss=(.*)", "must be a list"),
    ],
)
def test_bad_metric_definitions(definitions: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        metric_matcher(definitions)


def test_failure_reason(tmp_path: Path) -> None:
    layout = make_layout(tmp_path / "job", [])
    assert failure_reason(layout, "Traceback...\nKeyError: 'SM_CHANNEL_TEST'\n", 1) == (
        "the training script exited with code 1; end of its log:\nTraceback...\nKeyError: 'SM_CHANNEL_TEST'"
    )
    assert failure_reason(layout, "", -signal.SIGKILL) == "the training process was killed by signal SIGKILL"
    long = failure_reason(layout, "x" * 5000 + "END", 2)
    assert len(long) == 1024 and long.endswith("END")
    layout.failure_file.write_text("Exception during training: bad -C\n" + "y" * 2000)
    assert failure_reason(layout, "log", 255) == ("Exception during training: bad -C\n" + "y" * 2000)[:1024]


_DUMP = """
import json, sys
from sagemaker_training import environment
env = environment.Environment()
json.dump({"env_vars": env.to_env_vars(), "args": env.to_cmd_args(), "cpus": environment.num_cpus(), "gpus": environment.num_gpus()}, open(sys.argv[1], "w"))
"""


@pytest.mark.parametrize("hps", [{"epochs": 5, "K": 3, "layers": "64 32", "learning-rate": [1, 2], "opts": {"b": 2, "a": "x"}, "flag": True}, {**RESERVED, "lr": 0.1}])
def test_the_toolkit_reads_our_layout_and_agrees(tmp_path: Path, hps: dict[str, Any]) -> None:
    """sagemaker-training's own Environment(), in a script run with our environment,
    builds exactly our SM_* variables (SM_TRAINING_ENV included) and our arguments."""
    pytest.importorskip("sagemaker_training", reason="the dev extra installs sagemaker-training")
    channels = {"train": "text/csv", "features": None}
    layout = make_layout(tmp_path / "job", list(channels))
    write_configs(layout, hyperparameters=hps, channels=channels, hosts=["algo-1", "algo-2"], current_host="algo-2")
    (layout.code / "dump.py").write_text(_DUMP)
    args = {"entry_point": "train.py", "hyperparameters": hps, "channels": channels, "hosts": ["algo-1", "algo-2"], "current_host": "algo-2", "job_name": "job-1"}
    child = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    child.update(training_env(layout, **args, num_cpus=1, num_gpus=0))
    subprocess.run([sys.executable, "dump.py", str(tmp_path / "out.json")], cwd=layout.code, env=child, check=True, timeout=60)
    theirs = json.loads((tmp_path / "out.json").read_text())
    ours = training_env(layout, **args, num_cpus=theirs["cpus"], num_gpus=theirs["gpus"])
    assert {k: v for k, v in ours.items() if k.startswith("SM_")} == theirs["env_vars"]
    assert training_argv("train.py", hps)[2:] == theirs["args"]


def test_public_names() -> None:
    import kiln.training

    assert sorted(kiln.training.__all__) == kiln.training.__all__
    assert all(hasattr(kiln.training, name) for name in kiln.training.__all__)
