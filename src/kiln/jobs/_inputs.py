"""A job's inputs: dataset versions or files, checked when the job is submitted and
materialised as files in the job's folder when it runs.

A source is written as:
- ``cancer@2`` or ``cancer`` (a dataset version; ``cancer`` is pinned to the latest
  version at submit time, so a job always names exact versions), optionally with a
  format: ``cancer@2:csv`` (header, the default), ``cancer@2:csv-noheader`` or
  ``cancer@2:parquet``;
- a file or folder path (``./data``, ``/data/train.csv``, ``file:///data``), read only
  in-process: over REST a server never reads its own files for a caller;
- ``s3://bucket/prefix``, read with the server's credentials: only an admin may point
  the server at a bucket over REST, as for ingest.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.names import NAME_RE
from kiln.core.workspace import Workspace

__all__ = ["FORMATS", "InputSource", "materialize", "resolve_source"]

# format -> (file suffix, content type written to inputdataconfig.json)
FORMATS: dict[str, tuple[str, str]] = {
    "csv": (".csv", "text/csv"),
    "csv-noheader": (".csv", "text/csv"),
    "parquet": (".parquet", "application/x-parquet"),
}


@dataclass(frozen=True)
class InputSource:
    """A checked source: ``kind`` is ``dataset``, ``path`` or ``s3``."""

    kind: str
    value: str  # dataset ref with its version (``cancer@2``), absolute path, or s3 URL
    format: str | None = None

    @property
    def content_type(self) -> str | None:
        return FORMATS[self.format][1] if self.kind == "dataset" and self.format else None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "format": self.format}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSource:
        return cls(kind=data["kind"], value=data["value"], format=data.get("format"))


def _looks_like_dataset(text: str) -> bool:
    name = text.split("@", 1)[0]
    return bool(NAME_RE.fullmatch(name)) and "/" not in text


def resolve_source(ws: Workspace, ctx: Context, source: str, *, what: str) -> InputSource:
    """Check ``source`` now, so a job never starts with an input that cannot be read.

    Raises:
        InvalidArgument: unreadable syntax or format, a local path over REST.
        NotFound: no such dataset (version) or file.
        PermissionDenied: an ``s3://`` source over REST from a caller below admin.
    """
    if not isinstance(source, str) or not source.strip():
        raise InvalidArgument(f"{what} has no source; give a dataset (name@version), a path, or s3://bucket/prefix")
    text = source.strip()
    if text.lower().startswith("s3://"):
        if ctx.source != "local":
            ctx.require("admin")  # the server reads with its own credentials
        return InputSource("s3", text)
    body, sep, fmt = text.rpartition(":") if ":" in text and not text.startswith(("/", ".", "file:")) else (text, "", "")
    if not sep:
        body, fmt = text, ""
    if _looks_like_dataset(body):
        if fmt and fmt not in FORMATS:
            raise InvalidArgument(f"{what}: unknown format {fmt!r} for dataset {body}; one of {sorted(FORMATS)}")
        version = _dataset_version(ws, ctx, body)
        if version is not None:
            return InputSource("dataset", version, fmt or "csv")
        if ctx.source != "local" or not Path(text).exists():
            raise NotFound(f"{what}: no dataset {body!r} (and no file of that name); `kiln datasets ls` lists datasets")
    if ctx.source != "local":
        raise InvalidArgument(f"{what}: {source!r} is a path; over REST the server reads no files of its own - use a dataset (name@version) or s3://")
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    if not path.exists():
        raise NotFound(f"{what}: no file or folder {str(path)!r}")
    return InputSource("path", str(path.resolve()))


def _dataset_version(ws: Workspace, ctx: Context, ref: str) -> str | None:
    from kiln.lake.datasets import DatasetService

    try:
        version = DatasetService(ws, ctx).get(ref)
    except NotFound as exc:
        if "does not exist" in exc.message:
            return None  # no such dataset: the caller may still mean a file
        raise  # the dataset exists but not that version: say so
    return f"{version.name}@{version.version}"


def materialize(ws: Workspace, ctx: Context, source: InputSource, dest: Path) -> list[Path]:
    """Write the source's files into folder ``dest``; returns the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    if source.kind == "dataset":
        return [_export_dataset(ws, ctx, source, dest)]
    if source.kind == "path":
        src = Path(source.value)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=False)
            return sorted(p for p in dest.rglob("*") if p.is_file())
        target = dest / src.name
        shutil.copyfile(src, target)
        return [target]
    return _copy_s3(ws, source.value, dest)


def _export_dataset(ws: Workspace, ctx: Context, source: InputSource, dest: Path) -> Path:
    from kiln.lake.datasets import DatasetService

    name = source.value.split("@", 1)[0]
    suffix = FORMATS[source.format or "csv"][0]
    target = dest / f"{name}{suffix}"
    svc = DatasetService(ws, ctx)
    if source.format == "csv-noheader":
        import pyarrow.csv as pcsv

        table = svc.read_table(source.value)
        pcsv.write_csv(table, target, write_options=pcsv.WriteOptions(include_header=False))
        return target
    return svc.export(source.value, target, format="parquet" if source.format == "parquet" else "csv")


def _copy_s3(ws: Workspace, url: str, dest: Path) -> list[Path]:
    import fsspec

    opts: dict[str, Any] = {}
    if ws.settings.s3_endpoint_url:
        opts["client_kwargs"] = {"endpoint_url": ws.settings.s3_endpoint_url}
    fs = fsspec.filesystem("s3", **opts)
    root = url[len("s3://"):].rstrip("/")
    files = [root] if fs.isfile(root) else [p for p in fs.find(root) if not p.endswith("/")]
    if not files:
        raise NotFound(f"nothing at {url}")
    out = []
    for key in files:
        rel = Path(key).name if key == root else key[len(root):].lstrip("/")
        target = (dest / rel).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise InvalidArgument(f"object key {key!r} would be written outside the job's folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(key, str(target))
        out.append(target)
    return out
