"""Evaluation: score a registered model on a dataset version, with full metric sets, into a run.

Classification: accuracy, balanced accuracy, precision / recall / F1 (macro and
weighted), ROC AUC, log loss, a per-class report, a confusion matrix and, for
binary problems, ROC, precision-recall and calibration curves. Regression: MAE,
MSE, RMSE, R², MAPE. Curves are stored as SageMaker-style JSON and as PNG.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import orjson

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, ModelError
from kiln.core.progress import Progress
from kiln.core.workspace import Workspace
from kiln.tracking._artifacts import ArtifactService
from kiln.tracking._models import EvaluationComparison, EvaluationReport
from kiln.tracking._plots import (
    confusion_matrix_data,
    precision_recall_data,
    render_png,
    roc_curve_data,
)
from kiln.tracking._runs import RunService

__all__ = ["ONE_SOURCE", "EvaluationService", "table_to_parquet"]

ONE_SOURCE = (
    "evaluate needs exactly one of dataset (a Kiln dataset reference) or data (a table; "
    "over REST, a Parquet body to /v1/evaluations/upload)"
)

# Which way is better, for picking the best model in a comparison.
_HIGHER_IS_BETTER = {
    "accuracy", "balanced_accuracy", "precision_macro", "precision_weighted", "recall_macro",
    "recall_weighted", "f1_macro", "f1_weighted", "roc_auc", "r2", "average_precision",
}


def table_to_parquet(data: Any) -> bytes:
    """Parquet bytes of a pandas DataFrame or pyarrow Table (how the SDK uploads data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def parquet_to_frame(data: bytes) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(io.BytesIO(data)).to_pandas()
    except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's bad upload
        raise InvalidArgument(f"the uploaded data is not a Parquet table: {exc}") from None


def _load_dataset(ws: Workspace, ctx: Context, ref: str) -> tuple[Any, str]:
    """A dataset version as a pandas DataFrame, and its exact reference (``sales@3``)."""
    from kiln.lake.datasets import DatasetService

    svc = DatasetService(ws, ctx)
    version = svc.get(ref)
    exact = f"{version.name}@{version.version}"
    return svc.read_table(exact).to_pandas(), exact


def _frame(data: Any) -> Any:
    import pandas as pd

    if hasattr(data, "schema") and hasattr(data, "to_pandas"):
        return data.to_pandas()
    if isinstance(data, pd.DataFrame):
        return data
    raise InvalidArgument("data must be a pandas DataFrame or a pyarrow Table")


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float:
    """A metric's value, or NaN where it is undefined for this data (one class, one row...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(fn(*args, **kwargs))
    except (ValueError, ZeroDivisionError, TypeError):
        return math.nan


def _problem(y: Any, predictor: Any, asked: str | None) -> str:
    if asked is not None:
        if asked not in ("classification", "regression"):
            raise InvalidArgument("problem_type must be classification or regression")
        return asked
    if predictor.task in ("classification", "regression"):
        return str(predictor.task)
    if y.dtype.kind in "OUSb" or str(y.dtype) == "category" or predictor.can_predict_proba:
        return "classification"
    return "regression"


def _regression(y: Any, pred: Any) -> dict[str, float]:
    from sklearn import metrics as m

    mse = _safe(m.mean_squared_error, y, pred)
    return {
        "mae": _safe(m.mean_absolute_error, y, pred), "mse": mse, "rmse": math.sqrt(mse) if mse == mse else math.nan,
        "r2": _safe(m.r2_score, y, pred), "mape": _safe(m.mean_absolute_percentage_error, y, pred),
        "explained_variance": _safe(m.explained_variance_score, y, pred), "max_error": _safe(m.max_error, y, pred),
    }


def _classification(y: Any, pred: Any, proba: Any, classes: list[Any]) -> tuple[dict[str, float], dict[str, Any], dict[str, dict[str, float]]]:
    import numpy as np
    from sklearn import metrics as m

    out = {"accuracy": _safe(m.accuracy_score, y, pred), "balanced_accuracy": _safe(m.balanced_accuracy_score, y, pred)}
    for avg in ("macro", "weighted"):
        out[f"precision_{avg}"] = _safe(m.precision_score, y, pred, average=avg, zero_division=0)
        out[f"recall_{avg}"] = _safe(m.recall_score, y, pred, average=avg, zero_division=0)
        out[f"f1_{avg}"] = _safe(m.f1_score, y, pred, average=avg, zero_division=0)
    graphs: dict[str, Any] = {"confusion_matrix": confusion_matrix_data(y, pred, title="Confusion matrix")}
    if proba is not None:
        binary = len(classes) == 2
        out["log_loss"] = _safe(m.log_loss, y, proba, labels=classes)
        if binary:
            positive = classes[1]
            score = proba[:, 1]
            out["roc_auc"] = _safe(m.roc_auc_score, (np.asarray(y) == positive).astype(int), score)
            out["average_precision"] = _safe(m.average_precision_score, (np.asarray(y) == positive).astype(int), score)
            out["brier_score"] = _safe(m.brier_score_loss, (np.asarray(y) == positive).astype(int), score)
            try:
                graphs["roc_curve"] = roc_curve_data(y, score, title="ROC curve", positive_label=positive)
                graphs["precision_recall"] = precision_recall_data(y, score, positive_label=positive, title="Precision-recall curve")
                graphs["calibration"] = _calibration(y, score, positive)
            except InvalidArgument:
                pass  # one class only in y: no curve to draw
        else:
            out["roc_auc"] = _safe(m.roc_auc_score, y, proba, multi_class="ovr", average="macro", labels=classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = m.classification_report(y, pred, output_dict=True, zero_division=0)
    per_class = {str(k): {kk: float(vv) for kk, vv in v.items()} for k, v in report.items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg")}
    return out, graphs, per_class


def _calibration(y: Any, score: Any, positive: Any) -> dict[str, Any]:
    import numpy as np
    from sklearn.calibration import calibration_curve

    truth = (np.asarray(y) == positive).astype(int)
    frac, mean = calibration_curve(truth, score, n_bins=10, strategy="uniform")
    return {"type": "CalibrationCurve", "version": 0, "title": "Calibration", "fractionPositive": frac.tolist(), "meanPredicted": mean.tolist()}


PREDICT_ROWS = 50_000  # rows sent to the model's worker per call (progress is reported after each)


def _predict(predictor: Any, X: Any, proba: bool, progress: Progress) -> tuple[Any, Any]:
    """Predictions (and class probabilities when asked) for every row, a slice at a time."""
    import numpy as np

    if len(X) <= PREDICT_ROWS:
        got = predictor.predict_both(X, proba=proba)
        progress.finish()
        return got
    preds, probas = [], []
    for start in range(0, len(X), PREDICT_ROWS):
        pred, prob = predictor.predict_both(X.iloc[start:start + PREDICT_ROWS], proba=proba)
        preds.append(np.asarray(pred))
        probas.append(prob)
        progress.advance(len(preds[-1]))
    progress.finish()
    return np.concatenate(preds), None if any(p is None for p in probas) else np.concatenate([np.asarray(p) for p in probas])


class EvaluationService:
    """Evaluate registered models on data and record the results as runs."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def _data(self, dataset: str | None, data: Any) -> tuple[Any, str]:
        if (dataset is None) == (data is None):
            raise InvalidArgument(ONE_SOURCE)
        if data is not None:
            return _frame(data), "table"
        return _load_dataset(self.ws, self.ctx, dataset)  # type: ignore[arg-type]

    def evaluate(
        self,
        *,
        model: str,
        target: str,
        dataset: str | None = None,
        data: Any = None,
        experiment: str = "evaluations",
        run_name: str | None = None,
        problem_type: str | None = None,
    ) -> EvaluationReport:
        """Score ``model`` on a dataset version (or a table) and log everything to a new run.

        The model runs in a worker process of its own, never in this one; a model
        that runs code (a pickle, ``code/inference.py``) runs only if an admin trusted it.

        Raises:
            InvalidArgument: the target column is missing, or data and model do not fit.
            NotFound: the model or dataset does not exist.
            PermissionDenied: the caller may not write runs, or the model's code is not trusted.
            ModelError: the model crashed or ran past the worker's time limit.
        """
        self.ctx.require("editor")  # an evaluation writes a run: refused before any model loads
        progress = Progress()
        frame, label = self._data(dataset, data)
        progress.update(0.05)
        report = self._evaluate(model, frame, label, target, experiment, run_name, problem_type, progress.part(0.05, 1.0))
        progress.finish()
        return report

    def _evaluate(self, model: str, frame: Any, label: str, target: str, experiment: str, run_name: str | None, problem_type: str | None, progress: Progress) -> EvaluationReport:
        from kiln.registry._service import ModelService

        if target not in frame.columns:
            raise InvalidArgument(f"target column {target!r} is not in the data; columns: {', '.join(map(str, frame.columns))[:500]}")
        if len(frame) == 0:
            raise InvalidArgument("the data has no rows to evaluate on")
        models = ModelService(self.ws, self.ctx)
        version = models.get_version(ref=model)
        y = frame[target]
        X = frame.drop(columns=[target])
        with models.start_worker(ref=version.ref) as predictor:
            kind = _problem(y, predictor, problem_type)
            progress.update(0.1)
            try:
                pred, proba = _predict(predictor, X, kind == "classification", progress.part(0.1, 0.8, len(X)))
            except ModelError as exc:
                if not predictor.worker.alive:
                    raise  # it crashed or hung: the model's fault, not the data's
                raise InvalidArgument(f"model {version.ref} could not predict on this data: {exc.message[:300]}") from None
        graphs: dict[str, Any] = {}
        per_class = None
        if kind == "classification":
            import numpy as np

            classes = list(predictor.classes) if predictor.classes else [c.item() if hasattr(c, "item") else c for c in np.unique(np.concatenate([np.asarray(y), np.asarray(pred)]))]
            values, graphs, per_class = _classification(y, pred, proba, classes)
        else:
            values = _regression(y.astype(float), pred.astype(float))
        progress.update(0.85)
        report = EvaluationReport(
            model=version.ref, model_version=version.version, dataset=label, target=target, problem_type=kind, rows=len(frame),  # type: ignore[arg-type]
            metrics=values, per_class=per_class, confusion_matrix=graphs.get("confusion_matrix"), roc_curve=graphs.get("roc_curve"),
            precision_recall=graphs.get("precision_recall"), calibration=graphs.get("calibration"),
        )
        report = self._log(report, graphs, experiment, run_name)
        progress.finish()
        return report

    def _log(self, report: EvaluationReport, graphs: dict[str, Any], experiment: str, run_name: str | None) -> EvaluationReport:
        runs = RunService(self.ws, self.ctx)
        run = runs.create(
            experiment_name=experiment, run_name=run_name,
            tags={"kiln.kind": "evaluation", "model": report.model, "dataset": report.dataset},
            params={"model": report.model, "dataset": report.dataset, "target": report.target, "problem_type": report.problem_type, "rows": report.rows},
        )
        arts = ArtifactService(self.ws, self.ctx)
        names: list[str] = []
        try:
            now = time.time()
            runs.log_batch(run_id=run.id, metrics=[(k, v, 0, now) for k, v in report.metrics.items()])
            for key, data in graphs.items():
                base = key.replace("_", "-")
                arts.put(run_id=run.id, name=f"{base}.json", data=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
                arts.put(run_id=run.id, name=f"{base}.png", data=render_png(data), media_type="image/png")
                names += [f"{base}.json", f"{base}.png"]
            report = report.model_copy(update={"run_id": run.id, "artifacts": [*names, "report.json"]})
            arts.put(run_id=run.id, name="report.json", data=report.model_dump_json(indent=2).encode(), media_type="application/json")
        except BaseException as exc:
            runs.finish(run_id=run.id, status="Failed", failure_reason=f"{type(exc).__name__}: {exc}")
            raise
        runs.finish(run_id=run.id, status="Completed")
        return report

    def compare(
        self,
        *,
        models: Sequence[str],
        target: str,
        dataset: str | None = None,
        data: Any = None,
        experiment: str = "evaluations",
    ) -> EvaluationComparison:
        """Evaluate several models on the same data; metrics side by side and the best per metric."""
        self.ctx.require("editor")
        if len(models) < 2:
            raise InvalidArgument("compare needs at least two models")
        progress = Progress()
        frame, label = self._data(dataset, data)
        reports = [self._evaluate(m, frame, label, target, experiment, None, None, progress.part(i / len(models), (i + 1) / len(models)))
                   for i, m in enumerate(models)]
        keys = sorted({k for r in reports for k in r.metrics})
        table = {k: [r.metrics.get(k) for r in reports] for k in keys}
        best: dict[str, str] = {}
        for key, values in table.items():
            scored = [(v, r.model) for v, r in zip(values, reports, strict=True) if v is not None and v == v]
            if scored:
                pick = max(scored) if key in _HIGHER_IS_BETTER else min(scored)
                best[key] = pick[1]
        return EvaluationComparison(dataset=label, target=target, models=[r.model for r in reports], metrics=table, best=best, reports=reports)
