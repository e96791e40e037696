"""Batch transform jobs (SageMaker Batch Transform): the job program (kind ``transform``)
and the functions its worker processes run.

The program runs in the job's runner (Kiln's code, with the workspace). It fetches the
verified model package, lists the input files, cuts each into chunks of whole records
(about MaxPayloadInMB each) and hands the chunks to N worker processes
(:class:`kiln.core.worker.Worker`): each loads the model once as a
:class:`kiln.serving._runtime.Servable`, with ``SAGEMAKER_BATCH=true``,
``SAGEMAKER_MAX_PAYLOAD_IN_MB`` and ``SAGEMAKER_BATCH_STRATEGY`` in its environment, and
turns a chunk into its output piece. Model code runs only there.

Resume: the chunks' outputs live in a work folder named by the digest of what the
transform computes (model version, inputs, options), each written to a temporary name
and renamed when complete. A retry (the job's next attempt, or the same transform
submitted again after a failure) finds the finished chunks and does only the rest.
``<file>.out`` is assembled only when every chunk of every file is done, then delivered
atomically (a file renamed into place, an object put whole, or one dataset version); the
work folder is removed once the outputs are delivered.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kiln.core.errors import InvalidArgument, KilnError
from kiln.jobs._runner import Outcome, RunningJob
from kiln.serving import _transform_records as rec
from kiln.serving._transform_worker import load, run_chunk

__all__ = ["run", "run_chunk", "load", "work_dir"]

TARGET = "kiln.serving._transform_worker"  # what the workers run (load, run_chunk)
SINGLE_RECORD_CHUNK = 1 << 20  # SingleRecord: about 1 MB of records per chunk (a chunk is the unit of resume)


@dataclass(frozen=True)
class Chunk:
    id: str
    rel: str  # the input file's path under its input root: the output is <rel>.out
    path: str
    start: int
    end: int


def work_dir(home: Path, spec: dict[str, Any], fingerprint: Any = None) -> Path:
    """Where a transform's finished chunks are kept until its outputs are delivered: named by
    what it computes (model version, options, and the input files' sizes and times, so an
    edited file is never answered from an old chunk), so the same transform submitted again
    resumes there."""
    keys = ("model", "inputs", "content_type", "accept", "split_type", "strategy", "max_payload_mb",
            "assemble_with", "input_filter", "output_filter", "join_source", "environment")
    what = {**{k: spec.get(k) for k in keys}, "fingerprint": fingerprint}
    digest = hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Path(home) / "transform" / digest[:24]


def _fingerprint(job: RunningJob) -> Any:
    """The input as it is now: each local file's size and modification time, each object's
    size and ETag (a dataset version never changes: its reference says it all)."""
    source = job.spec["inputs"]
    if source["kind"] == "path":
        root = Path(source["value"])
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    if source["kind"] == "s3":
        import fsspec

        opts: dict[str, Any] = {}
        if job.ws.settings.s3_endpoint_url:
            opts["client_kwargs"] = {"endpoint_url": job.ws.settings.s3_endpoint_url}
        found = fsspec.filesystem("s3", **opts).find(source["value"][len("s3://"):], detail=True)
        return sorted((k, v.get("size"), str(v.get("ETag") or v.get("LastModified") or "")) for k, v in found.items())
    return None


# -- in the job's runner ---------------------------------------------------------------------------


def run(job: RunningJob) -> Outcome:
    from kiln.serving._transform_service import fetch_model

    spec = job.spec
    started = time.monotonic()
    _warm_workers()  # the workers' zygote preloads while the model is fetched and the input cut
    try:
        ref, folder, trusted = fetch_model(job.ws, job.ctx, spec["model"])
        work = work_dir(job.ws.settings.home, spec, _fingerprint(job))
    except KilnError as exc:
        return Outcome(failure=exc.message)
    except OSError as exc:
        return Outcome(failure=f"the input could not be read: {exc}", retriable=True)
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    pool = _Pool(job, spec, work, folder=folder, trusted=trusted, ref=ref)  # the workers load while the input is cut
    try:
        try:
            files = _input_files(job, work)
            chunks, counts, records = _plan(files, spec)
        except KilnError as exc:
            return Outcome(failure=exc.message)
        except OSError as exc:
            return Outcome(failure=f"the input could not be read: {exc}", retriable=True)
        todo = [c for c in chunks if not (work / "chunks" / c.id).is_file()]
        done = len(chunks) - len(todo)
        job.log(f"transform with model {ref}: {len(files)} file(s), {records:,} records, {len(chunks)} chunk(s)"
                + (f"; {done} already done, resuming" if done else ""))
        job.log(f"progress {done}/{len(chunks)} chunks")
        outcome = pool.run(todo, counts, done=done, total=len(chunks))
    finally:
        pool.close()
    if outcome is not None:
        return outcome
    outputs = _assemble(files, chunks, work)
    try:
        delivered = _deliver(job, spec, outputs)
    except KilnError as exc:
        return Outcome(failure=f"the output could not be written to {spec['output']['value']}: {exc.message}")
    except OSError as exc:
        return Outcome(failure=f"the output could not be written to {spec['output']['value']}: {exc}", retriable=True)
    shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    metrics = {"records": float(records), "records_per_s": records / max(elapsed, 1e-9), **pool.metrics()}
    job.log(f"transformed {records:,} records in {elapsed:.1f} s (workers ready after {metrics.get('startup_s', 0):.1f} s); output {delivered}")
    return Outcome(outputs=delivered, metrics=metrics)


def _warm_workers() -> None:
    from kiln.core import _worker_zygote

    if _worker_zygote.enabled():
        try:
            _worker_zygote.warm()
        except OSError:
            pass  # each Worker falls back on a fresh interpreter


def _input_files(job: RunningJob, work: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every input file, sorted; dataset and s3 inputs are copied
    into the work folder once, local files are read where they are."""
    from kiln.jobs._inputs import InputSource, materialize

    source = InputSource.from_dict(job.spec["inputs"])
    if source.kind == "path":
        root = Path(source.value)
        if root.is_file():
            return [(root.name, root)]
        if not root.is_dir():
            raise InvalidArgument(f"input {source.value!r} no longer exists")
        found = [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    else:
        inputs = work / "input"
        if not (work / "input.done").is_file():
            shutil.rmtree(inputs, ignore_errors=True)
            materialize(job.ws, job.ctx, source, inputs)
            (work / "input.done").write_text("ok")
        found = [(p.relative_to(inputs).as_posix(), p) for p in sorted(inputs.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    if not found:
        raise InvalidArgument(f"input {source.value!r} holds no files to transform")
    return found


def _plan(files: list[tuple[str, Path]], spec: dict[str, Any]) -> tuple[list[Chunk], dict[str, int], int]:
    """Cut every file into chunks of whole records; returns them, each chunk's first record
    number in its file (for error messages) and the number of records."""
    limit = int(spec["max_payload_mb"] * rec.MB)
    target = limit if spec["strategy"] == "MultiRecord" else min(limit, SINGLE_RECORD_CHUNK)
    chunks: list[Chunk] = []
    first: dict[str, int] = {}
    records = 0
    for i, (rel, path) in enumerate(files):
        size = path.stat().st_size
        if spec["split_type"] == "None":
            if size > limit:
                raise InvalidArgument(
                    f"file {rel} is {size / rec.MB:.1f} MB, over MaxPayloadInMB={spec['max_payload_mb']:g}; with SplitType None a "
                    "file is one record: raise --max-payload-mb (at most 100) or use --split-type Line"
                )
            chunks.append(Chunk(f"{i:05d}-000000", rel, str(path), 0, size))
            first[chunks[-1].id] = 0
            records += 1 if size else 0
            continue
        with open(path, "rb") as fh:
            start, n, lines = 0, 0, 0
            while start < size:
                fh.seek(start)
                data = fh.read(target)
                if start + len(data) >= size:
                    cut = len(data)
                else:  # cut after the last whole record that fits, so a chunk is at most one mini-batch
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:  # one record longer than the limit: the whole record (the worker refuses it, naming it)
                        fh.seek(start + len(data))
                        data += fh.readline()
                        cut = len(data)
                end = start + cut
                cid = f"{i:05d}-{n:06d}"
                chunks.append(Chunk(cid, rel, str(path), start, end))
                first[cid] = lines
                lines += _records_in(data[:cut])
                start, n = end, n + 1
        records += lines
    return chunks, first, records


def _records_in(data: bytes) -> int:
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if b"\n\n" in data or data.startswith(b"\n") or b"\r\n\r\n" in data:  # blank lines are not records
        lines = sum(1 for line in data.split(b"\n") if line.strip())
    return lines


class _Pool:
    """N worker processes, each loading the model as soon as the pool is made, then taking
    chunks from a queue until it is empty or a chunk fails."""

    def __init__(self, job: RunningJob, spec: dict[str, Any], work: Path, *, folder: Path, trusted: bool, ref: str) -> None:
        from kiln.core.worker import Worker

        self.job, self.work, self.ref = job, work, ref
        self.options = {k: spec[k] for k in ("split_type", "strategy", "max_payload_mb", "content_type", "accept", "assemble_with",
                                             "input_filter", "output_filter", "join_source")}
        env = {**spec.get("environment", {}), "SAGEMAKER_BATCH": "true",
               "SAGEMAKER_MAX_PAYLOAD_IN_MB": f"{spec['max_payload_mb']:g}", "SAGEMAKER_BATCH_STRATEGY": spec["strategy"]}
        self.load_args = {"folder": str(folder), "trusted": trusted, "name": ref, "environment": env}
        self.timeout = max(job.ws.settings.worker_timeout_s, 60.0)
        n = max(1, int(spec.get("workers") or 1))
        self.workers = [Worker(timeout_s=self.timeout, label=f"model {ref}", redact=[str(folder), str(work)]) for _ in range(n)]
        self.pending: queue.SimpleQueue[Chunk | None] = queue.SimpleQueue()
        self.errors: list[tuple[KilnError, bool]] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.first: dict[str, int] = {}
        self.done = self.total = 0
        self.t0 = time.monotonic()
        self.ready_at: float | None = None
        self.load_s: float | None = None  # the first ready worker: from its start to its model loaded
        self.ended_at: float | None = None
        self.ran_records = 0
        self.threads = [threading.Thread(target=self._serve, args=(w,), name=f"kiln-transform-{i}", daemon=True) for i, w in enumerate(self.workers)]
        for th in self.threads:
            th.start()

    def _serve(self, worker: Any) -> None:
        try:
            asked = time.monotonic()
            worker.call(f"{TARGET}:load", self.load_args, timeout_s=self.timeout)
            with self.lock:
                self.ready_at = self.ready_at or time.monotonic()
                self.load_s = self.load_s if self.load_s is not None else self.ready_at - asked
            while not self.halt.is_set():
                chunk = self.pending.get()
                if chunk is None:
                    return
                remaining = self.job.remaining_s()
                result, _ = worker.call(f"{TARGET}:run_chunk", {
                    "path": chunk.path, "rel": chunk.rel, "start": chunk.start, "end": chunk.end, "first_record": self.first[chunk.id],
                    "out": str(self.work / "chunks" / chunk.id), "options": self.options,
                }, timeout_s=None if remaining is None else max(0.001, remaining))
                with self.lock:
                    self.done += 1
                    self.ran_records += int(result.get("records", 0))
                    self.ended_at = time.monotonic()
                    self.job.log(f"progress {self.done}/{self.total} chunks")
        except KilnError as exc:
            with self.lock:
                details = exc.details or {}
                self.errors.append((exc, "record" in details or "file" in details))
            self.halt.set()
        finally:
            worker.close()

    def run(self, todo: list[Chunk], first: dict[str, int], *, done: int, total: int) -> Outcome | None:
        """Run the chunks; None when all are done, else what failed."""
        self.first, self.done, self.total = first, done, total
        for c in todo:
            self.pending.put(c)
        for _ in self.threads:
            self.pending.put(None)
        while any(th.is_alive() for th in self.threads):
            if self.job.stop_requested:
                self.close()
            for th in self.threads:
                th.join(timeout=0.2)
        if self.job.stop_requested:
            return Outcome(stopped=True)
        if self.errors:
            exc, bad_input = self.errors[0]
            return Outcome(failure=f"model {self.ref}: {exc.message}", retriable=not bad_input)
        if self.done < total:
            return Outcome(failure=f"{total - self.done} chunk(s) were not transformed; see the job's log", retriable=True)
        return None

    def close(self) -> None:
        self.halt.set()
        for _ in self.threads:
            self.pending.put(None)
        for w in self.workers:
            w.close()

    def metrics(self) -> dict[str, float]:
        """When the first worker was ready, and the rows/s of the chunks from then on."""
        if self.ready_at is None:
            return {}
        out = {"startup_s": self.ready_at - self.t0, "worker_load_s": self.load_s or 0.0}
        if self.ended_at is not None and self.ran_records:
            out["chunk_records_per_s"] = self.ran_records / max(self.ended_at - self.ready_at, 1e-9)
        return out


def _assemble(files: list[tuple[str, Path]], chunks: list[Chunk], work: Path) -> list[tuple[str, Path]]:
    """Each input file's ``<file>.out`` from its chunks, in order (renamed into place whole)."""
    out_root = work / "out"
    outputs = []
    for rel, _ in files:
        target = out_root / f"{rel}.out"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as out:
            for c in chunks:
                if c.rel == rel:
                    with open(work / "chunks" / c.id, "rb") as piece:
                        shutil.copyfileobj(piece, out, 1 << 20)
        os.replace(tmp, target)
        outputs.append((f"{rel}.out", target))
    return outputs


def _deliver(job: RunningJob, spec: dict[str, Any], outputs: list[tuple[str, Path]]) -> dict[str, Any]:
    dest = spec["output"]
    if dest["kind"] == "dataset":
        return {"datasets": {"output": _register(job, dest["value"], outputs)}}
    if dest["kind"] == "s3":
        import fsspec

        opts: dict[str, Any] = {}
        if job.ws.settings.s3_endpoint_url:
            opts["client_kwargs"] = {"endpoint_url": job.ws.settings.s3_endpoint_url}
        fs = fsspec.filesystem("s3", **opts)
        root = dest["value"].rstrip("/")
        urls = []
        for rel, path in outputs:
            fs.put_file(str(path), f"{root}/{rel}")  # an object appears whole, or not at all
            urls.append(f"{root}/{rel}")
        return {"files": urls}
    root = Path(dest["value"])
    written = []
    for rel, path in outputs:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{job.name}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        written.append(str(target))
    return {"files": written}


def _register(job: RunningJob, dataset: str, outputs: list[tuple[str, Path]]) -> str:
    """The outputs as one new dataset version: CSV read without a header (columns ``_c0``…),
    JSON lines as records."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    from kiln.lake.datasets import DatasetService

    spec = job.spec
    kind = rec.media(spec["content_type"] if spec["join_source"] == "Input" else spec["accept"])
    tables = []
    for rel, path in outputs:
        if path.stat().st_size == 0:
            continue
        try:
            if kind == rec.CSV:
                table = pcsv.read_csv(path, read_options=pcsv.ReadOptions(autogenerate_column_names=True))
                table = table.rename_columns([f"_c{i}" for i in range(table.num_columns)])
            else:
                table = pjson.read_json(path)
        except pa.ArrowInvalid as exc:
            raise InvalidArgument(f"{rel} does not read as {kind} rows (use a file destination for other outputs): {exc}") from None
        tables.append(table)
    if not tables:
        raise InvalidArgument("the transform produced no rows to register")
    table = pa.concat_tables(tables, promote_options="permissive")
    parents = [spec["inputs"]["value"]] if spec["inputs"]["kind"] == "dataset" else []
    version = DatasetService(job.ws, job.ctx).ingest(dataset, table, lineage={"parents": parents, "job": job.name, "model": spec["model"]})
    return f"{version.name}@{version.version}"
