"""The processes that start AutoML and scikit-learn models import no ML library until they use it.

Importing ``skops.io`` runs scikit-learn's ``all_estimators()`` (skops's default trusted
types), which imports every public scikit-learn module and, where it is installed, pytest:
about a second on a loaded machine, paid only where a skops file is written or read.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("skops", "sklearn", "scipy", "pytest", "lightgbm", "xgboost", "catboost", "pandas")


@pytest.mark.parametrize("module", [
    "kiln.automl._engine",  # the engine's entry: python -m kiln.automl._engine CONFIG
    "kiln.automl._search",
    "kiln.automl._program",  # the job's program in the job runner
    "kiln.automl._model",  # the automl flavor, imported to register and to serve
    "kiln.registry._flavors",
    "kiln.training.builtin",
    "kiln.training.builtin._flavor",
    "kiln.serving._runtime",
    "kiln.serving._worker",
])
def test_importing_a_start_up_module_imports_no_ml_library(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == [], f"importing {module} imported {run.stdout.strip()}"
