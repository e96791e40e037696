"""Fast paths: a model's predictions without the framework's per-call overhead, checked at load.

:func:`attach_fast_path` runs at :meth:`Servable.load` (unless ``fast_path=False``) and
gives the servable one of:

- ``linear``: scikit-learn linear models (LogisticRegression, LinearRegression, Ridge,
  SGD, Lasso/ElasticNet, LinearSVC..., behind StandardScaler / MinMaxScaler steps of a
  Pipeline) and the linear-learner built-in, as the same numpy dot product scikit-learn
  computes (so bitwise the same scores), then the threshold or argmax and the classes;
- ``onnx``: scikit-learn RandomForest / ExtraTrees / GradientBoosting converted by
  skl2onnx and run by onnxruntime on one thread, for requests of at most ``TREE_ROWS``
  rows (the framework is as fast on batches);
- ``treelite``: the other tree ensembles (HistGradientBoosting, XGBoost, LightGBM; and the
  forests above when skl2onnx is missing or its model differs) imported into treelite and
  predicted by its GTIL on one thread, with its configuration parsed once, for at most
  ``TREE_ROWS`` rows (GTIL walks rows one by one).

Measured for one row of a 100-tree RandomForest (20 features, depth ~30) on this 2-core
machine under load: scikit-learn's predict 14 ms, onnxruntime 36 µs, GTIL 78 µs, a numpy
traversal of all trees at once about 2× GTIL. skl2onnx writes each threshold as the float32
that splits as scikit-learn's float32 comparison does (rows placed on every rounded split
of a tree gave the same leaves), but adds leaves in float32: its probabilities differ by
~5e-8 and, without a guard, 2 labels in 3,000 rows differed on exact ties. GTIL compares
and adds in the model's own precision. Hence onnxruntime for the forests it converts,
GTIL for the rest.

A fast path serves only after it gave the framework's own predictions (labels equal,
numbers within float tolerance) on sample rows at load; rows with a NaN or infinity,
other dtypes, and a classifier's near-ties (two classes within ``TIE`` of each other,
where summation order could flip the label) go to the framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["TIE", "TIE32", "TREE_ROWS", "attach_fast_path", "close"]

log = logging.getLogger("kiln.serving")

TREE_ROWS = 16
TIE = 1e-9
TIE32 = 1e-5  # float32 sums: leaves added in another order differ by about that much
_SAMPLE_ROWS = 200
Fast = Callable[[np.ndarray], Any]


def attach_fast_path(servable: Any) -> None:
    """Give ``servable`` a fast path where one reproduces its framework's predictions."""
    if servable._predict_fn is not None or servable._transform_fn is not None or servable._predictor is None:
        return
    columns = servable.columns
    if not columns.all_numeric or columns.count is None:
        return
    framework = servable._predictor.predict
    sample: np.ndarray | None = None
    for build in (_linear, _onnx_trees, _trees):  # fastest first
        try:
            found = build(servable.model, servable.manifest)
        except Exception as exc:  # noqa: BLE001 - a model a builder cannot read serves through its framework
            log.debug("no fast path (%s): %s", build.__name__, exc)
            found = None
        if found is None:
            continue
        name, fn, max_rows = found
        if sample is None:
            sample = _sample_rows(servable.model, fn, columns.count)
        dtype = _agrees(fn, framework, sample)
        if dtype is None:
            log.info("fast path %s disabled for %s: it does not give the framework's predictions", name, servable.name)
            continue
        servable._fast = _guarded(fn, servable._default_predict, dtype, max_rows)
        servable.fast_path = name
        return


def _guarded(fn: Fast, framework: Callable[[Any], Any], dtype: Any, max_rows: int) -> Fast:
    """The fast path on the rows it was checked for; the framework for the rest."""
    f64 = np.dtype(np.float64)
    isfinite = np.isfinite

    def fast(rows: np.ndarray) -> Any:
        if rows.dtype != f64 or rows.shape[0] > max_rows or not isfinite(rows.sum()):
            return framework(rows)
        out = fn(rows)
        if out is None:  # a near-tie: the framework decides
            return framework(rows)
        return out if out.dtype == dtype else out.astype(dtype)

    return fast


def _agrees(fn: Fast, framework: Callable[[Any], Any], sample: np.ndarray) -> Any:
    """The framework's output dtype when ``fn`` gives its predictions on every sample row (one
    at a time and all together), else None."""
    try:
        want = np.asarray(framework(sample))
        together = fn(sample)
        singles = [fn(sample[i : i + 1]) for i in range(min(len(sample), 40))]
    except Exception as exc:  # noqa: BLE001 - a fast path that fails is not used
        log.debug("fast path failed on sample rows: %s", exc)
        return None
    for got, expect in [(together, want)] + [(s, want[i : i + 1]) for i, s in enumerate(singles)]:
        if got is None:
            continue  # a near-tie the framework would answer
        got = np.asarray(got)
        if got.shape != expect.shape:
            return None
        if expect.dtype.kind in "fc":
            if not close(got, expect):
                return None
        elif got.tolist() != expect.tolist():
            return None
    return want.dtype


def close(got: Any, want: Any) -> bool:
    """Equal within float tolerance: relative 1e-5, and absolute 1e-5 of the largest value
    (a sum of many float32 trees in another order differs by that much near zero)."""
    want = np.asarray(want)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    return bool(np.allclose(got, want, rtol=1e-5, atol=1e-5 * scale))


def _sample_rows(model: Any, fn: Any, count: int) -> np.ndarray:
    """Rows to check a fast path on: values on and around the model's split points where it has them."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(_SAMPLE_ROWS, count)) * 3
    split_points = _thresholds(fn, count) or _sklearn_thresholds(model, count)
    for j, values in split_points.items():
        picks = rng.choice(values, size=_SAMPLE_ROWS)
        jitter = rng.choice([0.0, 0.0, 1e-7, -1e-7, 0.5, -0.5], size=_SAMPLE_ROWS)
        rows[:, j] = picks + jitter * np.maximum(np.abs(picks), 1)
    return rows


def _thresholds(model: Any, count: int) -> dict[int, np.ndarray]:
    """Split values per feature of a tree ensemble (as treelite holds them); none for other models."""
    tl = getattr(model, "_kiln_treelite", None)
    if tl is None:
        return {}
    found: dict[int, list[np.ndarray]] = {}
    for i in range(min(int(tl.num_tree), 50)):
        tree = tl.get_tree_accessor(i)
        inner = np.asarray(tree.get_field("cleft")) != -1
        features = np.asarray(tree.get_field("split_index"))[inner]
        thresholds = np.asarray(tree.get_field("threshold"), dtype=np.float64)[inner]
        for f in np.unique(features):
            if 0 <= f < count:
                found.setdefault(int(f), []).append(thresholds[features == f])
    return {f: np.concatenate(v) for f, v in found.items()}


def _sklearn_thresholds(model: Any, count: int) -> dict[int, np.ndarray]:
    """Split values per feature of a scikit-learn tree ensemble (``estimators_`` of fitted trees)."""
    found: dict[int, list[np.ndarray]] = {}
    for est in list(np.ravel(getattr(model, "estimators_", [])))[:50]:
        tree = getattr(est, "tree_", None)
        if tree is None:
            continue
        inner = tree.children_left != -1
        features, thresholds = tree.feature[inner], tree.threshold[inner]
        for f in np.unique(features):
            if 0 <= f < count:
                found.setdefault(int(f), []).append(thresholds[features == f])
    return {f: np.concatenate(v) for f, v in found.items()}


# -- linear models --------------------------------------------------------------------------

_LINEAR_CLASSIFIERS = ("LogisticRegression", "SGDClassifier", "RidgeClassifier", "LinearSVC", "Perceptron",
                       "PassiveAggressiveClassifier", "LogisticRegressionCV", "RidgeClassifierCV")
_LINEAR_REGRESSORS = ("LinearRegression", "Ridge", "RidgeCV", "SGDRegressor", "Lasso", "ElasticNet", "LassoCV",
                      "ElasticNetCV", "LinearSVR", "HuberRegressor", "BayesianRidge", "ARDRegression")


def _linear(model: Any, manifest: Any) -> tuple[str, Fast, int] | None:
    if type(model).__name__ == "BuiltinModel":
        return _builtin_linear(model)
    steps: list[Callable[[np.ndarray], np.ndarray]] = []
    if type(model).__name__ == "Pipeline" and type(model).__module__.startswith("sklearn"):
        *pre, (_, model) = model.steps
        for _, step in pre:
            scale = _scaler(step)
            if scale is None:
                return None
            steps.append(scale)
    if not type(model).__module__.startswith("sklearn.linear_model") and not type(model).__module__.startswith("sklearn.svm"):
        return None
    kind = type(model).__name__
    # The same arrays, in the same layout, that scikit-learn's decision_function multiplies.
    coef_t = model.coef_.T
    intercept = model.intercept_
    if kind in _LINEAR_CLASSIFIERS:
        classes = np.asarray(model.classes_)
        binary = coef_t.ndim == 2 and coef_t.shape[1] == 1

        def classify(x: np.ndarray) -> np.ndarray:
            for step in steps:
                x = step(x)
            scores = x @ coef_t + intercept
            if binary:
                return classes[(scores.ravel() > 0).astype(np.intp)]
            return classes[scores.argmax(axis=1)]

        return "linear", classify, 1 << 30
    if kind in _LINEAR_REGRESSORS:

        def regress(x: np.ndarray) -> np.ndarray:
            for step in steps:
                x = step(x)
            return x @ coef_t + intercept

        return "linear", regress, 1 << 30
    return None


def _scaler(step: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A StandardScaler / MinMaxScaler as scikit-learn applies it (same operations, same order)."""
    name = type(step).__name__
    if name == "StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(x: np.ndarray) -> np.ndarray:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
            return x

        return standard
    if name == "MinMaxScaler" and not step.clip:
        mul, add = step.scale_, step.min_

        def minmax(x: np.ndarray) -> np.ndarray:
            x = x * mul
            x += add
            return x

        return minmax
    return None


def _builtin_linear(model: Any) -> tuple[str, Fast, int] | None:
    """The linear-learner built-in: its SGD estimator on float32 rows, classes decoded as it does."""
    if model.algorithm != "linear-learner":
        return None
    found = _linear(model.model, None)
    if found is None:
        return None
    _, inner, _ = found
    manifest = model.manifest
    labels = np.asarray(manifest["classes"]) if manifest.get("task") == "classification" and manifest.get("label_encoding") == "classes" else None

    def predict(x: np.ndarray) -> np.ndarray:
        out = inner(x.astype(np.float32))  # the built-in reads rows as float32
        return labels[out.astype(np.intp)] if labels is not None else out

    return "linear", predict, 1 << 30


# -- tree ensembles ---------------------------------------------------------------------------

_SKLEARN_TREES = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
                  "GradientBoostingClassifier", "GradientBoostingRegressor",
                  "HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def _trees(model: Any, manifest: Any) -> tuple[str, Fast, int] | None:
    try:
        import treelite
    except ImportError:
        return None
    module, kind = type(model).__module__, type(model).__name__
    classes: Any = None
    cast32 = False
    if module.startswith("sklearn.ensemble") and kind in _SKLEARN_TREES:
        import treelite.sklearn

        if kind.startswith("HistGradientBoosting") and getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
            return None
        tl = treelite.sklearn.import_model(model)
        classes = getattr(model, "classes_", None)
        cast32 = not kind.startswith("HistGradientBoosting")  # scikit-learn's trees compare float32 values
    elif module.startswith("xgboost"):
        booster = model if kind == "Booster" else model.get_booster()
        tl = treelite.frontend.from_xgboost(booster)
        classes = getattr(model, "classes_", None) if kind != "Booster" else None
    elif module.startswith("lightgbm"):
        booster = model if kind == "Booster" else model.booster_
        if _lgb_categorical(booster):
            return None
        tl = treelite.frontend.from_lightgbm(booster)
        if kind == "Booster" and manifest is not None:
            found = manifest.flavor_options.get("classes") or manifest.classes
            classes = np.asarray(found) if found else None
        else:
            classes = getattr(model, "classes_", None)
    else:
        return None
    gtil = _Gtil(tl)
    if classes is None:
        values = _values(gtil, cast32)
        values._kiln_treelite = tl  # type: ignore[attr-defined]
        return "treelite", values, TREE_ROWS
    labels = np.asarray(classes)
    tie = TIE if gtil.out_dtype == np.float64 else TIE32

    def classify(x: np.ndarray) -> np.ndarray | None:
        return _labels(gtil(x.astype(np.float32).astype(np.float64) if cast32 else x), labels, tie)

    classify._kiln_treelite = tl  # type: ignore[attr-defined]
    return "treelite", classify, TREE_ROWS


def _labels(out: np.ndarray, labels: np.ndarray, tie: float) -> np.ndarray | None:
    """Class labels from probabilities; None when two classes are within ``tie`` (the framework decides)."""
    proba = out.reshape(out.shape[0], -1)
    if proba.shape[1] == 1:  # binary with one sigmoid output
        p = proba[:, 0]
        if np.any(np.abs(p - 0.5) < tie):
            return None
        return labels[(p > 0.5).astype(np.intp)]
    top = np.sort(proba, axis=1)[:, -2:]
    if np.any(top[:, 1] - top[:, 0] < tie):
        return None
    return labels[proba.argmax(axis=1)]


_ONNX_TREES = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
               "GradientBoostingClassifier", "GradientBoostingRegressor")


def _onnx_trees(model: Any, manifest: Any) -> tuple[str, Fast, int] | None:
    """scikit-learn forests converted by skl2onnx, run by onnxruntime on one thread.

    scikit-learn's trees compare float32 values, as ONNX's do (skl2onnx writes each
    threshold as the float32 that splits the same way); leaves are summed in float32, so
    labels within ``TIE32`` of a tie go to the framework. HistGradientBoosting compares
    float64 values and stays on GTIL.
    """
    if not type(model).__module__.startswith("sklearn.ensemble") or type(model).__name__ not in _ONNX_TREES:
        return None
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx
    except ImportError:
        return None
    count = int(model.n_features_in_)
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    proto = to_onnx(model, np.zeros((1, count), dtype=np.float32), options=options)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    run = session.run
    classes = getattr(model, "classes_", None)
    f32 = np.float32
    if classes is None:
        out_name = [session.get_outputs()[0].name]

        def values(x: np.ndarray) -> np.ndarray:
            return run(out_name, {feed: x.astype(f32)})[0].ravel()

        return "onnx", values, TREE_ROWS
    labels = np.asarray(classes)
    proba_name = [session.get_outputs()[1].name]

    def classify(x: np.ndarray) -> np.ndarray | None:
        return _labels(run(proba_name, {feed: x.astype(f32)})[0], labels, TIE32)

    return "onnx", classify, TREE_ROWS


def _values(gtil: _Gtil, cast32: bool) -> Fast:
    def values(x: np.ndarray) -> np.ndarray:
        out = gtil(x.astype(np.float32).astype(np.float64) if cast32 else x)
        flat = out.reshape(out.shape[0], -1)
        return flat[:, 0] if flat.shape[1] == 1 else flat

    return values


def _lgb_categorical(booster: Any) -> bool:
    """Whether a LightGBM model splits on categories (treelite's GTIL path is kept to numeric splits)."""
    text = booster.model_to_string()
    return "num_cat=" in text and any(line.startswith("num_cat=") and line != "num_cat=0" for line in text.splitlines())


class _Gtil:
    """treelite's GTIL predict on one thread, its configuration parsed once (``gtil.predict``
    parses it on every call) and its output shape known."""

    def __init__(self, model: Any) -> None:
        import ctypes

        from treelite.core import _LIB, _check_call
        from treelite.gtil.gtil import GTILConfig
        from treelite.util import typestr_to_ctypes_type, typestr_to_numpy_type

        self.model = model
        self.config = GTILConfig(nthread=1, predict_type="default")
        self.in_type = model.input_type
        self.in_dtype = typestr_to_numpy_type(self.in_type)
        self.out_dtype = typestr_to_numpy_type(model.output_type)
        self.in_ptr = ctypes.POINTER(typestr_to_ctypes_type(self.in_type))
        self.out_ptr = ctypes.POINTER(typestr_to_ctypes_type(model.output_type))
        self.in_name = self.in_type.encode()
        self.num_feature = model.num_feature
        shape_ptr = ctypes.POINTER(ctypes.c_uint64)()
        ndim = ctypes.c_uint64()
        _check_call(_LIB.TreeliteGTILGetOutputShape(model.handle, ctypes.c_uint64(1), self.config.handle,
                                                    ctypes.byref(shape_ptr), ctypes.byref(ndim)))
        self.tail = tuple(int(v) for v in np.ctypeslib.as_array(shape_ptr, shape=(ndim.value,))[1:])
        self._lib, self._check, self._u64 = _LIB, _check_call, ctypes.c_uint64

    def __call__(self, x: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(x, dtype=self.in_dtype)
        if data.shape[1] != self.num_feature:
            raise ValueError(f"the model takes {self.num_feature} features, got {data.shape[1]}")
        out = np.zeros((data.shape[0], *self.tail), dtype=self.out_dtype)
        self._check(self._lib.TreeliteGTILPredict(
            self.model.handle, data.ctypes.data_as(self.in_ptr), self.in_name, self._u64(data.shape[0]),
            out.ctypes.data_as(self.out_ptr), self.config.handle,
        ))
        return out
