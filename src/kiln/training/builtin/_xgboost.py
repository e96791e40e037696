"""XGBoost, as SageMaker's built-in XGBoost algorithm runs it.

Hyperparameters keep SageMaker's names and ranges (``num_round`` required; ``eta``, ``lambda``,
``alpha`` with their XGBoost aliases). Each round prints, as that container's logs read::

    [3]#011train-rmse:0.41#011validation-rmse:0.47

(``#011`` is the tab the container's log shows escaped), so SageMaker's own metric definitions
(``validation:rmse`` = ``.*\\[[0-9]+\\].*#011validation-rmse:(\\S+)``) find them; Kiln's
definitions capture ``([^#\\s]+)`` so that a metric followed by another on the line reads cleanly
(``\\S+`` would run on into ``#011validation-...``). The model is ``xgboost-model``, XGBoost's
UBJSON format, readable by ``xgboost.Booster(model_file=...)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kiln.training.builtin._base import (
    TUNING_OBJECTIVE,
    Algorithm,
    BuiltinError,
    BuiltinModel,
    Hyperparameter as H,
    MetricDefinition,
    register,
    require,
)
from kiln.training.builtin._collective import agreed_labels, label_set, peers
from kiln.training.builtin._data import Channels, Classes, Frame

__all__ = ["XGBoost"]

MAXIMIZE = ("auc", "aucpr", "map", "ndcg", "pre", "interval-regression-accuracy")
MINIMIZE = ("rmse", "rmsle", "mae", "mape", "mphe", "logloss", "error", "merror", "mlogloss", "poisson-nloglik",
            "gamma-nloglik", "cox-nloglik", "gamma-deviance", "tweedie-nloglik", "aft-nloglik")
CLASSIFICATION = ("binary:logistic", "binary:logitraw", "binary:hinge", "multi:softmax", "multi:softprob")
OBJECTIVES = ("reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror",
              "reg:absoluteerror", "reg:gamma", "reg:tweedie", "count:poisson", *CLASSIFICATION)
_UNIT = {"min": 0.0, "max": 1.0}

HYPERPARAMETERS = (
    H("num_round", "int", required=True, min=1),
    H("num_class", "int", min=2),
    H("objective", "str", "reg:squarederror", choices=OBJECTIVES),
    H("eval_metric", "str"),
    H("early_stopping_rounds", "int", min=1),
    H("booster", "str", choices=("gbtree", "gblinear", "dart")),
    H("eta", "float", **_UNIT, aliases=("learning_rate",)),
    H("gamma", "float", min=0, aliases=("min_split_loss",)),
    H("max_depth", "int", min=0),
    H("min_child_weight", "float", min=0),
    H("max_delta_step", "float", min=0),
    H("subsample", "float", min=0, max=1, min_open=True),
    H("colsample_bytree", "float", min=0, max=1, min_open=True),
    H("colsample_bylevel", "float", min=0, max=1, min_open=True),
    H("colsample_bynode", "float", min=0, max=1, min_open=True),
    H("lambda", "float", min=0, aliases=("reg_lambda",)),
    H("alpha", "float", min=0, aliases=("reg_alpha",)),
    H("tree_method", "str", choices=("auto", "exact", "approx", "hist")),
    H("grow_policy", "str", choices=("depthwise", "lossguide")),
    H("max_leaves", "int", min=0),
    H("max_bin", "int", min=2),
    H("scale_pos_weight", "float", min=0, min_open=True),
    H("base_score", "float"),
    H("num_parallel_tree", "int", min=1),
    H("tweedie_variance_power", "float", min=1, max=2, min_open=True, max_open=True),
    H("sampling_method", "str", choices=("uniform", "gradient_based")),
    H("sample_type", "str", choices=("uniform", "weighted")),
    H("normalize_type", "str", choices=("tree", "forest")),
    H("rate_drop", "float", **_UNIT),
    H("skip_drop", "float", **_UNIT),
    H("one_drop", "int", min=0, max=1),
    H("seed", "int", 0),
    H("nthread", "int", min=1),
    H("verbosity", "int", min=0, max=3),
    H("csv_weights", "int", 0, min=0, max=1),
    H("target", "str"),
)
# Read by Kiln, not handed to xgboost.train's params.
_OWN = ("num_round", "early_stopping_rounds", "csv_weights", "target", "eval_metric")


@register
class XGBoost(Algorithm):
    name = "xgboost"
    channels = ("train", "validation")
    formats = ("csv", "parquet", "libsvm")
    hyperparameters = HYPERPARAMETERS
    metric_definitions = tuple(
        MetricDefinition(f"{channel}:{metric}", rf".*\[[0-9]+\].*#011{channel}-{re.escape(metric)}:([^#\s]+)")
        for channel in ("train", "validation") for metric in MAXIMIZE + MINIMIZE
    )
    booster_: Any
    classes_: Classes | None

    def fit(self, data: Channels) -> XGBoost:
        xgb = require("xgboost")

        hp = self.hp
        objective = "reg:squarederror" if hp["objective"] == "reg:linear" else hp["objective"]
        params = {k: v for k, v in hp.items() if k not in _OWN}
        params.update(objective=objective, nthread=hp.get("nthread", self.env.num_cpus))
        metrics, stop_metric = self._eval_metrics()
        if metrics:
            params["eval_metric"] = metrics
        assert data.train.y is not None
        self.objective_ = objective
        team = peers(self.env)
        if team is None:
            self.classes_ = self._classes(objective, data.train.y)
            self.booster_ = self._train(xgb, params, data, stop_metric, verbose=True)
            return self
        # Several hosts: algo-1 runs XGBoost's tracker; each host joins the collective with its
        # shard, and XGBoost allreduces the gradient histograms, so every host grows the same trees.
        tracker = None
        if team.leader:
            tracker = xgb.tracker.RabitTracker(n_workers=len(team.hosts), host_ip=team.address, port=0, sortby="task",
                                               timeout=int(team.timeout_s))
            tracker.start()
        try:
            everyone = team.exchange({"labels": label_set(data.train.y), "tracker": tracker.worker_args() if tracker else None})
            # The classes of every shard together: each host encodes its labels the same way.
            self.classes_ = self._classes(objective, agreed_labels([e["labels"] for e in everyone], data.train.y))
            args = {**everyone[0]["tracker"], "dmlc_task_id": team.current, "dmlc_timeout": int(team.timeout_s)}
            with xgb.collective.CommunicatorContext(**args):
                print(f"{team.current} joined the collective: rank {xgb.collective.get_rank()} of "
                      f"{xgb.collective.get_world_size()} (tracker {args['dmlc_tracker_uri']}:{args['dmlc_tracker_port']})",
                      flush=True)
                # Metrics are allreduced, the same on every host: algo-1 prints them, once.
                self.booster_ = self._train(xgb, params, data, stop_metric, verbose=team.leader)
            if tracker is not None:
                tracker.wait_for(int(team.timeout_s))
        finally:
            if tracker is not None:
                try:
                    tracker.free()
                except Exception:  # noqa: BLE001 - a tracker whose workers never came cannot end cleanly
                    pass
        return self

    def _train(self, xgb: Any, params: dict[str, Any], data: Channels, stop_metric: str | None, *, verbose: bool) -> Any:
        params = dict(params)
        params.pop("num_class", None)
        if self.classes_ is not None and self.objective_.startswith("multi:"):
            params["num_class"] = len(self.classes_.values)
        dtrain = self._dmatrix(data.train, "train", params["nthread"])
        evals = [(dtrain, "train")]
        if data.validation is not None:
            evals.append((self._dmatrix(data.validation, "validation", params["nthread"]), "validation"))
        callbacks: list[Any] = [_print_evaluation()] if verbose else []
        rounds = self.hp.get("early_stopping_rounds")
        if rounds and data.validation is None:
            if verbose:
                print("early_stopping_rounds is ignored: there is no validation channel", flush=True)
        elif rounds:
            maximize = (stop_metric or "").split("@")[0] in MAXIMIZE
            callbacks.append(xgb.callback.EarlyStopping(rounds=rounds, metric_name=stop_metric, data_name="validation",
                                                        maximize=maximize, save_best=True))
        return xgb.train(params, dtrain, num_boost_round=self.hp["num_round"], evals=evals, callbacks=callbacks,
                         verbose_eval=False)

    def _eval_metrics(self) -> tuple[list[str], str | None]:
        """eval_metric as a list (SageMaker takes a comma list), plus the tuning objective's metric
        (``_tuning_objective_metric``, added when missing) which early stopping then watches."""
        metrics = [m.strip() for m in (self.hp.get("eval_metric") or "").split(",") if m.strip()]
        for m in metrics:
            if m.split("@")[0] not in MAXIMIZE + MINIMIZE:
                raise BuiltinError(
                    f"eval_metric {m!r} is not an XGBoost metric; known: "
                    f"{', '.join(sorted(MAXIMIZE + MINIMIZE))}"
                )
        tuned = str(self.env.hyperparameters.get(TUNING_OBJECTIVE) or "")
        stop = metrics[-1] if metrics else None
        if ":" in tuned and tuned.split(":", 1)[1].split("@")[0] in MAXIMIZE + MINIMIZE:
            stop = tuned.split(":", 1)[1]
            if stop not in metrics:
                metrics.append(stop)
        return metrics, stop

    def _classes(self, objective: str, y: Any) -> Classes | None:
        if objective not in CLASSIFICATION:
            if y.dtype == object:
                raise BuiltinError(
                    f"the label holds strings but objective {objective} needs numbers; use "
                    "binary:logistic or multi:softprob for classes"
                )
            return None
        if objective.startswith("binary:"):
            if y.dtype != object:
                outside = y[(y < 0) | (y > 1)]
                if outside.size:
                    raise BuiltinError(
                        f"objective {objective} needs labels 0 and 1 (or probabilities in [0, 1]); "
                        f"the label has {outside[0]:g}"
                    )
                return Classes(values=[0, 1], encoded=False)  # numeric labels pass through, as in SageMaker
            classes = Classes.fit(y, index_labels=True)
            if len(classes.values) != 2:
                raise BuiltinError(
                    f"objective {objective} needs 2 classes; the label has {len(classes.values)}: "
                    f"{classes.values[:10]}"
                )
            return classes
        num_class = self.hp.get("num_class")
        if num_class is None and y.dtype != object:
            raise BuiltinError(f"hyperparameter num_class is required when objective is {objective}")
        classes = Classes.fit(y, index_labels=True, num_classes=num_class)
        if num_class is not None and len(classes.values) > num_class:
            raise BuiltinError(f"num_class is {num_class} but the label has {len(classes.values)} classes")
        return classes

    def _dmatrix(self, frame: Frame, channel: str, nthread: int) -> Any:
        xgb = require("xgboost")

        assert frame.y is not None
        y = self.classes_.codes(frame.y, channel) if self.classes_ is not None and self.classes_.encoded else frame.y
        return xgb.DMatrix(frame.X, label=y, weight=frame.weight, nthread=nthread)

    def save(self, model_dir: Path) -> dict[str, Any]:
        # save_raw, not save_model: a name without extension makes save_model warn while it picks UBJSON.
        (model_dir / "xgboost-model").write_bytes(self.booster_.save_raw(raw_format="ubj"))
        classes = self.classes_
        return {
            "model_file": "xgboost-model",
            "model_format": "xgboost-ubj",
            "task": "classification" if classes is not None else "regression",
            "classes": classes.values if classes is not None else None,
            "label_encoding": "classes" if classes is not None and classes.encoded else "none",
            "objective": self.objective_,
            "best_iteration": getattr(self.booster_, "best_iteration", None),
            "num_boosted_rounds": self.booster_.num_boosted_rounds(),
        }

    @classmethod
    def load(cls, model_dir: Path, manifest: dict[str, Any]) -> BuiltinModel:
        import numpy as np
        xgb = require("xgboost")

        booster = xgb.Booster()
        booster.load_model(bytearray((model_dir / manifest["model_file"]).read_bytes()))
        objective = manifest["objective"]

        def raw(X: Any, margin: bool = False) -> Any:
            # As SageMaker's container: rows carry no feature names, so features are not validated by name.
            return booster.predict(xgb.DMatrix(X), output_margin=margin, validate_features=False)

        if manifest["task"] != "classification":
            return BuiltinModel(manifest=manifest, model=booster, _predict=raw)
        classes = Classes(values=manifest["classes"], encoded=manifest["label_encoding"] == "classes")

        def proba(X: Any) -> Any:
            if objective.startswith("multi:"):
                m = raw(X, margin=True)
                e = np.exp(m - m.max(axis=1, keepdims=True))
                return e / e.sum(axis=1, keepdims=True)
            p = 1 / (1 + np.exp(-raw(X, margin=True)))
            return np.column_stack([1 - p, p])

        def predict(X: Any) -> Any:
            if objective in ("binary:hinge", "multi:softmax"):
                return classes.decode(raw(X))
            return classes.decode(np.argmax(proba(X), axis=1))

        return BuiltinModel(manifest=manifest, model=booster, _predict=predict,
                            _predict_proba=None if objective == "binary:hinge" else proba)


def _print_line(epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> str:
    parts = [f"[{epoch}]"]
    for data, metrics in evals_log.items():
        for metric, values in metrics.items():
            value = values[-1][0] if isinstance(values[-1], tuple) else values[-1]
            parts.append(f"#011{data}-{metric}:{value:.6g}")
    return "".join(parts)


def _print_evaluation() -> Any:
    """An xgboost TrainingCallback printing each round's metrics in the SageMaker container's format."""
    xgb = require("xgboost")

    class PrintEvaluation(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            print(_print_line(epoch, evals_log), flush=True)
            return False

    return PrintEvaluation()
