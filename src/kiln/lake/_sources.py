"""Sources: turn a path, glob, folder, URL, database query or in-memory table into
one DuckDB relation that the writer copies into Parquet.

DuckDB does the parsing for files (parallel, streaming, bounded memory); Arrow
streams feed it for everything else, so there is one writer for all sources.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.errors import InvalidArgument, NotFound
from kiln.lake._dbsource import database_reader
from kiln.lake._models import IngestOptions
from kiln.core._lazy import lazy

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
else:
    duckdb = lazy("duckdb")
    pa = lazy("pyarrow")

__all__ = ["Source", "open_source", "duck_error", "quote_ident", "sql_str"]

_FORMATS_BY_EXT = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".csv.gz": "csv", ".tsv.gz": "csv",
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl",
    ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xlsm": "excel",
}
_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1"}
_DB_SCHEMES = ("sqlite:", "postgresql:", "postgresql+", "postgres:", "mysql:", "mysql+", "mariadb:", "mariadb+", "mssql", "oracle")


def sql_str(value: str) -> str:
    """A SQL string literal (DuckDB), quotes doubled."""
    if "\x00" in value:
        raise InvalidArgument("NUL characters are not allowed in paths or options")
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Source:
    """A relation ready to copy, and what to record about where it came from."""

    select_sql: str
    meta: dict[str, Any]
    keepalive: list[Any] = field(default_factory=list)


def _ext_format(path: str) -> str | None:
    lower = path.lower()
    for ext in sorted(_FORMATS_BY_EXT, key=len, reverse=True):
        if lower.endswith(ext):
            return _FORMATS_BY_EXT[ext]
    return None


def _expand_local(source: str) -> list[str]:
    path = Path(source).expanduser()
    if any(ch in source for ch in "*?["):
        found = sorted(p for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))
        if not found:
            raise NotFound(f"no files match {source!r}")
        return found
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and _ext_format(p.name))
        if not found:
            raise NotFound(f"folder {source!r} holds no CSV, JSON, Parquet or Excel files")
        return found
    if not path.is_file():
        raise NotFound(f"source file {source!r} does not exist")
    return [str(path)]


def _expand_s3(fs: Any, source: str) -> list[str]:
    """The objects an s3:// source names: one object, a glob, or a folder (every object
    under the prefix, trailing slash or not), as a local path, glob or folder would."""
    path = source[len("s3://"):]
    if any(ch in path for ch in "*?["):
        found = sorted(p for p, info in fs.glob(path, detail=True).items() if info.get("type") != "directory")
        if not found:
            raise NotFound(f"no objects match {source!r}")
        return ["s3://" + p for p in found]
    bare = path.rstrip("/")
    if "/" in bare and not path.endswith("/") and fs.isfile(bare):
        return [source]
    listed = fs.find(bare) if bare else []
    found = sorted(p for p in listed if _ext_format(p) and not p.rsplit("/", 1)[-1].startswith("."))
    if found:
        return ["s3://" + p for p in found]
    if listed:
        raise NotFound(f"folder {source!r} holds no CSV, JSON or Parquet objects (by extension: .csv, .jsonl, .parquet...)")
    raise NotFound(f"no object or folder {source!r}: check the bucket and key (nothing is stored under that prefix)")


def _sniff_delimiter(head: str, path: str) -> str:
    if path.lower().endswith((".tsv", ".tsv.gz")):
        return "\t"
    try:
        return csv.Sniffer().sniff(head[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_head(fs: Any, path: str, encoding: str) -> str:
    opener = fs.open if fs is not None else open
    with opener(path, "rb") as fh:
        raw = fh.read(65536)
    if path.lower().endswith(".gz"):
        import gzip

        try:
            raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(65536)
        except (OSError, EOFError):
            pass
    return raw.decode(encoding, errors="replace")


def duck_error(exc: Exception, *, what: str) -> InvalidArgument:
    """Turn a DuckDB parse/convert error into a message that names the line."""
    text = str(exc)
    line = re.search(r"(?:CSV Error on Line|Line):\s*(\d+)", text)
    cols = re.search(r"Expected Number of Columns:\s*(\d+)\s*Found:\s*(\d+)", text)
    original = re.search(r"Original Line:\s*(.*)", text)
    conv = re.search(r"Could not convert string \"?'?(.*?)'?\"? to '?(\w+)'?", text)
    details: dict[str, Any] = {}
    if line:
        details["line"] = int(line.group(1))
    if cols and line:
        msg = f"{what}: line {line.group(1)} has {cols.group(2)} columns, expected {cols.group(1)}"
        if original:
            msg += f" ({original.group(1)[:120]!r})"
        msg += "; fix that row, or check the delimiter/quote options. Nothing was ingested."
    elif conv:
        where = f" on line {line.group(1)}" if line else ""
        msg = (f"{what}: value {conv.group(1)[:80]!r}{where} is not a valid {conv.group(2)}; "
               "override the column type (e.g. --type COL=varchar) or fix the value. Nothing was ingested.")
    else:
        first = text.splitlines()[0] if text else type(exc).__name__
        msg = f"{what}: {first[:400]}" + (f" (line {line.group(1)})" if line else "") + ". Nothing was ingested."
    return InvalidArgument(msg, details=details)


def _csv_relation(con: duckdb.DuckDBPyConnection, files: list[str], opts: IngestOptions, fs: Any) -> str:
    encoding = _ENCODINGS.get(opts.encoding.lower())
    if encoding is None:
        raise InvalidArgument(f"unsupported encoding {opts.encoding!r}: use one of utf-8, utf-16, latin-1 (re-encode the file otherwise)")
    delim = opts.delimiter or _sniff_delimiter(_read_head(fs, files[0], encoding), files[0])
    if delim == "\\t":
        delim = "\t"
    dialect = [f"delim={sql_str(delim)}", f"header={'true' if opts.header else 'false'}", f"encoding={sql_str(encoding)}"]
    if opts.quote:
        dialect.append(f"quote={sql_str(opts.quote)}")
    if opts.escape:
        dialect.append(f"escape={sql_str(opts.escape)}")
    if opts.skip_rows:
        dialect.append(f"skip={int(opts.skip_rows)}")
    if opts.null_values:
        dialect.append("nullstr=[" + ", ".join(sql_str(v) for v in opts.null_values) + "]")
    file_list = "[" + ", ".join(sql_str(f) for f in files) + "]"
    try:
        sniffed = con.execute(f"SELECT Quote, Escape, NewLineDelimiter, Columns FROM sniff_csv({sql_str(files[0])}, {', '.join(dialect)}, sample_size=20480)").fetchone()
    except duckdb.Error as exc:
        _locate_csv_error(con, files, dialect, delim, opts)
        raise duck_error(exc, what=f"cannot read CSV {Path(files[0]).name}") from None
    assert sniffed is not None
    quote, escape, _newline, columns = sniffed
    # sniff_csv spells "none" as "(empty)"; an empty string tells read_csv the same.
    if not opts.quote and quote is not None:
        dialect.append(f"quote={sql_str('' if quote == '(empty)' else quote)}")
    if not opts.escape and escape is not None:
        dialect.append(f"escape={sql_str('' if escape == '(empty)' else escape)}")
    types = {c["name"]: c["type"] for c in columns}
    unknown = sorted(set(opts.types) - set(types))
    if unknown:
        raise InvalidArgument(f"type overrides name unknown columns {unknown}; the file has: {', '.join(types)}")
    types.update(opts.types)
    cols = "{" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in types.items()) + "}"
    # Strict read with the sniffed columns: a ragged or badly typed row anywhere fails, naming its line.
    return f"read_csv({file_list}, {', '.join(dialect)}, auto_detect=false, columns={cols}, strict_mode=true, null_padding=false)"


def _locate_csv_error(con: duckdb.DuckDBPyConnection, files: list[str], dialect: list[str], delim: str, opts: IngestOptions) -> None:
    """The sniffer failed (often a ragged row in its sample): read as text to find the line."""
    if len(delim) != 1:
        return  # DuckDB takes delimiters of up to 4 characters; Python's csv module only 1
    head = _read_head(None, files[0], "utf-8") if not files[0].startswith("s3://") else ""
    first = next(csv.reader(io.StringIO(head), delimiter=delim), None) if head else None
    if not first:
        return
    names = first if opts.header else [f"column{i}" for i in range(len(first))]
    cols = "{" + ", ".join(f"{sql_str(n or f'column{i}')}: 'VARCHAR'" for i, n in enumerate(names)) + "}"
    query = f"SELECT count(*) FROM read_csv({sql_str(files[0])}, {', '.join(dialect)}, auto_detect=false, columns={cols}, strict_mode=true, null_padding=false)"
    try:
        con.execute(query).fetchall()
    except duckdb.Error as exc:
        raise duck_error(exc, what=f"cannot read CSV {Path(files[0]).name}") from None


def _json_relation(files: list[str], fmt: str) -> str:
    file_list = "[" + ", ".join(sql_str(f) for f in files) + "]"
    layout = "newline_delimited" if fmt == "jsonl" else "auto"
    return f"read_json({file_list}, format={sql_str(layout)}, union_by_name=true)"


def _parquet_relation(files: list[str]) -> str:
    file_list = "[" + ", ".join(sql_str(f) for f in files) + "]"
    return f"read_parquet({file_list}, union_by_name=true)"


def _excel_reader(files: list[str], opts: IngestOptions) -> pa.Table:
    import pandas as pd

    frames = []
    for f in files:
        try:
            frames.append(pd.read_excel(f, sheet_name=opts.sheet if opts.sheet is not None else 0, engine="openpyxl", skiprows=opts.skip_rows or None, header=0 if opts.header else None))
        except ValueError as exc:
            raise InvalidArgument(f"cannot read Excel {Path(f).name}: {exc}") from None
        except Exception as exc:  # openpyxl raises many types for broken files
            raise InvalidArgument(f"cannot read Excel {Path(f).name}: {type(exc).__name__}: {exc}") from None
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.columns = [str(c) for c in frame.columns]
    return pa.Table.from_pandas(frame, preserve_index=False)


def to_arrow(data: Any) -> pa.Table | pa.RecordBatchReader:
    """pandas, polars, Arrow tables/batches/readers → something DuckDB scans."""
    if isinstance(data, pa.Table | pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".", 1)[0]
    if module == "pandas":
        frame = data.copy()
        frame.columns = [str(c) for c in frame.columns]
        return pa.Table.from_pandas(frame, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    raise InvalidArgument(f"cannot ingest a {type(data).__name__}: pass a path, a pandas/polars DataFrame or an Arrow table")


def open_source(con: duckdb.DuckDBPyConnection, source: Any, opts: IngestOptions, *, s3_fs: Any = None) -> Source:
    """Describe ``source`` as a SELECT over DuckDB; in-memory data is registered on ``con``."""
    if not isinstance(source, str | os.PathLike):
        con.register("__kiln_src", to_arrow(source))
        return Source("SELECT * FROM __kiln_src", {"kind": "arrow", "type": type(source).__name__})
    text = os.fspath(source)
    if not text or "\x00" in text:
        raise InvalidArgument("empty source: give a file, folder, glob, s3:// URL or database URL")
    lower = text.lower()
    if lower.startswith(_DB_SCHEMES) or opts.format == "sql":
        if not opts.query:
            raise InvalidArgument("a database source needs --query 'SELECT ...'")
        con.register("__kiln_src", database_reader(text, opts.query))
        return Source("SELECT * FROM __kiln_src", {"kind": "database", "url": _mask(text), "query": opts.query})
    if lower.startswith(("http://", "https://", "ftp://")):
        raise InvalidArgument(f"Kiln does not download {text!r}: fetch the file first, then ingest the local copy")
    if lower.startswith("file://"):
        text = text[len("file://"):]
    fs = None
    if lower.startswith("s3://"):
        if s3_fs is None:
            raise InvalidArgument("s3:// sources need the s3 extra: pip install 'kiln[s3]'")
        fs = s3_fs
        con.register_filesystem(fs)
        files = _expand_s3(fs, text)
    elif "://" in text:
        raise InvalidArgument(f"unsupported source URL {text!r}: use a path, s3:// URL or database URL")
    else:
        files = _expand_local(text)
        if all(os.path.getsize(f) == 0 for f in files):
            # DuckDB's sniffer reports an empty file as a header mismatch; say what it is.
            raise InvalidArgument(f"source {Path(text).name!r} is empty: there is nothing to ingest")
    fmt = opts.format or _ext_format(files[0])
    if fmt is None:
        raise InvalidArgument(f"cannot tell the format of {Path(files[0]).name!r}: pass --format csv|json|jsonl|parquet|excel")
    meta = {"kind": "files", "uri": text if len(files) == 1 else text, "files": len(files), "format": fmt}
    if fmt == "csv":
        return Source(f"SELECT * FROM {_csv_relation(con, files, opts, fs)}", meta)
    if fmt in ("json", "jsonl"):
        return Source(f"SELECT * FROM {_json_relation(files, fmt)}", meta)
    if fmt == "parquet":
        return Source(f"SELECT * FROM {_parquet_relation(files)}", meta)
    if fmt == "excel":
        if fs is not None:
            raise InvalidArgument("Excel sources must be local files")
        con.register("__kiln_src", _excel_reader(files, opts))
        return Source("SELECT * FROM __kiln_src", meta)
    raise InvalidArgument(f"unsupported format {fmt!r}: use csv, json, jsonl, parquet, excel or sql")


def _mask(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
