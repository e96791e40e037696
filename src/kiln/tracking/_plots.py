"""Confusion matrices, ROC and precision-recall curves: as SageMaker-style JSON and as PNG.

The JSON follows SageMaker Experiments' graph artifacts (``type``, ``version``,
``title`` and the camel-cased arrays), so notebooks written for it read ours.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np

from kiln.core.errors import InvalidArgument

__all__ = ["confusion_matrix_data", "graph_artifact_name", "precision_recall_data", "render_png", "roc_curve_data"]


def _labels(values: Any) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values]


def _array(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0 or len(arr) == 0:
        raise InvalidArgument(f"{what} must be a non-empty sequence")
    return arr


def confusion_matrix_data(y_true: Any, y_pred: Any, *, title: str | None = None) -> dict[str, Any]:
    """``{"type": "ConfusionMatrix", "version": 0, "title", "confusionMatrix", "labels"}``."""
    from sklearn.metrics import confusion_matrix

    t, p = _array(y_true, "y_true"), _array(y_pred, "y_pred")
    if len(t) != len(p):
        raise InvalidArgument(f"y_true has {len(t)} values but y_pred has {len(p)}")
    labels = np.unique(np.concatenate([t, p]))
    matrix = confusion_matrix(t, p, labels=labels)
    return {"type": "ConfusionMatrix", "version": 0, "title": title, "confusionMatrix": matrix.tolist(), "labels": _labels(labels)}


def roc_curve_data(y_true: Any, y_score: Any, *, title: str | None = None, positive_label: Any = None) -> dict[str, Any]:
    """``{"type": "ROCCurve", "version": 0, "title", "falsePositiveRate", "truePositiveRate", "areaUnderCurve"}``."""
    from sklearn.metrics import auc, roc_curve

    t, s = _array(y_true, "y_true"), _array(y_score, "y_score").astype(float)
    if len(t) != len(s):
        raise InvalidArgument(f"y_true has {len(t)} values but y_score has {len(s)}")
    kwargs = {"pos_label": positive_label} if positive_label is not None else {}
    try:
        fpr, tpr, _ = roc_curve(t, s, **kwargs)
    except ValueError as exc:
        raise InvalidArgument(f"cannot compute a ROC curve: {exc}") from None
    area = float(auc(fpr, tpr))
    return {
        "type": "ROCCurve", "version": 0, "title": title, "falsePositiveRate": fpr.tolist(),
        "truePositiveRate": tpr.tolist(), "areaUnderCurve": None if math.isnan(area) else area,
    }


def precision_recall_data(
    y_true: Any, predicted_probabilities: Any, *, positive_label: Any = None, title: str | None = None
) -> dict[str, Any]:
    """``{"type": "PrecisionRecallCurve", "version": 0, "title", "precision", "recall", "averagePrecisionScore", "noSkill"}``."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    t, s = _array(y_true, "y_true"), _array(predicted_probabilities, "predicted_probabilities").astype(float)
    if len(t) != len(s):
        raise InvalidArgument(f"y_true has {len(t)} values but predicted_probabilities has {len(s)}")
    kwargs = {"pos_label": positive_label} if positive_label is not None else {}
    try:
        precision, recall, _ = precision_recall_curve(t, s, **kwargs)
        ap = float(average_precision_score(t, s, **kwargs))
    except ValueError as exc:
        raise InvalidArgument(f"cannot compute a precision-recall curve: {exc}") from None
    positive = positive_label if positive_label is not None else np.unique(t).max()
    no_skill = float(np.mean(t == positive))
    return {
        "type": "PrecisionRecallCurve", "version": 0, "title": title, "precision": precision.tolist(),
        "recall": recall.tolist(), "averagePrecisionScore": ap, "noSkill": no_skill,
    }


def graph_artifact_name(data: dict[str, Any], default: str) -> str:
    """A safe artifact base name from a graph's title (or ``default``)."""
    title = data.get("title") or default
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(title)).strip("-.")[:100]
    return slug or default


def render_png(data: dict[str, Any]) -> bytes:
    """Draw a graph artifact with matplotlib (Agg) and return PNG bytes."""
    # A bare Figure renders through Agg without touching pyplot or the user's backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    kind = data.get("type")
    if kind == "ConfusionMatrix":
        matrix = np.asarray(data["confusionMatrix"])
        labels = [str(x) for x in data.get("labels") or range(len(matrix))]
        im = ax.imshow(matrix, cmap="Blues")
        fig.colorbar(im, ax=ax)
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if matrix.size <= 100:
            limit = matrix.max() / 2 if matrix.size else 0
            for (i, j), v in np.ndenumerate(matrix):
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > limit else "black")
    elif kind == "ROCCurve":
        area = data.get("areaUnderCurve")
        ax.plot(data["falsePositiveRate"], data["truePositiveRate"], label=f"AUC = {area:.3f}" if area is not None else "ROC")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right")
    elif kind == "PrecisionRecallCurve":
        ax.plot(data["recall"], data["precision"], label=f"AP = {data['averagePrecisionScore']:.3f}")
        if data.get("noSkill") is not None:
            ax.axhline(data["noSkill"], linestyle="--", color="grey", label="no skill")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.legend(loc="lower left")
    elif kind == "CalibrationCurve":
        ax.plot(data["meanPredicted"], data["fractionPositive"], marker="o", label="model")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("fraction of positives")
        ax.legend(loc="upper left")
    else:
        raise InvalidArgument(f"cannot draw a graph of type {kind!r}")
    ax.set_title(data.get("title") or str(kind))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
