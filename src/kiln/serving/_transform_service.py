"""Creating batch transform jobs: the request is checked here, before anything runs, so a bad
one is refused with a 4xx and leaves no job."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, PermissionDenied
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.jobs._inputs import resolve_source
from kiln.jobs._models import Job
from kiln.jobs._processing_service import check_environment
from kiln.jobs._service import JobService

__all__ = ["SPLIT_TYPES", "STRATEGIES", "TransformService", "fetch_model", "check_model"]

SPLIT_TYPES = ("None", "Line")
STRATEGIES = ("SingleRecord", "MultiRecord")
ASSEMBLE = ("None", "Line")
JOIN_SOURCES = ("None", "Input")
CONTENT_TYPES = ("text/csv", "application/json", "application/jsonlines", "application/x-npy")
MAX_PAYLOAD_MB = 100.0
MAX_WORKERS = 64
_MEDIA = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9*][a-z0-9!#$&^_.+*-]{0,63}")


def check_model(ws: Workspace, ctx: Context, ref: str) -> tuple[Any, Any, bool]:
    """The model version ``ref`` names, its manifest, and whether its code may run — the
    registry's rules for serving (``ModelService.start_worker``): a package that runs code
    needs the server's ``model_code`` setting to allow it and an admin's trust on the version.

    Raises:
        NotFound: no such model or version.
        PermissionDenied: the package runs code that may not run here.
    """
    from kiln.registry._build import runs_code
    from kiln.registry._service import ModelService

    row, manifest = ModelService(ws, ctx)._located(ref)
    if not runs_code(manifest):
        return row, manifest, False
    what = "code/inference.py" if manifest.flavor == "custom" or "code/inference.py" in manifest.files else (
        f"training code (code/{manifest.flavor_options.get('entry_point', '')})" if manifest.flavor == "sagemaker" else "a pickle")
    if ws.settings.model_code == "never":
        raise PermissionDenied(f"model {row.name}@{row.version} holds {what}, and this server runs no model code (KILN_MODEL_CODE=never)")
    if row.trusted_by is None:
        raise PermissionDenied(
            f"model {row.name}@{row.version} holds {what} (uploaded by {row.created_by}); a transform runs that code. "
            f"An admin who trusts it can allow it: `kiln models trust {row.name}@{row.version}`"
        )
    return row, manifest, True


def fetch_model(ws: Workspace, ctx: Context, ref: str) -> tuple[str, Path, bool]:
    """Check ``ref`` again (its trust may have changed since the job was submitted) and fetch
    its verified package into this machine's cache: (name@version, folder, trusted)."""
    from kiln.registry._service import ModelService

    row, manifest, trusted = check_model(ws, ctx, ref)
    folder = ModelService(ws, ctx)._fetch(row, manifest)
    return f"{row.name}@{row.version}", folder, trusted


def _destination(ws: Workspace, ctx: Context, output: str) -> dict[str, str]:
    """Where the outputs go: a dataset (name → a new version), ``s3://``, or a folder (in-process only)."""
    if not isinstance(output, str) or not output.strip():
        raise InvalidArgument("a transform needs an output: a dataset name, a folder, or s3://bucket/prefix")
    text = output.strip()
    if text.lower().startswith("s3://"):
        if ctx.source != "local":
            ctx.require("admin")  # the server writes with its own credentials
        return {"kind": "s3", "value": text}
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}@[A-Za-z0-9_-]+", text):
        raise InvalidArgument(f"output {text!r} names a dataset version; a transform writes a new version: give the dataset's name alone")
    if "/" not in text and "\\" not in text and not text.startswith(".") and re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", text):
        return {"kind": "dataset", "value": check_name(text, kind="dataset")}
    if ctx.source != "local":
        raise InvalidArgument(f"output {output!r} is a path; over REST the server writes no files of its own - use a dataset name or s3://")
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise InvalidArgument(f"output {str(path)!r} is a file; give a folder (each input file's <name>.out goes in it)")
    return {"kind": "path", "value": str(path)}


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidArgument(f"{what} must be one of {', '.join(allowed)} (got {str(value)[:40]!r})")
    return value


def _media(value: str | None, what: str, default: str) -> str:
    text = (value or default).strip().lower()
    if not _MEDIA.fullmatch(text.split(";", 1)[0].strip()):
        raise InvalidArgument(f"{what} {str(value)[:60]!r} is not a media type such as text/csv")
    return text


class TransformService:
    """Batch transform jobs (SageMaker Batch Transform)."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def create(
        self,
        *,
        model: str,
        input: str,
        output_location: str,
        content_type: str | None = None,
        accept: str | None = None,
        split_type: str = "None",
        strategy: str = "MultiRecord",
        max_payload_mb: float = 6.0,
        assemble_with: str = "None",
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str = "None",
        workers: int = 1,
        environment: Mapping[str, Any] | None = None,
        name: str | None = None,
        max_run_s: float | None = None,
        max_retries: int = 0,
    ) -> Job:
        """Start a batch transform: the model's predictions for every record of ``input``.

        ``input`` is a dataset (``name@version``, read as CSV without a header unless a format
        is given), a file or folder (in-process only) or ``s3://``; each input file's answers
        go to ``<file>.out`` in ``output_location`` (an ``s3://`` prefix, or a folder in-process
        only: over REST the server writes no files of its own), or into a new version of the
        dataset it names (its rows are the answers' lines: AssembleWith is Line
        there). The options are SageMaker's: SplitType, BatchStrategy,
        MaxPayloadInMB, AssembleWith, InputFilter / OutputFilter (JSONPath) and JoinSource.
        A failed transform submitted again resumes: finished chunks are not redone.

        Raises:
            InvalidArgument: a bad option, filter, destination or name.
            NotFound: no such model version or input.
            PermissionDenied: the model runs code that may not run here.
        """
        from kiln.serving._transform_records import compile_filter

        self.ctx.require("editor")
        JobService(self.ws, self.ctx).executor.warm()
        _choice(split_type, SPLIT_TYPES, "split_type (SplitType)")
        _choice(strategy, STRATEGIES, "strategy (BatchStrategy)")
        _choice(assemble_with, ASSEMBLE, "assemble_with (AssembleWith)")
        _choice(join_source, JOIN_SOURCES, "join_source (JoinSource)")
        if isinstance(max_payload_mb, bool) or not isinstance(max_payload_mb, (int, float)) or not 0 < max_payload_mb <= MAX_PAYLOAD_MB:
            raise InvalidArgument(f"max_payload_mb (MaxPayloadInMB) must be above 0 and at most {MAX_PAYLOAD_MB:g}")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise InvalidArgument(f"workers must be a whole number from 1 to {MAX_WORKERS}")
        ct = _media(content_type, "content_type", "text/csv")
        acc = _media(accept, "accept", "application/json" if join_source == "None" and output_filter is None else ct)
        for label, expr in (("input_filter", input_filter), ("output_filter", output_filter)):
            if expr is not None and (not isinstance(expr, str) or not expr.startswith("$") or len(expr) > 1024):
                raise InvalidArgument(f"{label} must be a JSONPath expression starting with '$' (such as $[1:])")
            compile_filter(expr)
        row, _, _ = check_model(self.ws, self.ctx, model)
        source = resolve_source(self.ws, self.ctx, input, what="input")
        if source.kind == "dataset" and source.format == "parquet":
            raise InvalidArgument(f"a transform sends records as text; read {source.value} as {source.value} (CSV rows) or {source.value}:csv (with its header)")
        if source.kind == "dataset" and not re.search(r":(csv|csv-noheader)$", input.strip()):
            source = type(source)(source.kind, source.value, "csv-noheader")  # records, as SageMaker reads an S3 CSV
        dest = _destination(self.ws, self.ctx, output_location)
        if dest["kind"] == "dataset":
            assemble_with = "Line"  # a dataset's rows are the answers' lines; concatenated answers make no rows
        if name is not None:
            check_name(name, kind="job")
        spec = {
            "model": f"{row.name}@{row.version}", "inputs": source.as_dict(), "output": dest, "content_type": ct, "accept": acc,
            "split_type": split_type, "strategy": strategy, "max_payload_mb": float(max_payload_mb), "assemble_with": assemble_with,
            "input_filter": input_filter, "output_filter": output_filter, "join_source": join_source, "workers": workers,
            "environment": check_environment(environment),
        }
        return JobService(self.ws, self.ctx).submit(
            kind="transform", spec=spec, name=name, base_name=f"{row.name}-transform", time_limit_s=max_run_s,
            max_attempts=int(max_retries) + 1, cpus=float(workers),
        )
