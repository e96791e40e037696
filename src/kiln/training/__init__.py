"""Training: the SageMaker script-mode contract (job folder, arguments, environment,
metrics, failures) and the packing of a job's code. The job runner calls these."""

from kiln.training._contract import (
    RESERVED_HYPERPARAMETERS,
    TrainingLayout,
    check_hyperparameters,
    decode_hyperparameters,
    hyperparameter_args,
    input_data_config,
    is_reserved,
    make_layout,
    parse_hyperparameters,
    resource_config,
    training_argv,
    training_env,
    write_configs,
)
from kiln.training._outcome import FAILURE_CHARS, failure_reason, metric_matcher
from kiln.training._source import (
    MAX_SOURCE_BYTES,
    model_package,
    pack_source,
    requirements_command,
    requirements_env,
    unpack_source,
)

__all__ = [
    "FAILURE_CHARS",
    "MAX_SOURCE_BYTES",
    "RESERVED_HYPERPARAMETERS",
    "TrainingLayout",
    "check_hyperparameters",
    "decode_hyperparameters",
    "failure_reason",
    "hyperparameter_args",
    "input_data_config",
    "is_reserved",
    "make_layout",
    "metric_matcher",
    "model_package",
    "pack_source",
    "parse_hyperparameters",
    "requirements_command",
    "requirements_env",
    "resource_config",
    "training_argv",
    "training_env",
    "unpack_source",
    "write_configs",
]
