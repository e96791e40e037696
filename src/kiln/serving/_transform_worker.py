"""Batch transform in its worker processes: load the model once, turn chunks into output pieces.

Kept apart from :mod:`kiln.serving._transform` (the job's program, with the workspace and
the jobs runner), so a worker imports the runtime and nothing of the job's side.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument, KilnError
from kiln.serving import _transform_records as rec

__all__ = ["load", "run_chunk"]


def load(state: dict[str, Any], args: dict[str, Any], _: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """Load the model once per worker, with the batch variables in its environment."""
    os.environ.update(args["environment"])
    from kiln.serving._runtime import Servable

    state["servable"] = Servable.load(args["folder"], trusted=bool(args["trusted"]), name=args["name"])
    return {}, []


def run_chunk(state: dict[str, Any], args: dict[str, Any], _: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """Transform one chunk of an input file into ``args["out"]`` (written whole, then renamed)."""
    servable = state["servable"]
    o = args["options"]
    with open(args["path"], "rb") as fh:
        fh.seek(args["start"])
        data = fh.read(args["end"] - args["start"])
    first = int(args["first_record"])
    label = args["rel"]
    limit = int(o["max_payload_mb"] * rec.MB)
    fast = _fast_chunk(state, servable, data, o, limit)
    if fast is not None:
        try:
            reply = servable.encode(servable.predict_array(fast), o["accept"])
        except KilnError as exc:
            raise type(exc)(f"records {first + 1}-{first + len(fast)} of {label}: {exc.message}", details={"file": label, "record": first}) from None
        body = reply.body if isinstance(reply.body, bytes) else str(reply.body).encode()
        _write(Path(args["out"]), [body if o["assemble_with"] != "Line" or body.endswith(b"\n") else body + b"\n"])
        return {"records": len(fast)}, []
    records = rec.split_records(data, o["split_type"])
    for i, r in enumerate(records):
        if len(r) > limit:
            raise InvalidArgument(
                f"{_where(label, first + i, o)} is {len(r) / rec.MB:.1f} MB, over MaxPayloadInMB={o['max_payload_mb']:g}; "
                "raise --max-payload-mb (at most 100) or split the input with --split-type Line",
                details={"file": label, "record": first + i},
            )
    ct, accept = o["content_type"], o["accept"]
    in_filter, out_filter = rec.compile_filter(o["input_filter"]), rec.compile_filter(o["output_filter"])
    join = o["join_source"] == "Input"
    per_record = join or out_filter is not None
    parsed = [rec.parse_record(r, ct) for r in records] if (in_filter is not None or join) else None
    sent = [rec.format_record(in_filter(p), ct) for p in parsed] if in_filter is not None and parsed is not None else records
    line = o["assemble_with"] == "Line"
    pieces: list[bytes] = []
    for lo, hi in rec.batches([len(s) for s in sent], o["strategy"], limit):
        body = sent[lo] if hi - lo == 1 else b"\n".join(sent[lo:hi])
        try:
            reply = servable.invoke(body, ct, accept)
        except KilnError as exc:
            what = _where(label, first + lo, o) if hi - lo == 1 else f"records {first + lo + 1}-{first + hi} of {label}"
            raise type(exc)(f"{what}: {exc.message}", details={"file": label, "record": first + lo}) from None
        answer = reply.body if isinstance(reply.body, bytes) else str(reply.body).encode()  # an output_fn may answer str
        if not per_record:
            pieces.append(answer if not line or answer.endswith(b"\n") else answer + b"\n")
            continue
        try:
            outputs = rec.split_output(answer, reply.content_type or accept, hi - lo)
        except (InvalidArgument, ValueError) as exc:
            raise InvalidArgument(f"records {first + lo + 1}-{first + hi} of {label}: {getattr(exc, 'message', exc)}",
                                  details={"file": label, "record": first + lo}) from None
        for k, out in enumerate(outputs):
            value = rec.join_record(parsed[lo + k], out) if join and parsed is not None else out
            if out_filter is not None:
                value = out_filter(value)
            fmt = ct if join else (reply.content_type or accept)
            pieces.append(rec.format_record(value, fmt) + (b"\n" if line else b""))
    _write(Path(args["out"]), pieces)
    return {"records": len(records)}, []


def _write(target: Path, pieces: list[bytes]) -> None:
    """A chunk's output, whole or not at all: written to a temporary name, then renamed."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.writelines(pieces)
    os.replace(tmp, target)


def _fast_chunk(state: dict[str, Any], servable: Any, data: bytes, o: dict[str, Any], limit: int) -> Any:
    """A CSV chunk that is one mini-batch, as the 2-D float rows the runtime's own decoder
    would make of it, parsed by Arrow's C++ CSV reader; None when this chunk must go
    through :meth:`Servable.invoke` (the package reads its own bodies, filters or a join
    apply, a header or text column, ragged rows: invoke then gives the exact answer or error).

    Whether the package's bodies decode to numeric rows by the default decoder is asked of
    the runtime once per worker, on the first record."""
    if (o["split_type"] != "Line" or o["strategy"] != "MultiRecord" or len(data) > limit or rec.media(o["content_type"]) != rec.CSV
            or o["input_filter"] not in (None, "$") or o["output_filter"] not in (None, "$") or o["join_source"] == "Input"):
        return None
    if "fast" not in state:
        state["fast"] = _numeric_rows(servable, data[: data.find(b"\n") if b"\n" in data else len(data)], o["content_type"])
    if not state["fast"] or b'"' in data:
        return None
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        table = pcsv.read_csv(pa.py_buffer(data), read_options=pcsv.ReadOptions(autogenerate_column_names=True),
                              convert_options=pcsv.ConvertOptions(null_values=[""], strings_can_be_null=False))  # only an empty field is missing
    except pa.ArrowInvalid:
        return None
    if table.num_rows == 0 or not all(pa.types.is_integer(c.type) or pa.types.is_floating(c.type) for c in table.columns):
        return None
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float64)
    for j, col in enumerate(table.columns):
        out[:, j] = col.to_numpy(zero_copy_only=False)
    return out


def _numeric_rows(servable: Any, line: bytes, content_type: str) -> bool:
    import numpy as np

    try:
        rows = servable.decode(line, content_type)
    except KilnError:
        return False
    if rows is None:
        return False
    if isinstance(rows, np.ndarray):
        return rows.dtype.kind in "fiu"
    dtypes = getattr(rows, "dtypes", None)
    return dtypes is not None and all(np.dtype(d).kind in "fiu" for d in dtypes)


def _where(label: str, index: int, o: dict[str, Any]) -> str:
    return f"file {label}" if o["split_type"] == "None" else f"record {index + 1} (line {index + 1}) of {label}"
