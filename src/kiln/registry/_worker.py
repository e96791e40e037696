"""Models in a worker process: the parent's :class:`WorkerPredictor` and the functions
the worker runs (:func:`load`, :func:`predict`).

The parent verifies and downloads the package and decides whether its code may
run; the worker only loads the folder it is given and predicts. Inputs travel as
Arrow IPC, predictions come back as arrays packed without pickles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument, ModelError
from kiln.core.worker import Worker, pack_array, unpack_array
from kiln.registry._flavors import ManifestFacts
from kiln.registry._models import Manifest

__all__ = ["WorkerPredictor"]


class WorkerPredictor(ManifestFacts):
    """A registered model loaded in its own worker process; ``predict`` like a Predictor.

    Close it (or use it as a context manager) to stop the worker.
    """

    def __init__(self, *, worker: Worker, manifest: Manifest, can_predict_proba: bool) -> None:
        self.worker = worker
        self.manifest = manifest
        self.can_predict_proba = can_predict_proba

    @classmethod
    def start(cls, folder: Path, manifest: Manifest, *, trusted: bool, trusted_types: tuple[str, ...], timeout_s: float, label: str, home: Path) -> WorkerPredictor:
        """Start a worker and load the verified package in ``folder`` there.

        Raises:
            PermissionDenied: the package needs a trust it was not given.
            ModelError: the model files could not be loaded (not what their flavor says they
                are), or loading crashed or hung the worker.
        """
        worker = Worker(timeout_s=timeout_s, label=label, redact=[str(folder), str(home)])
        try:
            info, _ = worker.call(
                "kiln.registry._worker:load",
                {"folder": str(folder), "manifest": manifest.model_dump_json(), "trusted": trusted, "trusted_types": list(trusted_types)},
            )
        except ModelError as exc:
            crashed = not worker.alive
            worker.close()
            if crashed:
                raise
            raise ModelError(f"{label} could not be loaded as a {manifest.flavor} model: {exc.message[:500]}") from None
        except BaseException:
            worker.close()
            raise
        return cls(worker=worker, manifest=manifest, can_predict_proba=bool(info.get("can_predict_proba")))

    def predict_both(self, data: Any, *, proba: bool = True) -> tuple[Any, Any]:
        """Predictions, and class probabilities when asked and the model gives them, in one call."""
        result, blobs = self.worker.call("kiln.registry._worker:predict", {"proba": bool(proba and self.can_predict_proba)}, [_table_bytes(data)])
        pred = unpack_array(result["pred"], blobs[0])
        probs = unpack_array(result["proba"], blobs[1]) if result.get("proba") else None
        return pred, probs

    def predict(self, data: Any) -> Any:
        return self.predict_both(data, proba=False)[0]

    def predict_proba(self, data: Any) -> Any:
        if not self.can_predict_proba:
            raise InvalidArgument(f"this {self.flavor} model does not give class probabilities")
        return self.predict_both(data)[1]

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> WorkerPredictor:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _table_bytes(data: Any) -> bytes:
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, pa.Table):
        table = data
    else:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# -- in the worker ------------------------------------------------------------------------


def load(state: dict[str, Any], args: dict[str, Any], _: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    from kiln.registry._flavors import LoadOptions
    from kiln.registry._load import load_folder

    manifest = Manifest.model_validate_json(args["manifest"])
    options = LoadOptions(trust_pickle=bool(args["trusted"]), trusted_types=tuple(args.get("trusted_types") or ()))
    predictor = load_folder(Path(args["folder"]), manifest, options)
    state["predictor"] = predictor
    return {"can_predict_proba": predictor.can_predict_proba}, []


def predict(state: dict[str, Any], args: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    import pyarrow as pa

    predictor = state.get("predictor")
    if predictor is None:
        raise InvalidArgument("no model is loaded in this worker")
    frame = pa.ipc.open_stream(blobs[0]).read_all().to_pandas()
    pred_kind, pred = pack_array(predictor.predict(frame))
    if not args.get("proba"):
        return {"pred": pred_kind}, [pred]
    proba_kind, proba = pack_array(predictor.predict_proba(frame))
    return {"pred": pred_kind, "proba": proba_kind}, [pred, proba]
