"""Training: the SageMaker script-mode contract (job folder, arguments, environment,
metrics, failures). The job runner calls these."""

from kiln.training._contract import (
    RESERVED_HYPERPARAMETERS,
    TrainingLayout,
    check_hyperparameters,
    decode_hyperparameters,
    failure_reason,
    hyperparameter_args,
    input_data_config,
    is_reserved,
    make_layout,
    metric_matcher,
    parse_hyperparameters,
    resource_config,
    training_argv,
    training_env,
    write_configs,
)

__all__ = [
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
    "parse_hyperparameters",
    "resource_config",
    "training_argv",
    "training_env",
    "write_configs",
]
