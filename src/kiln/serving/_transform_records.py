"""Batch transform's record handling (SageMaker Batch Transform, CONTRACTS.md §3): splitting
a file into records, mini-batches up to MaxPayloadInMB, JSONPath input and output
filters, joining each input record with its prediction, and assembling the output.

It runs in the transform's worker processes, beside the model.

JSONPath: expressions are evaluated by jsonpath-ng (pinned). The common shapes on CSV
rows — ``$``, ``$[i]``, ``$[a:b]``, ``$[i,j,...]`` — are evaluated by a small exact
evaluator instead, because jsonpath-ng costs ~20 µs per record and a million-row
transform would spend most of its time there; a test checks the two agree. An
expression that selects one item by a single index or key (no slice, union or wildcard)
yields that value; any other yields the list of what it matched, as SageMaker does.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from kiln.core.errors import InvalidArgument

__all__ = ["Filter", "batches", "compile_filter", "join_record", "split_output", "split_records"]

MB = 1 << 20
CSV = "text/csv"
JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines")

Filter = Callable[[Any], Any]
_INDEXES = re.compile(r"\$\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\]")
_SLICE = re.compile(r"\$\[\s*(-?\d+)?\s*:\s*(-?\d+)?\s*\]")


def media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def compile_filter(expression: str | None) -> Filter | None:
    """A JSONPath filter as a function of one parsed record; None for ``$`` (keep it whole).

    Raises:
        InvalidArgument: not a JSONPath expression jsonpath-ng can parse.
    """
    text = (expression or "$").strip()
    if text == "$":
        return None
    if m := _SLICE.fullmatch(text):
        lo, hi = (int(x) if x is not None else None for x in m.groups())
        return lambda value: value[lo:hi] if isinstance(value, list) else []
    if m := _INDEXES.fullmatch(text):
        picks = [int(x) for x in m.group(1).split(",")]
        if len(picks) == 1:
            i = picks[0]
            return lambda value: value[i] if isinstance(value, list) and -len(value) <= i < len(value) else None
        return lambda value: [value[i] for i in picks if isinstance(value, list) and -len(value) <= i < len(value)]
    return _jsonpath(text)


def _jsonpath(text: str) -> Filter:
    try:
        from jsonpath_ng.ext import parse
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise InvalidArgument("JSONPath filters need jsonpath-ng: pip install jsonpath-ng") from exc
    try:
        expr = parse(text)
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises several types for bad syntax
        raise InvalidArgument(f"filter {text!r} is not a JSONPath expression: {exc}") from None
    single = not any(c in text for c in (":", "*", ",", "..", "?"))

    def apply(value: Any) -> Any:
        found = [m.value for m in expr.find(value)]
        if single:
            return found[0] if found else None
        return found

    return apply


def split_records(data: bytes, split_type: str) -> list[bytes]:
    """The records of one chunk: each non-empty line (Line), or the whole chunk (None)."""
    if split_type == "None":
        return [data] if data else []
    return [line for line in data.split(b"\n") if line.strip()] if data else []


def batches(sizes: Sequence[int], strategy: str, max_bytes: int) -> Iterator[tuple[int, int]]:
    """(start, end) index ranges of mini-batches: one record each (SingleRecord), or as many
    as fit in ``max_bytes`` with their newlines (MultiRecord)."""
    if strategy == "SingleRecord":
        yield from ((i, i + 1) for i in range(len(sizes)))
        return
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and used + size + 1 > max_bytes:
            yield start, i
            start, used = i, 0
        used += size + 1
    if start < len(sizes):
        yield start, len(sizes)


def parse_record(record: bytes, content_type: str) -> Any:
    """A record as the value a JSONPath filter sees: CSV → list of fields, JSON → its value."""
    kind = media(content_type)
    if kind == CSV:
        text = record.decode("utf-8", "replace").rstrip("\r")
        if '"' not in text:
            return text.split(",")
        return next(csv.reader([text]))
    if kind in JSON_TYPES:
        return orjson.loads(record)
    raise InvalidArgument(f"filters and JoinSource read records as CSV or JSON; content type {kind!r} is neither")


def format_record(value: Any, content_type: str) -> bytes:
    """A filtered or joined record back as bytes, in ``content_type``."""
    if media(content_type) == CSV:
        items = value if isinstance(value, list) else [value]
        fields = [_csv_field(v) for v in items]
        if not any(("," in f or '"' in f or "\n" in f) for f in fields):
            return ",".join(fields).encode()
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(fields)
        return buf.getvalue().encode()
    return orjson.dumps(value)


def _csv_field(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    if value is None:
        return ""
    return str(value)


def split_output(body: bytes, accept: str, count: int) -> list[Any]:
    """A batch's answer as one value per input record (needed to join or filter outputs).

    Raises:
        InvalidArgument: the answer does not hold one prediction per record.
    """
    kind = media(accept)
    if kind == "application/json":
        value = orjson.loads(body)
        if isinstance(value, dict) and "predictions" in value:
            value = value["predictions"]
        items = value if isinstance(value, list) and (count != 1 or len(value) == 1) else [value]
    elif kind == CSV:
        items = [parse_record(line, CSV) for line in body.split(b"\n") if line.strip()]
        items = [x[0] if len(x) == 1 else x for x in items]
    elif kind in JSON_TYPES:
        items = [orjson.loads(line) for line in body.split(b"\n") if line.strip()]
    else:
        raise InvalidArgument(f"JoinSource and OutputFilter read the model's answer as CSV or JSON; accept {kind!r} is neither")
    if len(items) != count:
        raise InvalidArgument(f"the model answered {len(items)} predictions for {count} records; JoinSource and OutputFilter need one per record")
    return items


def join_record(record: Any, output: Any) -> Any:
    """SageMaker's JoinSource=Input: a CSV row (list) gets the prediction's fields appended; a
    JSON object gets it under ``SageMakerOutput``; a JSON list gets it appended."""
    if isinstance(record, dict):
        return {**record, "SageMakerOutput": output}
    if isinstance(record, list):
        return [*record, *(output if isinstance(output, list) else [output])]
    return [record, output]
