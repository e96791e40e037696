"""Reading what endpoints captured (CONTRACTS.md §4) into rows: CSV and JSON inputs (plain or
BASE64), header-less CSV mapped onto the baseline's feature order, outputs as predictions.
A line that cannot be read is counted, never raised."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

__all__ = ["CaptureRows", "parse_time", "read_capture"]

_ROW_KEYS = ("instances", "inputs", "dataframe_records", "data", "features")


def parse_time(text: Any) -> float | None:
    """Epoch seconds of an ISO-8601 ``inferenceTime`` (``...Z``), None when unreadable."""
    if not isinstance(text, str):
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@dataclass
class CaptureRows:
    """Captured rows of a window.

    Attributes:
        rows: one dict per input row (feature -> value), positional CSV mapped to ``features``.
        predictions: per input row, the model's output for it (None when unknown).
        ids: per input row, ``(inferenceId or eventId, row index within the event)``.
        faults: counts of what could not be read, by reason.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    ids: list[tuple[str, int]] = field(default_factory=list)
    events: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def fault(self, reason: str, n: int = 1) -> None:
        self.faults[reason] = self.faults.get(reason, 0) + n

    def table(self, features: list[str]) -> pa.Table:
        """The rows as a table: the baseline's features first, then any others; each column
        typed by Arrow where its values agree, else as text (checked against the baseline later)."""
        names = list(features) + sorted({k for r in self.rows for k in r} - set(features))
        names = [n for n in names if any(n in r for r in self.rows)] if self.rows else []
        cols = []
        for n in names:
            values = [r.get(n) for r in self.rows]
            try:
                arr = pa.array(values)
                if pa.types.is_null(arr.type):
                    arr = pa.array(values, type=pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arr = pa.array([None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() if isinstance(v, dict | list) else str(v)
                                for v in values], type=pa.string())
            cols.append(arr)
        return pa.table(cols, names=names) if names else pa.table({})


def _decode(part: dict[str, Any]) -> tuple[str, str]:
    """(media type, text) of a captured input or output."""
    data = part.get("data")
    if not isinstance(data, str):
        raise ValueError("no data")
    media = str(part.get("observedContentType") or "").split(";", 1)[0].strip().lower()
    if str(part.get("encoding", "")).upper() == "BASE64":
        data = base64.b64decode(data, validate=True).decode("utf-8")
    return media, data


def _csv_value(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _positional(values: list[Any], features: list[str]) -> dict[str, Any]:
    return {(features[i] if i < len(features) else f"_c{i}"): v for i, v in enumerate(values)}


def _input_rows(media: str, text: str, features: list[str]) -> list[dict[str, Any]]:
    if "csv" in media:
        lines = [row for row in csv.reader(io.StringIO(text)) if row]
        if lines and features and [c.strip() for c in lines[0]] == features:
            lines = lines[1:]  # a header naming the features
        return [_positional([_csv_value(v) for v in row], features) for row in lines]
    if "json" in media:
        if "jsonlines" in media:
            body: Any = [orjson.loads(line) for line in text.splitlines() if line.strip()]
        else:
            body = orjson.loads(text)
        return _json_rows(body, features)
    raise ValueError(f"content type {media or '(none)'} is neither CSV nor JSON")


def _is_v2(inputs: Any) -> bool:
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(t, dict) and "data" in t and "shape" in t for t in inputs)


def _v2_rows(inputs: list[dict[str, Any]], features: list[str]) -> list[dict[str, Any]]:
    """Open Inference Protocol V2 tensors as rows: one tensor of shape [n, k] is n rows of k
    values in the features' order; several tensors of shape [n] (or [n, 1]) are columns named
    by the tensors."""
    import numpy as np

    def values(t: dict[str, Any]) -> np.ndarray:
        try:
            shape = [int(d) for d in t["shape"]]
            return np.asarray(t["data"], dtype=object).reshape(shape if shape else [-1])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a V2 tensor whose data does not fit its shape: {exc}") from None

    if len(inputs) == 1:
        arr = values(inputs[0])
        arr = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)
        return [_positional(list(row), features) for row in arr.tolist()]
    cols = {str(t.get("name")): values(t).reshape(-1).tolist() for t in inputs}
    n = {len(v) for v in cols.values()}
    if len(n) != 1:
        raise ValueError("V2 input tensors of different lengths")
    return [{name: col[i] for name, col in cols.items()} for i in range(n.pop())]


def _json_rows(body: Any, features: list[str]) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        if _is_v2(body.get("inputs")):
            return _v2_rows(body["inputs"], features)
        if "dataframe_split" in body and isinstance(body["dataframe_split"], dict):
            split = body["dataframe_split"]
            cols = split.get("columns") or features
            return [dict(zip(cols, row, strict=False)) for row in split.get("data", [])]
        for key in _ROW_KEYS:
            if key in body and isinstance(body[key], list):
                return _json_rows(body[key], features)
        return [body]
    if isinstance(body, list):
        if not body:
            return []
        if not any(isinstance(r, dict | list) for r in body):
            return [_positional(body, features)]  # one row of values
        if all(isinstance(r, dict | list) for r in body):
            return [r if isinstance(r, dict) else _positional(r, features) for r in body]
    raise ValueError("a JSON body that is no record, list of records or list of rows")


def _outputs(media: str, text: str) -> list[Any]:
    if "csv" in media or not media:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        if len(rows) == 1 and len(rows[0]) > 1:
            return [_csv_value(v) for v in rows[0]]  # one value per input row, on one line
        return [_csv_value(row[0]) for row in rows]
    body = orjson.loads(text)
    if isinstance(body, dict) and _is_v2(body.get("outputs")):
        first = body["outputs"][0]["data"]  # V2: the first output tensor, one value per row
        return list(first) if isinstance(first, list) else [first]
    if isinstance(body, dict):
        for key in ("predictions", "outputs", "predicted_label", "scores", "score"):
            if key in body:
                body = body[key]
                break
    if not isinstance(body, list):
        body = [body]
    out = []
    for item in body:
        if isinstance(item, dict):
            item = next((item[k] for k in ("predicted_label", "label", "score", "prediction") if k in item), None)
        elif isinstance(item, list) and len(item) == 1:
            item = item[0]
        out.append(item)
    return out


def read_capture(lines: Iterable[bytes], *, features: list[str], start: float | None = None, end: float | None = None,
                 rows: CaptureRows | None = None) -> CaptureRows:
    """Rows of the capture ``lines`` whose inferenceTime is in ``[start, end)``.

    Malformed lines, unreadable bodies and unknown content types are counted in
    ``faults`` (``malformed_lines``, ``unreadable_inputs``, ``no_input``, ``bad_time``...).
    """
    out = rows or CaptureRows()
    for raw in lines:
        if not raw.strip():
            continue
        try:
            event = orjson.loads(raw)
            data = event["captureData"]
            meta = event.get("eventMetadata") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            out.fault("malformed_lines")
            continue
        if not isinstance(data, dict) or not isinstance(meta, dict):
            out.fault("malformed_lines")
            continue
        when = parse_time(meta.get("inferenceTime"))
        if when is None:
            out.fault("bad_time")
            continue
        if (start is not None and when < start) or (end is not None and when >= end):
            continue
        part = data.get("endpointInput")
        if not isinstance(part, dict):
            out.fault("no_input")
            continue
        try:
            media, text = _decode(part)
            got = _input_rows(media, text, features)
        except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError, csv.Error):
            out.fault("unreadable_inputs")
            continue
        preds: list[Any] = []
        output = data.get("endpointOutput")
        if isinstance(output, dict):
            try:
                preds = _outputs(*_decode(output))
            except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError, csv.Error):
                out.fault("unreadable_outputs")
        if preds and len(preds) != len(got):
            out.fault("outputs_not_matching_inputs")
            preds = []
        ident = str(meta.get("inferenceId") or meta.get("eventId") or "")
        out.events += 1
        for i, row in enumerate(got):
            out.rows.append(row)
            out.predictions.append(preds[i] if preds else None)
            out.ids.append((ident, i))
    return out
