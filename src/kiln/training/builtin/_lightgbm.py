"""LightGBM, with the hyperparameter names and defaults of SageMaker's built-in LightGBM.

SageMaker picks the objective from the labels; Kiln adds an ``objective`` hyperparameter whose
``auto`` does the same predictably: ``binary`` when the labels are 0/1 (or two strings),
``multiclass`` when they are more than two strings or ``num_class`` > 2 is given, ``regression``
otherwise (set ``objective=multiclass`` or ``num_class`` for integer class labels ``0..k-1``).
``metric=auto`` is then ``rmse``, ``binary_logloss`` or ``multi_logloss``. Each iteration prints,
in the XGBoost container's format (counted from 1, as LightGBM counts)::

    [3]#011train-binary_logloss:0.21#011validation-binary_logloss:0.25

The model is LightGBM's text format, ``model.txt`` (the best iteration when early stopping ran).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from kiln.training.builtin._base import (
    Algorithm,
    BuiltinError,
    BuiltinModel,
    Hyperparameter as H,
    MetricDefinition,
    register,
    require,
)
from kiln.training.builtin._collective import agreed_labels, free_port, label_set, peers
from kiln.training.builtin._data import Channels, Classes, Frame

__all__ = ["LightGBM"]

METRICS = ("rmse", "l1", "l2", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie", "binary_logloss",
           "binary_error", "auc", "average_precision", "multi_logloss", "multi_error", "auc_mu", "cross_entropy")
REGRESSION = ("regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape", "gamma", "tweedie", "cross_entropy")
OBJECTIVES = ("auto", *REGRESSION, "binary", "multiclass", "multiclassova")
_AUTO_METRIC = {"binary": "binary_logloss", "multiclass": "multi_logloss", "multiclassova": "multi_logloss"}
_FRACTION = {"min": 0.0, "max": 1.0, "min_open": True}

HYPERPARAMETERS = (
    H("num_boost_round", "int", 100, min=1),
    H("early_stopping_rounds", "int", 10),
    H("metric", "str", "auto", choices=("auto", *METRICS)),
    H("objective", "str", "auto", choices=OBJECTIVES),
    H("num_class", "int", min=2),
    H("learning_rate", "float", 0.1, **_FRACTION),
    H("num_leaves", "int", 64, min=2, max=131072),
    H("feature_fraction", "float", 0.9, **_FRACTION),
    H("bagging_fraction", "float", 0.9, **_FRACTION),
    H("bagging_freq", "int", 1, min=0),
    H("max_depth", "int", 6),
    H("min_data_in_leaf", "int", 3, min=0),
    H("max_delta_step", "float", 0.0),
    H("lambda_l1", "float", 0.0, min=0),
    H("lambda_l2", "float", 0.0, min=0),
    H("boosting", "str", "gbdt", choices=("gbdt", "rf", "dart")),
    H("min_gain_to_split", "float", 0.0, min=0),
    H("scale_pos_weight", "float", 1.0, min=0, min_open=True),
    H("tree_learner", "str", "serial", choices=("serial", "feature", "data", "voting")),
    H("feature_fraction_bynode", "float", 1.0, **_FRACTION),
    H("is_unbalance", "bool", False),
    H("max_bin", "int", 255, min=2),
    H("num_threads", "int", 0, min=0),
    H("verbosity", "int", 1),
    H("seed", "int"),
    H("target", "str"),
)
_OWN = ("num_boost_round", "early_stopping_rounds", "target", "objective", "metric", "num_class", "num_threads")


@register
class LightGBM(Algorithm):
    name = "lightgbm"
    channels = ("train", "validation")
    hyperparameters = HYPERPARAMETERS
    metric_definitions = tuple(
        MetricDefinition(f"{channel}:{metric}", rf".*\[[0-9]+\].*#011{channel}-{re.escape(metric)}:([^#\s]+)")
        for channel in ("train", "validation") for metric in METRICS
    )
    booster_: Any
    classes_: Classes | None

    def fit(self, data: Channels) -> LightGBM:
        lgb = require("lightgbm")

        hp = self.hp
        assert data.train.y is not None
        labels, network = data.train.y, self._network(data.train.y)
        if network:
            labels = network.pop("labels")
        objective = self._objective(labels)
        self.objective_ = objective
        self.classes_ = self._classes(objective, labels)
        params = {k: v for k, v in hp.items() if k not in _OWN}
        params.update(objective=objective, metric=_AUTO_METRIC.get(objective, "rmse") if hp["metric"] == "auto" else hp["metric"],
                      num_threads=hp["num_threads"] or self.env.num_cpus, **network)
        if objective.startswith("multiclass"):
            assert self.classes_ is not None
            params["num_class"] = len(self.classes_.values)
        dtrain = self._dataset(data.train, "train", params)
        sets, names = [dtrain], ["train"]
        if data.validation is not None:
            sets.append(self._dataset(data.validation, "validation", params, reference=dtrain))
            names.append("validation")
        leader = not network or self.env.host_index == 0
        callbacks = [_print_evaluation] if leader else []  # the validation rows are the same on every host: algo-1 prints
        rounds = hp["early_stopping_rounds"]
        if rounds > 0 and data.validation is not None:
            callbacks.append(lgb.early_stopping(rounds, first_metric_only=True, verbose=False))
        self.booster_ = lgb.train(params, dtrain, num_boost_round=hp["num_boost_round"], valid_sets=sets,
                                  valid_names=names, callbacks=callbacks)
        if network:
            self.booster_.free_network()
        return self

    def _network(self, y: Any) -> dict[str, Any]:
        """With several hosts, the parameters that make LightGBM train data-parallel across them
        (and ``labels``, every shard's together); nothing for one host."""
        team = peers(self.env)
        if team is None:
            return {}
        learner = self.hp["tree_learner"]
        if learner == "feature":
            raise BuiltinError("tree_learner feature needs every host to hold all the rows; with several hosts "
                               "each holds its shard: use data or voting")
        port = free_port(team.address)
        everyone = team.exchange({"labels": label_set(y), "port": port})
        machines = ",".join(f"{team.addresses[h]}:{e['port']}" for h, e in zip(team.hosts, everyone))
        print(f"{team.current} joins the LightGBM network on port {port}: {machines}", flush=True)
        return {
            "labels": agreed_labels([e["labels"] for e in everyone], y),
            "tree_learner": "data" if learner == "serial" else learner, "num_machines": len(team.hosts),
            "machines": machines, "local_listen_port": port, "pre_partition": True,
            "time_out": max(1, math.ceil(team.timeout_s / 60)),  # LightGBM's socket time limit, in minutes
        }

    def _objective(self, y: Any) -> str:
        import numpy as np

        chosen = self.hp["objective"]
        if chosen != "auto":
            return str(chosen)
        if self.hp.get("num_class", 2) > 2:
            return "multiclass"
        if y.dtype == object:
            return "binary" if len(set(y)) == 2 else "multiclass"
        return "binary" if np.isin(y, (0, 1)).all() else "regression"

    def _classes(self, objective: str, y: Any) -> Classes | None:
        if objective in REGRESSION:
            if y.dtype == object:
                raise BuiltinError(
                    f"the label holds strings but objective {objective} needs numbers; use objective "
                    "binary or multiclass for classes"
                )
            return None
        if objective == "binary" and y.dtype != object:
            return Classes(values=[0, 1], encoded=False)
        classes = Classes.fit(y, index_labels=True, num_classes=self.hp.get("num_class"))
        if objective == "binary" and len(classes.values) != 2:
            raise BuiltinError(
                f"objective binary needs 2 classes; the label has {len(classes.values)}: "
                f"{classes.values[:10]}"
            )
        return classes

    def _dataset(self, frame: Frame, channel: str, params: dict[str, Any], reference: Any = None) -> Any:
        lgb = require("lightgbm")

        assert frame.y is not None
        y = self.classes_.codes(frame.y, channel) if self.classes_ is not None else frame.y
        # Dataset-level parameters must be the same for train and validation.
        ds_params = {k: params[k] for k in ("max_bin", "verbosity", "num_threads") if k in params}
        return lgb.Dataset(frame.X, label=y, weight=frame.weight, reference=reference, params=ds_params)

    def save(self, model_dir: Path) -> dict[str, Any]:
        # num_iteration=None saves the best iteration when early stopping found one.
        self.booster_.save_model(str(model_dir / "model.txt"))
        classes = self.classes_
        best = self.booster_.best_iteration
        return {
            "model_file": "model.txt",
            "model_format": "lightgbm-text",
            "task": "classification" if classes is not None else "regression",
            "classes": classes.values if classes is not None else None,
            "label_encoding": "classes" if classes is not None and classes.encoded else "none",
            "objective": self.objective_,
            "best_iteration": best if best > 0 else None,
            "num_boosted_rounds": self.booster_.current_iteration(),
        }

    @classmethod
    def load(cls, model_dir: Path, manifest: dict[str, Any]) -> BuiltinModel:
        lgb = require("lightgbm")
        import numpy as np

        booster = lgb.Booster(model_file=str(model_dir / manifest["model_file"]))
        if manifest["task"] != "classification":
            return BuiltinModel(manifest=manifest, model=booster, _predict=booster.predict)
        classes = Classes(values=manifest["classes"], encoded=manifest["label_encoding"] == "classes")

        def proba(X: Any) -> Any:
            p = np.asarray(booster.predict(X))
            return np.column_stack([1 - p, p]) if p.ndim == 1 else p

        return BuiltinModel(manifest=manifest, model=booster, _predict=lambda X: classes.decode(np.argmax(proba(X), axis=1)),
                            _predict_proba=proba)


def _print_evaluation(env: Any) -> None:
    """LightGBM callback: each iteration's metrics in the XGBoost container's format."""
    parts = [f"[{env.iteration + 1}]"]  # 1-based, as LightGBM's own log and best_iteration count
    for data, metric, value, *_ in env.evaluation_result_list or ():
        parts.append(f"#011{data}-{metric}:{value:.6g}")
    print("".join(parts), flush=True)


_print_evaluation.order = 10  # type: ignore[attr-defined]  # after LightGBM's own record/early-stop bookkeeping
