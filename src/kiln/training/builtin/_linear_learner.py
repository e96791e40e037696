"""Linear learner under SageMaker's names, trained by scikit-learn's SGD one mini-batch at a time.

``predictor_type`` is ``binary_classifier``, ``multiclass_classifier`` (one-vs-rest, labels
``0..num_classes-1`` or strings) or ``regressor``. ``l1`` and ``wd`` are the L1 and L2 weights of
SageMaker's objective (``loss + l1·|w|₁ + wd·|w|₂²``). Features are standardised with the train
channel's mean and deviation (``normalize_data``), and the regressor's label too
(``normalize_label``); the scaling is folded into the saved coefficients, so the model takes raw
rows. Each epoch prints the objective loss on train and validation; training stops early when the
validation (else train) loss has not improved by ``early_stopping_tolerance`` (relative) for
``early_stopping_patience`` epochs, keeping the best epoch's model. At the end it prints SageMaker's
linear-learner metrics for train, validation and test::

    #quality_metric: host=algo-1, epoch=4, validation objective_loss <loss>=0.093
    #quality_metric: host=algo-1, validation binary_classification_accuracy <score>=0.97
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.training.builtin import _sklearn
from kiln.training.builtin._base import Algorithm, BuiltinError, BuiltinModel, Hyperparameter as H, register
from kiln.training.builtin._data import Channels, Classes, Frame

__all__ = ["LinearLearner"]

_CHANNELS = ("train", "validation", "test")
BINARY_METRICS = (("objective_loss", False), ("binary_classification_accuracy", True), ("binary_f_beta", True),
                  ("precision", True), ("recall", True))
MULTICLASS_METRICS = (("objective_loss", False), ("multiclass_accuracy", True), ("multiclass_top_k_accuracy", True),
                      ("macro_f_beta", True), ("macro_precision", True), ("macro_recall", True))
REGRESSOR_METRICS = (("objective_loss", False), ("mse", False), ("rmse", False), ("absolute_loss", False))
_LOSSES = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss", "hinge_loss"),
    "regressor": ("squared_loss", "absolute_loss", "huber_loss", "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss"),
}
_SKLEARN_LOSS = {
    "logistic": "log_loss", "softmax_loss": "log_loss", "hinge_loss": "hinge", "squared_loss": "squared_error",
    "absolute_loss": "epsilon_insensitive", "huber_loss": "huber",
    "eps_insensitive_squared_loss": "squared_epsilon_insensitive", "eps_insensitive_absolute_loss": "epsilon_insensitive",
}
ESTIMATORS = ("sklearn.linear_model._stochastic_gradient.SGDClassifier", "sklearn.linear_model._stochastic_gradient.SGDRegressor")
HELPERS = ("sklearn._loss._loss.CyHalfBinomialLoss", "sklearn.linear_model._sgd_fast.Hinge")  # the classifier's loss object


def _unique(pairs: tuple[tuple[str, bool], ...]) -> tuple[tuple[str, bool], ...]:
    return tuple(dict(pairs).items())


@register
class LinearLearner(Algorithm):
    name = "linear-learner"
    channels = _CHANNELS
    hyperparameters = (
        H("predictor_type", "str", required=True, choices=tuple(_LOSSES)),
        H("num_classes", "int", min=3, max=1_000_000),
        H("epochs", "int", 15, min=1),
        H("learning_rate", "float", "auto", min=0, min_open=True, auto=True),
        H("l1", "float", "auto", min=0, auto=True),
        H("wd", "float", "auto", min=0, auto=True),
        H("mini_batch_size", "int", 1000, min=1),
        H("normalize_data", "bool", True),
        H("normalize_label", "bool", "auto", auto=True),
        H("use_bias", "bool", True),
        H("loss", "str", "auto", choices=("auto", *sorted({loss for losses in _LOSSES.values() for loss in losses}))),
        H("huber_delta", "float", 1.0, min=0, min_open=True),
        H("loss_insensitivity", "float", 0.01, min=0, min_open=True),
        H("f_beta", "float", 1.0, min=0, min_open=True),
        H("accuracy_top_k", "int", 3, min=1),
        H("early_stopping_patience", "int", 3, min=1),
        H("early_stopping_tolerance", "float", 0.001, min=0, min_open=True),
        H("feature_dim", "int", "auto", min=1, auto=True),
        H("seed", "int", 0),
        H("target", "str"),
    )
    metric_definitions = _sklearn.definitions(_CHANNELS, _unique(BINARY_METRICS + MULTICLASS_METRICS + REGRESSOR_METRICS))
    estimator_: Any
    classes_: Classes | None

    def fit(self, data: Channels) -> LinearLearner:
        import numpy as np

        hp = self.hp
        train = data.train
        assert train.y is not None
        kind = hp["predictor_type"]
        _sklearn.check_feature_dim(hp["feature_dim"], train)
        _sklearn.require_finite(data, self.name)
        loss = self._loss(kind)
        self.classes_ = self._classes(kind, train)
        # Standardise with the train channel's statistics; folded into the coefficients at the end.
        mean = train.X.mean(axis=0, dtype=np.float64) if hp["normalize_data"] else np.zeros(train.features)
        scale = train.X.std(axis=0, dtype=np.float64) if hp["normalize_data"] else np.ones(train.features)
        scale[scale == 0] = 1.0
        normalize_label = kind == "regressor" and hp["normalize_label"] in ("auto", True)
        y_mean, y_scale = (float(np.mean(train.y)), float(np.std(train.y)) or 1.0) if normalize_label else (0.0, 1.0)
        target = self._targets(train, "train")
        fit_y = (target - y_mean) / y_scale if kind == "regressor" else target
        estimator = self._estimator(kind, loss)
        Xs = (train.X - mean) / scale
        evals = [(c, (f.X - mean) / scale, self._targets(f, c)) for c, f in data.evaluated()]
        watch = evals[1] if data.validation is not None else evals[0]
        rng = np.random.default_rng(hp["seed"])
        classes = np.arange(len(self.classes_.values), dtype=np.float32) if self.classes_ is not None else None
        best: tuple[float, Any, Any] | None = None
        stale = 0
        for epoch in range(hp["epochs"]):
            order = rng.permutation(train.rows)
            for start in range(0, train.rows, hp["mini_batch_size"]):
                rows = order[start:start + hp["mini_batch_size"]]
                if classes is not None:
                    estimator.partial_fit(Xs[rows], fit_y[rows], classes=classes)
                else:
                    estimator.partial_fit(Xs[rows], fit_y[rows])
            losses = {}
            for channel, X, y in (e for e in evals if e[0] != "test"):  # per epoch: train and validation, as SageMaker
                losses[channel] = self._objective(estimator, loss, X, y, y_mean, y_scale)
                _sklearn.report(self.env, channel, {"objective_loss": (losses[channel], False)}, epoch=epoch)
            current = losses[watch[0]]
            if best is None or current < best[0] - hp["early_stopping_tolerance"] * abs(best[0]):
                best, stale = (current, estimator.coef_.copy(), np.copy(estimator.intercept_)), 0
            else:
                stale += 1
                if stale >= hp["early_stopping_patience"]:
                    print(f"early stopping after epoch {epoch}: {watch[0]} objective_loss has not improved "
                          f"for {stale} epochs", flush=True)
                    break
        assert best is not None
        estimator.coef_, estimator.intercept_ = best[1], best[2]
        for channel, X, y in evals:
            _sklearn.report(self.env, channel, self._scores(estimator, loss, X, y, y_mean, y_scale))
        # Fold the scaling in: w·((x - m) / s) + b == (w / s)·x + (b - Σ w·m / s); then the label's.
        coef = estimator.coef_ / scale
        intercept = estimator.intercept_ - coef @ mean
        estimator.coef_, estimator.intercept_ = coef * y_scale, intercept * y_scale + y_mean
        self.estimator_ = estimator
        return self

    def _loss(self, kind: str) -> str:
        loss = self.hp["loss"]
        if loss == "auto":
            return _LOSSES[kind][0]
        if loss not in _LOSSES[kind]:
            raise BuiltinError(
                f"hyperparameter loss {loss} does not fit predictor_type {kind}; use one of: auto, "
                f"{', '.join(_LOSSES[kind])}"
            )
        return str(loss)

    def _classes(self, kind: str, train: Frame) -> Classes | None:
        assert train.y is not None
        if kind == "regressor":
            if train.y.dtype == object:
                raise BuiltinError("the label holds strings but predictor_type regressor needs numbers")
            return None
        if kind == "binary_classifier":
            classes = Classes.fit(train.y, index_labels=train.y.dtype != object, num_classes=2)
            if len(classes.values) != 2:
                raise BuiltinError(
                    "predictor_type binary_classifier needs 2 classes (0 and 1); the label has "
                    f"{len(classes.values)}: {classes.values[:10]}"
                )
            return classes
        num = self.hp.get("num_classes")
        if num is None:
            raise BuiltinError("hyperparameter num_classes is required when predictor_type is multiclass_classifier")
        classes = Classes.fit(train.y, index_labels=train.y.dtype != object, num_classes=num)
        if len(classes.values) != num:
            raise BuiltinError(
                f"num_classes is {num} but the label has {len(classes.values)} classes: "
                f"{classes.values[:10]}"
            )
        return classes

    def _targets(self, frame: Frame, channel: str) -> Any:
        import numpy as np

        assert frame.y is not None
        return self.classes_.codes(frame.y, channel) if self.classes_ is not None else frame.y.astype(np.float64)

    def _estimator(self, kind: str, loss: str) -> Any:
        from sklearn.linear_model import SGDClassifier, SGDRegressor

        hp = self.hp
        l1 = 0.0 if hp["l1"] == "auto" else hp["l1"]
        wd = 0.0 if hp["wd"] == "auto" else hp["wd"]
        # sklearn's penalty is alpha·(l1_ratio·|w|₁ + (1 - l1_ratio)/2·|w|₂²).
        alpha = l1 + 2 * wd
        penalty = None if alpha == 0 else "elasticnet"
        lr = hp["learning_rate"]
        if lr == "auto":
            schedule = {"learning_rate": "optimal"} if kind != "regressor" else {"learning_rate": "invscaling", "eta0": 0.01}
        else:
            schedule = {"learning_rate": "constant", "eta0": lr}
        epsilon = 0.0 if loss == "absolute_loss" else hp["huber_delta"] if loss == "huber_loss" else hp["loss_insensitivity"]
        # Without a penalty alpha only sets the "optimal" schedule's step: sklearn's default then.
        common = {"loss": _SKLEARN_LOSS[loss], "penalty": penalty, "alpha": alpha or 0.0001,
                  "l1_ratio": l1 / alpha if alpha else 0.15, "fit_intercept": hp["use_bias"], "random_state": hp["seed"],
                  **schedule}
        if kind == "regressor":
            return SGDRegressor(epsilon=epsilon, **common)
        return SGDClassifier(**common)

    def _objective(self, estimator: Any, loss: str, X: Any, y: Any, y_mean: float, y_scale: float) -> float:
        import numpy as np
        from sklearn.metrics import hinge_loss, log_loss

        if self.classes_ is not None:
            labels = list(range(len(self.classes_.values)))
            if loss == "hinge_loss":
                return float(hinge_loss(y, estimator.decision_function(X), labels=labels))
            return float(log_loss(y, estimator.predict_proba(X), labels=labels))
        err = np.abs(y - (estimator.predict(X) * y_scale + y_mean))
        if loss == "absolute_loss":
            return float(err.mean())
        if loss == "huber_loss":
            d = self.hp["huber_delta"]
            return float(np.where(err <= d, 0.5 * err ** 2, d * (err - 0.5 * d)).mean())
        if loss.startswith("eps_insensitive"):
            excess = np.maximum(err - self.hp["loss_insensitivity"], 0)
            return float((excess ** 2 if loss == "eps_insensitive_squared_loss" else excess).mean())
        return float((err ** 2).mean())

    def _scores(self, estimator: Any, loss: str, X: Any, y: Any, y_mean: float,
                y_scale: float) -> dict[str, tuple[float, bool]]:
        import numpy as np
        from sklearn.metrics import fbeta_score, precision_score, recall_score, top_k_accuracy_score

        scores = {"objective_loss": (self._objective(estimator, loss, X, y, y_mean, y_scale), False)}
        if self.classes_ is None:
            pred = estimator.predict(X) * y_scale + y_mean
            mse = float(np.mean((y - pred) ** 2))
            absolute = float(np.mean(np.abs(y - pred)))
            return {**scores, "mse": (mse, False), "rmse": (mse ** 0.5, False), "absolute_loss": (absolute, False)}
        pred = estimator.predict(X)
        beta = self.hp["f_beta"]
        if len(self.classes_.values) == 2:
            return {**scores, "binary_classification_accuracy": (float(np.mean(pred == y)), True),
                    "binary_f_beta": (float(fbeta_score(y, pred, beta=beta, zero_division=0)), True),
                    "precision": (float(precision_score(y, pred, zero_division=0)), True),
                    "recall": (float(recall_score(y, pred, zero_division=0)), True)}
        labels = list(range(len(self.classes_.values)))
        k = min(self.hp["accuracy_top_k"], len(labels))
        top_k = float(top_k_accuracy_score(y, estimator.decision_function(X), k=k, labels=labels))
        macro = {"average": "macro", "labels": labels, "zero_division": 0}
        return {**scores, "multiclass_accuracy": (float(np.mean(pred == y)), True), "multiclass_top_k_accuracy": (top_k, True),
                "macro_f_beta": (float(fbeta_score(y, pred, beta=beta, **macro)), True),
                "macro_precision": (float(precision_score(y, pred, **macro)), True),
                "macro_recall": (float(recall_score(y, pred, **macro)), True)}

    def save(self, model_dir: Path) -> dict[str, Any]:
        classes = self.classes_
        return {**_sklearn.dump(self.estimator_, model_dir),
                "task": "classification" if classes is not None else "regression",
                "classes": classes.values if classes is not None else None,
                "label_encoding": "classes" if classes is not None and classes.encoded else "none",
                "predictor_type": self.hp["predictor_type"]}

    @classmethod
    def load(cls, model_dir: Path, manifest: dict[str, Any]) -> BuiltinModel:
        estimator = _sklearn.load(model_dir, manifest, estimators=ESTIMATORS, helpers=HELPERS)
        if manifest["task"] != "classification":
            return BuiltinModel(manifest=manifest, model=estimator, _predict=estimator.predict)
        classes = Classes(values=manifest["classes"], encoded=manifest["label_encoding"] == "classes")
        proba = estimator.predict_proba if estimator.loss == "log_loss" else None
        return BuiltinModel(manifest=manifest, model=estimator, _predict=lambda X: classes.decode(estimator.predict(X)),
                            _predict_proba=proba)
