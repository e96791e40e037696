"""AutoML's vocabulary: problem types, objective metrics and modes, with Autopilot's names
and defaults (CONTRACTS.md §9), and how a metric scores out-of-fold predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiln.core.errors import InvalidArgument

__all__ = ["METRICS", "MODES", "PROBLEM_TYPES", "Metric", "check_metric", "check_mode", "check_problem_type", "default_metric"]

PROBLEM_TYPES = ("BinaryClassification", "MulticlassClassification", "Regression")
# Autopilot's modes; "ensembling" and "hpo" are the CLI's short names.
MODES = {"ensembling": "Ensembling", "hpo": "HyperparameterTuning", "hyperparametertuning": "HyperparameterTuning", "auto": "Auto"}


@dataclass(frozen=True)
class Metric:
    """An objective: its Autopilot name, which problems it fits, and whether higher is better."""

    name: str
    problems: tuple[str, ...]
    higher_is_better: bool = True
    uses_proba: bool = False

    def value(self, y: Any, pred: Any, *, classes: int = 0) -> float:
        """The metric of predictions ``pred`` (class probabilities, or values) against ``y``
        (class indices, or values)."""
        import numpy as np
        from sklearn import metrics as m

        if self.name in ("MSE", "RMSE", "MAE", "R2"):
            pred = np.asarray(pred, dtype=float)
            if self.name == "MAE":
                return float(m.mean_absolute_error(y, pred))
            if self.name == "R2":
                return float(m.r2_score(y, pred))
            mse = float(m.mean_squared_error(y, pred))
            return mse if self.name == "MSE" else float(np.sqrt(mse))
        proba = np.asarray(pred, dtype=float)
        if self.name == "AUC":
            if proba.shape[1] == 2:
                return float(m.roc_auc_score(y, proba[:, 1])) if len(np.unique(y)) > 1 else 0.5
            present = np.unique(y)
            if len(present) < 2:
                return 0.5
            sub = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-12, None)
            return float(m.roc_auc_score(y, sub, multi_class="ovr", labels=present))
        if self.name == "LogLoss":
            return float(m.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=list(range(proba.shape[1]))))
        label = proba.argmax(axis=1)
        if self.name == "Accuracy":
            return float(m.accuracy_score(y, label))
        if self.name == "BalancedAccuracy":
            return float(m.balanced_accuracy_score(y, label))
        fn = {"F1": m.f1_score, "Precision": m.precision_score, "Recall": m.recall_score,
              "F1macro": m.f1_score, "PrecisionMacro": m.precision_score, "RecallMacro": m.recall_score}[self.name]
        average = "binary" if self.name in ("F1", "Precision", "Recall") else "macro"
        return float(fn(y, label, average=average, zero_division=0))

    def gain(self, value: float) -> float:
        """A value where higher is always better (losses negated), for ranking."""
        return value if self.higher_is_better else -value


_CLS = ("BinaryClassification", "MulticlassClassification")
_BIN = ("BinaryClassification",)
_REG = ("Regression",)
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("Accuracy", _CLS), Metric("BalancedAccuracy", _CLS), Metric("F1", _BIN), Metric("Precision", _BIN),
    Metric("Recall", _BIN), Metric("AUC", _CLS, uses_proba=True), Metric("F1macro", _CLS), Metric("PrecisionMacro", _CLS),
    Metric("RecallMacro", _CLS), Metric("LogLoss", _CLS, higher_is_better=False, uses_proba=True),
    Metric("MSE", _REG, higher_is_better=False), Metric("RMSE", _REG, higher_is_better=False),
    Metric("MAE", _REG, higher_is_better=False), Metric("R2", _REG),
)}
_DEFAULTS = {"BinaryClassification": "F1", "MulticlassClassification": "Accuracy", "Regression": "MSE"}


def default_metric(problem_type: str) -> str:
    """Autopilot's default objective: F1 (binary), Accuracy (multiclass), MSE (regression)."""
    return _DEFAULTS[problem_type]


def check_problem_type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    for p in PROBLEM_TYPES:
        if str(value).replace("_", "").replace("-", "").lower() == p.lower():
            return p
    raise InvalidArgument(f"unknown problem type {str(value)[:40]!r}; use one of {', '.join(PROBLEM_TYPES)} or leave it out to infer it")


def check_metric(value: str | None, problem_type: str | None = None) -> str | None:
    if value is None or value == "":
        return None
    found = next((m for m in METRICS if m.lower() == str(value).lower()), None)
    if found is None:
        raise InvalidArgument(f"unknown metric {str(value)[:40]!r}; use one of {', '.join(METRICS)}")
    if problem_type is not None and problem_type not in METRICS[found].problems:
        fits = [m for m, d in METRICS.items() if problem_type in d.problems]
        raise InvalidArgument(f"metric {found} does not fit a {problem_type} problem; use one of {', '.join(fits)}")
    return found


def check_mode(value: str | None) -> str:
    if value is None or value == "":
        return "Ensembling"
    key = str(value).replace("_", "").replace("-", "").lower()
    if key not in MODES:
        raise InvalidArgument(f"unknown mode {str(value)[:40]!r}; use ensembling, hpo (HyperparameterTuning) or auto")
    return MODES[key]
