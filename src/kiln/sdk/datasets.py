"""SDK: ``client.datasets``."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from kiln.core.errors import InvalidArgument, invalid_input
from kiln.lake import Dataset, DatasetService, DatasetVersion, IngestOptions
from kiln.lake._sources import to_arrow
from kiln.lake._wire import decode_table
from kiln.lake.datasets import export_format, export_target
from kiln.lake import _ops as ops
from kiln.sdk._base import HttpTransport, Namespace, seg
from kiln.core._lazy import lazy

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
else:
    pa = lazy("pyarrow")
    pq = lazy("pyarrow.parquet")

__all__ = ["Datasets"]


class Datasets(Namespace):
    """Datasets: immutable, versioned Parquet tables."""

    def ingest(self, name: str, source: Any, *, append: bool = False, format: str | None = None, options: IngestOptions | None = None, progress: Any = None, **option_fields: Any) -> DatasetVersion:
        """Make a new version of ``name`` from a file, folder, glob, URL or DataFrame.

        Options (``delimiter=``, ``header=``, ``types={"zip": "varchar"}``,
        ``query=`` for database URLs...) are the fields of :class:`IngestOptions`.
        """
        try:
            opts = (options or IngestOptions()).model_copy(update={"format": format, **option_fields} if format else option_fields)
            opts = IngestOptions.model_validate(opts.model_dump())
        except ValueError as exc:
            raise invalid_input("invalid ingest options", exc) from None
        if self._local:
            return self._svc(DatasetService).ingest(name, source, options=opts, append=append, progress=progress)
        return self._remote_ingest(name, source, opts, append)

    def _remote_ingest(self, name: str, source: Any, opts: IngestOptions, append: bool) -> DatasetVersion:
        if isinstance(source, str) and source.lower().startswith(("s3://", "postgresql://", "postgres://", "mysql")):
            body = {"source": source, "options": opts.model_dump(exclude_none=True), "append": append}
            return DatasetVersion.model_validate(self._http("POST", f"/v1/datasets/{seg(name)}/versions", json=body))
        params: dict[str, Any] = {k: v for k, v in opts.model_dump(exclude_none=True, exclude_defaults=True).items() if k not in ("types", "null_values", "query")}
        if opts.types:
            params["types"] = orjson.dumps(opts.types).decode()
        if opts.null_values:
            params["null_values"] = ",".join(opts.null_values)
        params["append"] = str(append).lower()
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise InvalidArgument(f"{source!r} is not a file: over a server, ingest one file at a time (use append for more)")
            if not opts.format:
                from kiln.lake._sources import _ext_format

                fmt = _ext_format(path.name)
                if fmt is None:
                    raise InvalidArgument(f"cannot tell the format of {path.name!r}: pass --format csv|json|jsonl|parquet|excel")
                params["format"] = fmt
            t = self._t
            assert isinstance(t, HttpTransport)
            with open(path, "rb") as fh:
                return DatasetVersion.model_validate(t.request("POST", f"/v1/datasets/{seg(name)}/versions", params=params, content=fh, headers={"content-type": "application/octet-stream"}))
        table = to_arrow(source)
        if isinstance(table, pa.RecordBatchReader):
            table = table.read_all()
        sink = io.BytesIO()
        pq.write_table(table, sink)
        params["format"] = "parquet"
        return DatasetVersion.model_validate(self._http("POST", f"/v1/datasets/{seg(name)}/versions", params=params, content=sink.getvalue(), headers={"content-type": "application/octet-stream"}))

    def list(self) -> list[Dataset]:
        """Every dataset with its latest version's size."""
        return self._call(ops.DATASETS_LIST)  # type: ignore[no-any-return]

    def get(self, ref: str) -> DatasetVersion:
        """A version: ``name`` (latest) or ``name@3``."""
        return self._call(ops.DATASETS_GET, ref=ref)  # type: ignore[no-any-return]

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of a dataset, oldest first."""
        return self._call(ops.DATASETS_VERSIONS, name=name)  # type: ignore[no-any-return]

    def verify(self, ref: str) -> DatasetVersion:
        """Check a version's files against their recorded sha256; raises ``KilnError`` naming any that changed."""
        return self._call(ops.DATASETS_VERIFY, ref=ref)  # type: ignore[no-any-return]

    def _input(self, ref: str) -> str:
        """Inside an active ``kiln.Run``, pin ``ref`` to its exact version and record it as the
        run's input (its lineage); otherwise ``ref`` as given."""
        from kiln.sdk.run import current_run

        run = current_run()
        if run is None:
            return ref
        got = self.get(ref)
        return run.log_input(f"{got.name}@{got.version}")

    def head(self, ref: str, n: int = 10) -> pa.Table:
        """The first ``n`` rows of a version (an input of the active Run, if any)."""
        ref = self._input(ref)
        if self._local:
            return self._svc(DatasetService).head(ref, n=n)
        return decode_table(self._http("GET", f"/v1/datasets/{seg(ref)}/head", params={"n": n, "format": "arrow"}))

    def read(self, ref: str, *, columns: list[str] | None = None) -> pa.Table:
        """The whole version as an Arrow table (``.to_pandas()`` for pandas).

        Inside ``with kiln.Run(...)`` the exact version read is recorded as the run's input,
        and a model registered from the run takes it as its lineage.
        """
        ref = self._input(ref)
        if self._local:
            return self._svc(DatasetService).read_table(ref, columns=columns)
        table = pq.read_table(io.BytesIO(self._http("GET", f"/v1/datasets/{seg(ref)}/export", params={"format": "parquet"})))
        if columns:
            missing = sorted(set(columns) - set(table.schema.names))
            if missing:
                raise InvalidArgument(f"unknown columns {missing}; the dataset has {', '.join(table.schema.names)}")
            table = table.select(columns)
        return table

    def export(self, ref: str, dest: str | os.PathLike[str], *, format: str | None = None) -> Path:
        """Write a version to a local CSV, Parquet or JSON Lines file (an input of the active Run, if any)."""
        ref = self._input(ref)
        if self._local:
            return self._svc(DatasetService).export(ref, dest, format=format)
        fmt = export_format(dest, format)
        t = self._t
        assert isinstance(t, HttpTransport)
        target = export_target(dest)
        tmp = target.with_name(f".{target.name}.part")
        try:
            with t.stream("GET", f"/v1/datasets/{seg(ref)}/export", params={"format": fmt}) as resp, open(tmp, "wb") as out:
                for chunk in resp.iter_bytes():
                    out.write(chunk)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def export_bundle(self, name: str, dest: str | os.PathLike[str]) -> Path:
        """Write dataset ``name`` with every version, schema, source, lineage and checksum
        to one bundle file, for :meth:`import_bundle` in another workspace."""
        if self._local:
            from kiln.lake.bundles import BundleService

            return self._svc(BundleService).export(name, dest)
        t = self._t
        assert isinstance(t, HttpTransport)
        target = Path(dest).expanduser().absolute()
        tmp = target.with_name(f".{target.name}.part")
        try:
            with t.stream("GET", f"/v1/datasets/{seg(name)}/bundle") as resp, open(tmp, "wb") as out:
                for chunk in resp.iter_bytes():
                    out.write(chunk)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def import_bundle(self, path: str | os.PathLike[str], *, name: str | None = None) -> list[DatasetVersion]:
        """Import a bundle (every file's sha256 checked first; nothing is half-imported)."""
        if self._local:
            from kiln.lake.bundles import BundleService

            return self._svc(BundleService).import_(path, name=name)
        if not Path(path).is_file():
            raise InvalidArgument(f"bundle {str(path)!r} is not a file")
        t = self._t
        assert isinstance(t, HttpTransport)
        with open(path, "rb") as fh:
            data = t.request("POST", "/v1/datasets/bundles", params={"name": name}, content=fh, headers={"content-type": "application/octet-stream"})
        return [DatasetVersion.model_validate(v) for v in data]

    def delete(self, ref: str) -> list[int]:
        """Delete ``name@V`` or every version of ``name``; returns the versions removed."""
        return self._call(ops.DATASETS_DELETE, ref=ref)  # type: ignore[no-any-return]

    def profile(self, ref: str, *, target: str | None = None) -> Any:
        """Profile a version and store the HTML and JSON reports with it; returns a ``ProfileInfo``."""
        from kiln.sdk import prep

        return prep.profile(self, ref, target=target)

    def profile_report(self, ref: str, *, format: str = "html") -> Any:
        """The latest profile of a version: HTML bytes (``format="html"``) or the JSON document (``"json"``)."""
        from kiln.sdk import prep

        return prep.profile_report(self, ref, format=format)  # type: ignore[arg-type]

    def profiles(self, name: str) -> list[Any]:
        """Every stored profile of a dataset's versions, newest first."""
        from kiln.sdk import prep

        return prep.profiles(self, name)
