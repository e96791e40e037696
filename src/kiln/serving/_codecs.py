"""Request bodies to rows and predictions to response bodies, as SageMaker's containers do.

Decoders (CONTRACTS.md §2): ``text/csv`` (rows of numbers → a 2-D float array),
``application/json`` (a list is one row, a list of lists is rows, a list of objects is
records; ``{"instances": …}`` and MLflow's scoring dicts), ``application/x-npy`` (and
``application/x-npz``), ``application/jsonlines`` (one row or record per line).

A CSV header row is accepted only when the model knows its column names (a signature
with names, or ``feature_names_in_``) and the header holds exactly those names, in any
order; a first row that is not numbers is otherwise an error naming the value, as
SageMaker's containers answer an unexpected header.

Rows are numbered from 1 and columns from 1 in every message.
"""

from __future__ import annotations

import contextlib

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from kiln.core.errors import InvalidArgument, NotAcceptable, UnsupportedMediaType

__all__ = [
    "CSV",
    "JSON",
    "JSONLINES",
    "NPY",
    "NPZ",
    "Columns",
    "Decoded",
    "Reply",
    "choose_accept",
    "conform",
    "decode",
    "encode",
    "media_type",
]

CSV = "text/csv"
JSON = "application/json"
NPY = "application/x-npy"
NPZ = "application/x-npz"
JSONLINES = "application/jsonlines"
ANY = "*/*"
_ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/csv": CSV}
DECODES = (CSV, JSON, NPY, NPZ, JSONLINES)
ENCODES = (JSON, CSV, NPY, JSONLINES)
# The body types SageMaker's toolkit hands to input_fn/transform_fn as text, not bytes.
UTF8_TYPES = (JSON, CSV)
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SHOWN = 40  # characters of a bad value quoted in a message


@dataclass(frozen=True, slots=True)
class Reply:
    """A response body and its content type."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Columns:
    """What the model takes: its column names (None when it has none), their count, and which are numbers."""

    names: tuple[str, ...] | None = None
    count: int | None = None
    numeric: tuple[bool, ...] | None = None

    @property
    def all_numeric(self) -> bool:
        return self.numeric is None or all(self.numeric)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Decoded rows; ``mlflow`` when the body was an MLflow scoring request (answered as ``{"predictions"}``)."""

    rows: Any
    mlflow: bool = False
    params: dict[str, Any] | None = None


@lru_cache(maxsize=256)
def media_type(value: str | None) -> str:
    """``text/CSV; charset=utf-8`` → ``text/csv``; None → ``""``."""
    if not value:
        return ""
    kind = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(kind, kind)


@lru_cache(maxsize=256)
def choose_accept(accept: str | None) -> str:
    """The response type for an Accept header: the first listed type Kiln encodes; JSON for none or ``*/*``.

    Raises:
        NotAcceptable: no listed type is one Kiln encodes.
    """
    if not accept or not accept.strip():
        return JSON
    for part in accept.split(","):
        kind = media_type(part)
        if kind in ENCODES:
            return kind
        if kind in (ANY, "application/*"):
            return JSON
        if kind == "text/*":
            return CSV
    raise NotAcceptable(f"cannot answer with {accept[:100]!r}; accept one of {', '.join(ENCODES)}")


# -- decoding -------------------------------------------------------------------------


def decode(body: bytes | str, content_type: str | None, columns: Columns) -> Decoded:
    """Rows from a request body by its content type.

    Raises:
        UnsupportedMediaType: a content type Kiln does not decode.
        InvalidArgument: an empty body, invalid JSON, a value that is not a number.
    """
    kind = media_type(content_type) or CSV  # no Content-Type: CSV, as the XGBoost container assumes
    if kind == CSV:
        return Decoded(decode_csv(_text(body), columns))
    if kind == JSON:
        return decode_json(body, columns)
    if kind in (NPY, NPZ):
        return Decoded(decode_npy(body if isinstance(body, bytes) else body.encode()))
    if kind == JSONLINES:
        return Decoded(decode_jsonlines(_text(body), columns))
    raise UnsupportedMediaType(
        f"content type {str(content_type)[:100]!r} is not one this model decodes; send one of {', '.join(DECODES)}"
    )


_NUMBER_BYTES = b"0123456789.,-+eE \t\r\n"


def simple_rows(body: bytes, kind: str, count: int | None) -> Any:
    """The rows of a plain numeric body without the general decoders' work, or None.

    One CSV line of numbers (no quotes), or a JSON list of numbers / list of lists of
    numbers, with ``count`` values per row. Anything else — a header, an empty field, a
    wrong count, text — returns None and the general decoder answers (with its errors).
    """
    try:
        if kind == CSV:
            if b'"' in body or b"\n" in body.rstrip(b"\r\n"):
                return None
            values = None
            if not body.translate(None, _NUMBER_BYTES):
                # Only digits, signs, points and exponents: orjson reads the row as a JSON list
                # several times faster than float() per field; what JSON refuses (+1, 1., .5) falls through.
                with contextlib.suppress(orjson.JSONDecodeError):
                    values = orjson.loads(b"[" + body + b"]")
            if values is None:
                values = [float(v) for v in body.split(b",")]
            if len(values) != count:
                return None
            return np.array([values], dtype=np.float64)
        if kind == JSON and body[:1] == b"[":
            value = orjson.loads(body)
            if not value or type(value[0]) is dict:
                return None
            arr = np.array(value, dtype=np.float64)
            if arr.ndim == 1:
                arr = arr.reshape(1, -1)
            return arr if arr.ndim == 2 and arr.shape[1] == count and arr.shape[0] else None
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    return None


def _text(body: bytes | str) -> str:
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"request body is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InvalidArgument("request body is empty; send at least one row")
    return text


def _float(value: str, row: int, col: int) -> float:
    value = value.strip()
    if not value:
        return math.nan  # an empty field is a missing value, as the containers read it
    try:
        return float(value)
    except ValueError:
        raise InvalidArgument(f"row {row}, column {col}: {value[:_SHOWN]!r} is not a number") from None


def decode_csv(text: str, columns: Columns) -> Any:
    """CSV rows as a 2-D float array, or a DataFrame when a header names the columns or some are text."""
    if '"' in text:
        lines = [r for r in csv.reader(io.StringIO(text)) if r]
    else:
        lines = [line.split(",") for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidArgument("request body is empty; send at least one row")
    header: list[str] | None = None
    if columns.names and not _numbers(lines[0]):
        fields = [f.strip() for f in lines[0]]
        if sorted(fields) == sorted(columns.names):
            header, lines = fields, lines[1:]
            if not lines:
                raise InvalidArgument("request body has a header row but no data rows")
    width = len(header) if header else len(lines[0])
    for i, fields in enumerate(lines):
        if len(fields) != width:
            at = i + (2 if header else 1)
            raise InvalidArgument(f"row {at} has {len(fields)} values but row 1 has {width}; every row needs the same columns")
    numeric = _numeric_flags(header, width, columns)
    first = 2 if header else 1
    if all(numeric):
        arr = np.empty((len(lines), width), dtype=np.float64)
        for i, fields in enumerate(lines):
            try:
                arr[i] = [float(f) if f.strip() else math.nan for f in fields]
            except ValueError:
                for j, f in enumerate(fields):
                    _float(f, i + first, j + 1)
        if header is None:
            return arr
        import pandas as pd

        return pd.DataFrame(arr, columns=header)
    import pandas as pd

    names = header or list(columns.names or [])
    data = {
        name: [_float(r[j], i + first, j + 1) for i, r in enumerate(lines)] if numeric[j] else [r[j].strip() for r in lines]
        for j, name in enumerate(names)
    }
    return pd.DataFrame(data, columns=names)


def _numbers(fields: list[str]) -> bool:
    try:
        for f in fields:
            if f.strip():
                float(f)
    except ValueError:
        return False
    return True


def _numeric_flags(header: list[str] | None, width: int, columns: Columns) -> list[bool]:
    """Which of the request's columns must be numbers (all of them unless the signature says text)."""
    if columns.numeric is None or columns.names is None or width != len(columns.names):
        return [True] * width
    by_name = dict(zip(columns.names, columns.numeric, strict=True))
    return [by_name.get(n, True) for n in header] if header else list(columns.numeric)


def decode_json(body: bytes | str, columns: Columns) -> Decoded:
    """A JSON list (one row), list of lists (rows), list of records; ``{"instances"}`` or MLflow's dicts."""
    if not body or (isinstance(body, (bytes, str)) and not body.strip()):
        raise InvalidArgument("request body is empty; send a JSON list of rows")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        return _mlflow(value, columns)
    return Decoded(rows_from_json(value, columns))


def _mlflow(value: dict[str, Any], columns: Columns) -> Decoded:
    import pandas as pd

    keys = [k for k in MLFLOW_KEYS if k in value]
    extra = sorted(set(value) - set(MLFLOW_KEYS) - {"params"})
    if len(keys) != 1 or extra:
        raise InvalidArgument(
            "a JSON object must hold exactly one of " + ", ".join(MLFLOW_KEYS) + " (and optional params)"
            + (f"; got {sorted(value)[:8]}" if value else "; got an empty object")
        )
    key = keys[0]
    params = value.get("params")
    if params is not None and not isinstance(params, dict):
        raise InvalidArgument("params must be a JSON object")
    data = value[key]
    if key == "dataframe_split":
        if not isinstance(data, dict) or "data" not in data:
            raise InvalidArgument('dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        rows = data["data"]
        if not isinstance(rows, list):
            raise InvalidArgument("dataframe_split.data must be a list of rows")
        cols = data.get("columns")
        if cols is None:
            return Decoded(rows_from_json(rows, columns), True, params)
        if not isinstance(cols, list) or not all(isinstance(c, (str, int)) for c in cols):
            raise InvalidArgument("dataframe_split.columns must be a list of column names")
        rows = [r if isinstance(r, list) else [r] for r in rows]
        for i, r in enumerate(rows):
            if len(r) != len(cols):
                raise InvalidArgument(f"dataframe_split row {i + 1} has {len(r)} values for {len(cols)} columns")
        frame = pd.DataFrame(rows, columns=[str(c) for c in cols])
        return Decoded(_checked_frame(frame, columns), True, params)
    if key == "dataframe_records":
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InvalidArgument("dataframe_records must be a list of JSON objects, one per row")
        return Decoded(rows_from_json(data, columns), True, params)
    if isinstance(data, dict):  # inputs/instances as named columns: {"a": [..], "b": [..]}
        try:
            frame = pd.DataFrame({str(k): v if isinstance(v, list) else [v] for k, v in data.items()})
        except ValueError as exc:
            raise InvalidArgument(f"{key} as named columns needs lists of one length: {exc}") from None
        return Decoded(_checked_frame(frame, columns), True, params)
    return Decoded(rows_from_json(data, columns), True, params)


def rows_from_json(value: Any, columns: Columns) -> Any:
    """Rows from a parsed JSON value: a flat list is one row, a list of lists rows, a list of objects records."""
    import pandas as pd

    if not isinstance(value, list):
        raise InvalidArgument(f"expected a JSON list of rows, got a {_json_kind(value)}")
    if not value:
        raise InvalidArgument("request holds no rows (an empty list)")
    first = value[0]
    if isinstance(first, dict):
        if not all(isinstance(r, dict) for r in value):
            raise InvalidArgument("a list of records must hold only JSON objects")
        if all(set(r) == {"features"} for r in value):  # SageMaker's built-in algorithms' JSON rows
            return rows_from_json([r["features"] for r in value], columns)
        return _checked_frame(pd.DataFrame.from_records(value), columns)
    if not isinstance(first, list):
        value = [value]  # one row
    if not columns.all_numeric and columns.names:
        for i, r in enumerate(value):
            if not isinstance(r, list) or len(r) != len(columns.names):
                got = len(r) if isinstance(r, list) else 1
                raise InvalidArgument(f"row {i + 1} has {got} values; the model takes {len(columns.names)} columns")
        return _checked_frame(pd.DataFrame(value, columns=list(columns.names)), columns)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        _explain(value)
        raise
    if arr.ndim != 2:
        raise InvalidArgument(f"rows must be a list of lists of numbers; got {arr.ndim} levels of nesting")
    return arr


def _explain(rows: list[Any]) -> None:
    """Raise InvalidArgument naming the first row that is not a list of numbers of row 1's length."""
    width = len(rows[0]) if isinstance(rows[0], list) else None
    for i, r in enumerate(rows):
        if not isinstance(r, list):
            raise InvalidArgument(f"row {i + 1} is a {_json_kind(r)}, not a list of numbers")
        if len(r) != width:
            raise InvalidArgument(f"row {i + 1} has {len(r)} values but row 1 has {width}; every row needs the same columns")
        for j, v in enumerate(r):
            if v is None or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                continue
            if isinstance(v, str):
                _float(v, i + 1, j + 1)
                continue
            raise InvalidArgument(f"row {i + 1}, column {j + 1}: a {_json_kind(v)} is not a number")
    raise InvalidArgument("rows must be lists of numbers")


def _json_kind(value: Any) -> str:
    return {dict: "JSON object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _checked_frame(frame: Any, columns: Columns) -> Any:
    """A frame's numeric columns as numbers, naming the first value that is not one."""
    import pandas as pd

    flags = dict(zip(columns.names, columns.numeric, strict=True)) if columns.names and columns.numeric else {}
    for j, name in enumerate(frame.columns):
        if not flags.get(str(name), True) or frame[name].dtype.kind in "biuf":
            continue
        converted = pd.to_numeric(frame[name], errors="coerce")
        bad = converted.isna() & frame[name].notna()
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise InvalidArgument(f"row {i + 1}, column {name!r}: {str(frame[name].iloc[i])[:_SHOWN]!r} is not a number")
        frame[name] = converted.astype(np.float64)
    return frame


def decode_npy(body: bytes) -> Any:
    """A ``.npy`` array (pickles refused), or a ``.npz``: a SciPy sparse matrix or its one array."""
    if not body:
        raise InvalidArgument("request body is empty; send a .npy array")
    try:
        if body[:2] == b"PK":
            with np.load(io.BytesIO(body), allow_pickle=False) as npz:
                keys = set(npz.files)
                if {"data", "indices", "indptr", "shape", "format"} <= keys:
                    import scipy.sparse

                    return scipy.sparse.load_npz(io.BytesIO(body))
                if len(keys) != 1:
                    raise InvalidArgument(f".npz body holds {len(keys)} arrays; send one (or a SciPy sparse matrix)")
                arr = npz[npz.files[0]]
        else:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
    except InvalidArgument:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidArgument(f"request body is not a .npy/.npz array without pickles: {exc}") from None
    if arr.dtype.kind not in "biufU" or arr.ndim not in (1, 2):
        raise InvalidArgument(f"a .npy body must be a 1-D or 2-D array of numbers; got {arr.ndim}-D {arr.dtype}")
    return arr


def decode_jsonlines(text: str, columns: Columns) -> Any:
    """One JSON list (a row), a record or ``{"features": [...]}`` per line."""
    import pandas as pd

    items = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"line {i + 1} is not valid JSON: {exc}") from None
    if all(isinstance(x, dict) for x in items):
        if all(set(x) == {"features"} for x in items):
            return rows_from_json([x["features"] for x in items], columns)
        return _checked_frame(pd.DataFrame.from_records(items), columns)
    for i, x in enumerate(items):
        if not isinstance(x, list):
            raise InvalidArgument(f"line {i + 1} is a {_json_kind(x)}; each line must be a list of numbers or a JSON object")
    return rows_from_json(items, columns)


def conform(rows: Any, columns: Columns) -> Any:
    """Rows as the model takes them: 1-D is one row; a frame's named columns in the model's order.

    Raises:
        InvalidArgument: the wrong number of columns (expected vs got) or a missing named column.
    """
    if isinstance(rows, np.ndarray):
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        elif rows.ndim != 2:
            raise InvalidArgument(f"rows must be 2-D (rows × columns); got a {rows.ndim}-D array")
        if rows.shape[0] == 0:
            raise InvalidArgument("request holds no rows")
        if columns.count is not None and rows.shape[1] != columns.count:
            raise InvalidArgument(f"expected {columns.count} columns per row, got {rows.shape[1]}")
        return rows
    if hasattr(rows, "columns") and hasattr(rows, "iloc"):  # a DataFrame
        if len(rows) == 0:
            raise InvalidArgument("request holds no rows")
        given = [str(c) for c in rows.columns]
        if columns.names and not all(isinstance(c, int) for c in rows.columns):
            missing = [n for n in columns.names if n not in given]
            if missing:
                raise InvalidArgument(f"input is missing column {missing[0]!r}; the model takes {list(columns.names)}")
            return rows[list(columns.names)] if given != list(columns.names) else rows
        if columns.count is not None and len(given) != columns.count:
            raise InvalidArgument(f"expected {columns.count} columns per row, got {len(given)}")
        if columns.names and len(given) == len(columns.names):
            return rows.set_axis(list(columns.names), axis=1)  # unnamed columns, taken by position
        return rows
    if hasattr(rows, "tocsr") and hasattr(rows, "shape"):  # SciPy sparse
        if columns.count is not None and rows.shape[1] != columns.count:
            raise InvalidArgument(f"expected {columns.count} columns per row, got {rows.shape[1]}")
        return rows
    return conform(np.asarray(rows), columns)


# -- encoding -------------------------------------------------------------------------

_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY


def to_list(pred: Any) -> Any:
    """Predictions as plain Python values (numpy scalars unwrapped)."""
    if isinstance(pred, np.ndarray):
        return pred.tolist()
    if hasattr(pred, "to_numpy"):
        return pred.to_numpy().tolist()
    if isinstance(pred, (list, tuple)):
        return [to_list(p) for p in pred]
    if isinstance(pred, np.generic):
        return pred.item()
    return pred


def json_bytes(value: Any) -> bytes:
    """JSON of predictions; arrays of numbers without a Python list in between."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.flags.c_contiguous:
        return orjson.dumps(value, option=_NUMPY_JSON)
    try:
        return orjson.dumps(value, option=_NUMPY_JSON)
    except TypeError:
        return orjson.dumps(to_list(value), option=_NUMPY_JSON, default=str)


def encode(predictions: Any, accept: str | None) -> Reply:
    """Predictions as the response body for an Accept header (JSON when none or ``*/*``).

    Raises:
        NotAcceptable: the Accept header names no type Kiln encodes.
    """
    kind = choose_accept(accept)
    arr = predictions if isinstance(predictions, np.ndarray) else np.asarray(to_list(predictions))
    if kind == JSON:
        return Reply(json_bytes(arr), JSON)
    if kind == CSV:
        return Reply(_csv_bytes(arr), CSV)
    if kind == NPY:
        buf = io.BytesIO()
        np.save(buf, arr.astype(str) if arr.dtype.kind == "O" else arr, allow_pickle=False)
        return Reply(buf.getvalue(), NPY)
    lines = arr.tolist() if arr.ndim else [arr.item()]
    return Reply(b"".join(orjson.dumps(x) + b"\n" for x in lines), JSONLINES)


def _csv_bytes(arr: Any) -> bytes:
    """One line per prediction (a row's values joined by commas), as ``np.savetxt(fmt="%s")`` writes them."""
    values = arr.tolist() if arr.ndim else [arr.item()]
    if arr.dtype.kind in "biuf":
        if arr.ndim <= 1:
            return "".join(f"{v}\n" for v in values).encode()
        return "".join(",".join(map(str, r)) + "\n" for r in values).encode()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(values if arr.ndim == 2 else [[v] for v in values])
    return buf.getvalue().encode()


# -- Open Inference Protocol V2 tensors ----------------------------------------------------

V2_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": object,
}
_V2_NAMES = {np.dtype(t).name: name for name, t in V2_DTYPES.items() if t is not object}


def v2_datatype(dtype: Any) -> str:
    """The V2 datatype of a numpy dtype (text and objects are BYTES)."""
    return _V2_NAMES.get(np.dtype(dtype).name, "BYTES")


def v2_tensor(tensor: Any, where: str) -> tuple[str, Any]:
    """(name, array) of one V2 request tensor ``{"name", "shape", "datatype", "data"}``.

    Raises:
        InvalidArgument: a missing field, an unknown datatype, data that do not fill the shape.
    """
    if not isinstance(tensor, dict):
        raise InvalidArgument(f"{where} must be a JSON object with name, shape, datatype and data")
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}.name must be a non-empty string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidArgument(f"{where}.shape must be a list of non-negative integers")
    if datatype not in V2_DTYPES:
        raise InvalidArgument(f"{where}.datatype {str(datatype)[:20]!r} is not one of {', '.join(V2_DTYPES)}")
    if not isinstance(data, list):
        data = [data]
    flat = _flatten(data)
    size = int(np.prod(shape)) if shape else 1
    if len(flat) != size:
        raise InvalidArgument(f"{where} ({name!r}) has {len(flat)} values for shape {shape} ({size} values)")
    if datatype == "BYTES":
        arr = np.empty(len(flat), dtype=object)
        arr[:] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in flat]
    else:
        for i, v in enumerate(flat):
            if isinstance(v, str) or v is None or isinstance(v, (list, dict)):
                raise InvalidArgument(f"{where} ({name!r}) value {i + 1}: {str(v)[:_SHOWN]!r} is not a {datatype} number")
        try:
            arr = np.asarray(flat, dtype=V2_DTYPES[datatype])
        except (ValueError, OverflowError, TypeError) as exc:
            raise InvalidArgument(f"{where} ({name!r}) does not hold {datatype} values: {exc}") from None
    return name, arr.reshape(shape)


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def v2_output(name: str, values: Any) -> dict[str, Any]:
    """A V2 response tensor: name, shape, datatype and the values flattened in row-major order."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(to_list(values))
    datatype = v2_datatype(arr.dtype)
    data = arr.ravel().tolist() if datatype != "BYTES" else [str(v) for v in arr.ravel().tolist()]
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}
