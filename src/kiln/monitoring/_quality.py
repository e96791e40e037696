"""Model quality: ground truth read from uploads, joined to captured predictions by inference
id, metrics per window, and Model Monitor's model quality constraints
(``LessThanThreshold`` / ``GreaterThanThreshold``)."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson

from kiln.core.errors import InvalidArgument

__all__ = ["PROBLEM_TYPES", "check_quality", "parse_ground_truth", "quality_metrics", "suggest_quality_constraints"]

PROBLEM_TYPES = ("BinaryClassification", "MulticlassClassification", "Regression")
SECTIONS = {"BinaryClassification": "binary_classification_constraints", "MulticlassClassification": "multiclass_classification_constraints",
            "Regression": "regression_constraints"}
HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "auc", "weighted_f1", "weighted_precision", "weighted_recall", "r2"}
OPERATORS = ("LessThanThreshold", "GreaterThanThreshold")
MAX_GROUND_TRUTH_ROWS = 1_000_000


def _label(text: Any) -> Any:
    if isinstance(text, str):
        t = text.strip()
        try:
            return int(t)
        except ValueError:
            try:
                return float(t)
            except ValueError:
                return t
    return text


def parse_ground_truth(data: bytes) -> dict[str, list[Any]]:
    """``inference id -> labels`` from SageMaker's ground truth JSONL
    (``{"groundTruthData": {"data", "encoding"}, "eventMetadata": {"eventId"}, "eventVersion"}``,
    ``inferenceId`` also read) or a CSV with a header ``inference_id,label``.

    Raises:
        InvalidArgument: neither format, or a line that does not fit it (its number is given).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("ground truth must be UTF-8 text: JSONL lines or a CSV with inference_id,label") from None
    out: dict[str, list[Any]] = {}
    first = text.lstrip()[:1]
    if first == "{":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                meta = rec["eventMetadata"]
                ident = meta.get("inferenceId") or meta.get("eventId")
                gt = rec["groundTruthData"]
                raw = gt["data"]
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise InvalidArgument(f"ground truth line {n} is not a record with groundTruthData.data and eventMetadata.eventId/inferenceId") from None
            if not ident or not isinstance(raw, str):
                raise InvalidArgument(f"ground truth line {n} has no inference id or no data string")
            if str(gt.get("encoding", "CSV")).upper() == "JSON":
                value = orjson.loads(raw)
                labels = value if isinstance(value, list) else [value]
            else:
                labels = [_label(v) for v in next(csv.reader([raw]), [])]
            out[str(ident)] = labels
            if len(out) > MAX_GROUND_TRUTH_ROWS:
                raise InvalidArgument(f"a ground truth upload holds at most {MAX_GROUND_TRUTH_ROWS:,} records; split it")
        return out
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "inference_id" not in header or "label" not in header:
        raise InvalidArgument("ground truth is neither SageMaker's JSONL (groundTruthData) nor a CSV whose header has inference_id and label")
    i, j = header.index("inference_id"), header.index("label")
    for n, row in enumerate(reader, 2):
        if not row:
            continue
        if len(row) <= max(i, j) or not row[i].strip():
            raise InvalidArgument(f"ground truth CSV line {n} has no inference_id or label")
        out.setdefault(row[i].strip(), []).append(_label(row[j]))
        if len(out) > MAX_GROUND_TRUTH_ROWS:
            raise InvalidArgument(f"a ground truth upload holds at most {MAX_GROUND_TRUTH_ROWS:,} records; split it")
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def quality_metrics(y_true: list[Any], y_pred: list[Any], *, problem_type: str, positive_label: Any = 1,
                    probability_threshold: float = 0.5) -> dict[str, float]:
    """Classification or regression metrics of joined labels and predictions."""
    from sklearn import metrics as m

    if problem_type not in PROBLEM_TYPES:
        raise InvalidArgument(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, not {problem_type!r}")
    if not y_true:
        return {}
    if problem_type == "Regression":
        pairs = [(float(t), float(p)) for t, p in zip(y_true, y_pred, strict=True) if _is_number(t) and _is_number(p)]
        if not pairs:
            return {}
        t, p = np.array(pairs).T
        mse = float(m.mean_squared_error(t, p))
        out = {"mae": float(m.mean_absolute_error(t, p)), "mse": mse, "rmse": math.sqrt(mse)}
        if len(t) > 1:
            out["r2"] = float(m.r2_score(t, p))
        return out
    scores = None
    if problem_type == "BinaryClassification" and all(_is_number(p) for p in y_pred) and any(0 < p < 1 for p in y_pred):
        scores = np.array(y_pred, dtype=float)  # probabilities of the positive label
        y_pred = [positive_label if s >= probability_threshold else None for s in scores]
    t = [str(v) for v in y_true]
    p = [str(v) for v in y_pred]
    out = {"accuracy": float(m.accuracy_score(t, p))}
    if problem_type == "BinaryClassification":
        pos = str(positive_label)
        tb = [v == pos for v in t]
        pb = [v == pos for v in p]
        out.update(precision=float(m.precision_score(tb, pb, zero_division=0)), recall=float(m.recall_score(tb, pb, zero_division=0)),
                   f1=float(m.f1_score(tb, pb, zero_division=0)))
        if scores is not None and len(set(tb)) == 2:
            out["auc"] = float(m.roc_auc_score(tb, scores))
    else:
        out.update(weighted_precision=float(m.precision_score(t, p, average="weighted", zero_division=0)),
                   weighted_recall=float(m.recall_score(t, p, average="weighted", zero_division=0)),
                   weighted_f1=float(m.f1_score(t, p, average="weighted", zero_division=0)))
    return out


def suggest_quality_constraints(metrics: dict[str, float], *, problem_type: str, tolerance: float = 0.1) -> dict[str, Any]:
    """Model quality ``constraints.json`` from a baseline's metrics: a metric that should stay
    high gets ``LessThanThreshold`` at ``(1 - tolerance) * value``, one that should stay low
    ``GreaterThanThreshold`` at ``(1 + tolerance) * value``."""
    section = {}
    for name, v in metrics.items():
        if name in HIGHER_IS_BETTER:
            section[name] = {"threshold": v * (1 - tolerance) if v >= 0 else v * (1 + tolerance), "comparison_operator": "LessThanThreshold"}
        else:
            section[name] = {"threshold": v * (1 + tolerance), "comparison_operator": "GreaterThanThreshold"}
    return {"version": 0.0, SECTIONS[problem_type]: section}


def check_quality_constraints(constraints: Any) -> None:
    if not isinstance(constraints, dict):
        raise InvalidArgument("model quality constraints must be an object such as "
                              '{"binary_classification_constraints": {"accuracy": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"}}}')
    for section in SECTIONS.values():
        for name, c in (constraints.get(section) or {}).items():
            if not isinstance(c, dict) or c.get("comparison_operator") not in OPERATORS or not _is_number(c.get("threshold")):
                raise InvalidArgument(f"model quality constraint {name!r} needs a numeric threshold and comparison_operator "
                                      f"{' or '.join(OPERATORS)}")


def check_quality(constraints: dict[str, Any], metrics: dict[str, float], *, problem_type: str) -> list[dict[str, str]]:
    """Violations of the model quality constraints by ``metrics``."""
    out = []
    for name, c in (constraints.get(SECTIONS[problem_type]) or {}).items():
        value = metrics.get(name)
        if value is None:
            continue
        op, threshold = c["comparison_operator"], float(c["threshold"])
        if (op == "LessThanThreshold" and value < threshold) or (op == "GreaterThanThreshold" and value > threshold):
            out.append({"feature_name": name, "metric_name": name, "constraint_check_type": op,
                        "description": f"Metric {name} with {value:.4g} was {op} '{threshold:.4g}'"})
    return out
