"""Training: the SageMaker script-mode runner and the built-in algorithms."""
