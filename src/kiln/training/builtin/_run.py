"""Running a built-in algorithm as a SageMaker training program, and loading what it saved."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kiln.training.builtin._base import MANIFEST, BuiltinError, BuiltinModel, coerce_hyperparameters, registered
from kiln.training.builtin._data import read_channels
from kiln.training.builtin._env import TrainingEnv

__all__ = ["load_builtin", "main"]

FORMAT_VERSION = 1
_LIBRARY = {"xgboost": "xgboost", "lightgbm": "lightgbm"}
# XGBoost's errors start "[12:00:00] /workspace/src/objective/regression_obj.cu:114: Check failed: ...".
_LIBRARY_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: (Check failed: \S+: )?")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kiln.training.builtin ALGO``: train ALGO on the job described by the ``SM_*``
    environment, save the model under ``SM_MODEL_DIR``; return the exit status.

    Arguments after ALGO are ignored: the runner passes the hyperparameters as ``--name value``
    arguments to every program, but this one reads them, typed, from ``SM_HPS``. A failure writes
    one actionable sentence to ``output/failure`` and returns non-zero.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    names = sorted(registered())
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: python -m kiln.training.builtin ALGORITHM   (one of: {', '.join(names)})")
        return 0 if args else 2
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # metric lines reach the runner as they are printed
    try:
        env = TrainingEnv.from_environ()
    except BuiltinError as exc:
        return _fail(_output_dir_from_environ(), exc.message, exc.exit_code)
    try:
        _train(args[0], env)
    except BuiltinError as exc:
        return _fail(env.output_dir, exc.message, exc.exit_code)
    except MemoryError:
        return _fail(env.output_dir, f"{args[0]} ran out of memory: give the job more memory or fewer rows", 1)
    except Exception as exc:  # a library's own error: its first line is the reason, the traceback goes to the log
        traceback.print_exc()
        detail = _LIBRARY_PREFIX.sub("", str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
        return _fail(env.output_dir, f"{args[0]} failed: {type(exc).__name__}: {detail}"[:1024], 1)
    return 0


def _train(name: str, env: TrainingEnv) -> None:
    algorithms = registered()
    if name not in algorithms:
        raise BuiltinError(f"unknown built-in algorithm {name!r}; the built-ins are: {', '.join(sorted(algorithms))}")
    cls = algorithms[name]
    hp = coerce_hyperparameters(name, cls.hyperparameters, env.hyperparameters)
    print(f"kiln built-in {name}, host {env.current_host} of {len(env.hosts)}, {env.num_cpus} CPU(s); "
          f"hyperparameters {json.dumps(hp, sort_keys=True)}")
    start = time.perf_counter()
    data = read_channels(env, channels=cls.channels, supervised=cls.supervised, target=hp.get("target"),
                         formats=cls.formats, weights=hp.get("csv_weights") == 1)
    for channel, frame in data.evaluated():
        print(f"channel {channel}: {frame.rows} rows, {frame.features} features")
    print(f"data read in {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    algorithm = cls(hyperparameters=hp, env=env).fit(data)
    print(f"trained in {time.perf_counter() - start:.2f} s")
    if env.host_index != 0:
        print(f"model saved by {env.hosts[0]}: its model/ is the job's")
        return
    env.model_dir.mkdir(parents=True, exist_ok=True)
    facts = algorithm.save(env.model_dir)
    train = data.train
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "algorithm": name,
        "hyperparameters": hp,
        "feature_count": train.features,
        "feature_names": train.feature_names,
        "label": None if not cls.supervised else {"column": train.label_name if train.label_name else 0,
                                                   "source": "target" if hp.get("target") else "first column"},
        "train_rows": train.rows,
        "library": _library_version(name),
        **facts,
    }
    (env.model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_jsonable))
    print(f"model saved: {env.model_dir / facts['model_file']}")


def _library_version(name: str) -> dict[str, str]:
    import importlib.metadata as md

    lib = _LIBRARY.get(name, "scikit-learn")
    for dist in ((lib, "xgboost-cpu") if lib == "xgboost" else (lib,)):
        try:
            return {"name": lib, "version": md.version(dist)}
        except md.PackageNotFoundError:
            continue
    return {"name": lib, "version": "unknown"}


def _jsonable(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _output_dir_from_environ() -> Path:
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    return Path(os.environ.get("SM_OUTPUT_DIR", base / "output"))


def _fail(output_dir: Path, message: str, code: int) -> int:
    print(f"Error: {message}", file=sys.stderr, flush=True)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(message + "\n")
    except OSError as exc:
        print(f"could not write {output_dir / 'failure'}: {exc}", file=sys.stderr)
    return code or 1


def load_builtin(model_dir: str | Path) -> BuiltinModel:
    """Load a model a built-in algorithm saved, from its ``kiln-algorithm.json`` and native file.

    Args:
        model_dir: the folder the training job saved (``SM_MODEL_DIR``, or the unpacked artifact).

    Returns:
        A :class:`BuiltinModel` with ``predict(X)`` (and ``predict_proba`` for classifiers).

    Raises:
        BuiltinError: no manifest, an unknown algorithm, or a model file name that is not a plain name.
    """
    folder = Path(model_dir)
    path = folder / MANIFEST
    if not path.is_file():
        raise BuiltinError(f"{folder} holds no {MANIFEST}: it is not a model saved by a Kiln built-in algorithm")
    manifest = json.loads(path.read_text())
    algorithms = registered()
    name = manifest.get("algorithm")
    if name not in algorithms:
        raise BuiltinError(
            f"{MANIFEST} names algorithm {name!r}, which is not a built-in; built-ins: "
            f"{', '.join(sorted(algorithms))}"
        )
    model_file = str(manifest.get("model_file", ""))
    if not model_file or Path(model_file).name != model_file or model_file in (".", ".."):
        raise BuiltinError(f"{MANIFEST} names model file {model_file!r}; it must be a file name inside {folder}")
    return algorithms[name].load(folder, manifest)
