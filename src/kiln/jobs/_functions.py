"""Functions (AWS Lambda's equivalent): Python handlers registered with their code, called
synchronously with a JSON event, or mapped over a dataset's rows as a job.

A function version records its code (an archive stored by sha256), its handler
(``module:function``), its time and memory limits and its environment; it never changes
what it runs: an update that changes any of those adds the next version, so calls in
flight keep the version they started on. Users' code never runs in this process: calls
go to warm workers (:mod:`kiln.jobs._function_pool`), maps to a job whose runner drives
a worker of its own (:func:`run_map`).
"""

from __future__ import annotations

import ast
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, Conflict, FunctionError, InvalidArgument, KilnError, NotFound, PayloadTooLarge
from kiln.core.names import check_name, parse_ref
from kiln.core.workspace import Workspace
from kiln.jobs import _tables as t
from kiln.jobs._code import code_key
from kiln.jobs._function_pool import TARGET, Spec, code_dir, pools_for
from kiln.jobs._models import Function, Job
from kiln.jobs._processing_service import check_environment
from kiln.jobs._runner import Outcome, RunningJob

__all__ = ["FunctionService", "check_handler", "run_map"]

_HANDLER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
MAX_TIMEOUT_S = 900.0  # Lambda's
MEMORY_MB = (128, 65_536)
MAX_DESCRIPTION = 4096
MAX_BATCH = 100_000


def check_handler(handler: str) -> tuple[str, str]:
    """``module.path:function`` as (module, function); nothing else is a handler."""
    if not isinstance(handler, str) or len(handler) > 200 or not _HANDLER.fullmatch(handler):
        shown = handler[:80] if isinstance(handler, str) else handler
        raise InvalidArgument(f"invalid handler {shown!r}: give MODULE:FUNCTION, a module of the code folder and a function in it (e.g. app:handler or pkg.mod:handler)")
    module, _, func = handler.partition(":")
    return module, func


def _find_handler(folder: Path, handler: str) -> None:
    """Refuse a handler whose module is not in the code, or that the module plainly does not
    define, read without running it (the code is parsed, never imported here)."""
    module, func = check_handler(handler)
    rel = module.replace(".", "/")
    candidates = [folder / f"{rel}.py", folder / rel / "__init__.py"]
    source = next((p for p in candidates if p.is_file()), None)
    if source is None:
        if any(folder.glob(f"{rel}.*.so")) or (folder / f"{rel}.so").is_file():
            return
        raise InvalidArgument(f"handler {handler}: module {module!r} is not in the code folder (looked for {rel}.py and {rel}/__init__.py)")
    try:
        tree = ast.parse(source.read_bytes(), filename=f"{rel}.py")
    except SyntaxError as exc:
        raise InvalidArgument(f"handler {handler}: {source.relative_to(folder)} does not compile: {exc.msg} (line {exc.lineno})") from None
    names = _top_level_names(tree.body)
    if func not in names and "*" not in names and "__getattr__" not in names:
        raise InvalidArgument(f"handler {handler}: {source.relative_to(folder)} defines no {func!r} at its top level")


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    """Names a module binds at import (descending into if/try/with, not into defs)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            for attr in ("body", "orelse", "finalbody"):
                children = getattr(node, attr, None)
                if isinstance(children, list):
                    names |= _top_level_names(children)
            for handler in getattr(node, "handlers", None) or []:
                names |= _top_level_names(handler.body)
    return names


def _function(row: Any, latest: int) -> Function:
    return Function(
        name=row.name, version=row.version, latest_version=latest, handler=row.handler, code_sha256=row.code_sha256,
        timeout_s=row.timeout_s, memory_mb=row.memory_mb, environment=orjson.loads(row.environment or "{}"),
        description=row.description or "", created_at=row.created_at, created_by=row.created_by,
        updated_at=row.updated_at, updated_by=row.updated_by,
    )


def spec_of(fn: Function) -> Spec:
    return Spec(name=fn.name, version=fn.version, handler=fn.handler, code_sha256=fn.code_sha256, timeout_s=fn.timeout_s,
                memory_mb=fn.memory_mb, environment=tuple(sorted(fn.environment.items())))


class FunctionService:
    """Functions: create, update (a new version), read, delete, invoke and map."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- checks -------------------------------------------------------------------------------

    def _checked(self, *, handler: str, code: str, timeout_s: float, memory_mb: int, environment: Mapping[str, Any] | None, description: str) -> dict[str, Any]:
        check_handler(handler)
        if not isinstance(code, str) or not self.ws.store.exists(code_key(code)):
            raise InvalidArgument(f"no code archive {str(code)[:12]}…; upload the code folder first (the SDK and CLI do)")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < float(timeout_s) <= MAX_TIMEOUT_S:
            raise InvalidArgument(f"timeout_s must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or not MEMORY_MB[0] <= memory_mb <= MEMORY_MB[1]:
            raise InvalidArgument(f"memory_mb must be a whole number of MB from {MEMORY_MB[0]} to {MEMORY_MB[1]}")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise InvalidArgument(f"description must be text of at most {MAX_DESCRIPTION} characters")
        env = check_environment(environment)
        # The code is unpacked where workers will import it, and the handler looked for there.
        _find_handler(code_dir(self.ws, code), handler)
        return {"handler": handler, "code_sha256": code, "timeout_s": float(timeout_s), "memory_mb": int(memory_mb),
                "environment": orjson.dumps(env, option=orjson.OPT_SORT_KEYS).decode(), "description": description}

    @contextmanager
    def _audited(self, action: str, name: str) -> Iterator[None]:
        """A refusal before the write's transaction (a bad handler, no role) is audited too."""
        try:
            yield
        except KilnError as exc:
            self.ws.audit_failure(self.ctx, action=action, resource=f"functions/{name}", error=exc)
            raise

    def _rows(self, conn: Any, name: str) -> list[Any]:
        return conn.execute(sa.select(t.functions).where(t.functions.c.name == name).order_by(t.functions.c.version)).all()

    # -- writes -------------------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        handler: str,
        code: str,
        timeout_s: float = 30.0,
        memory_mb: int = 1024,
        environment: Mapping[str, str] | None = None,
        description: str = "",
    ) -> Function:
        """Create a function: its handler (``module:function``) in uploaded ``code``, version 1.

        Args:
            name: the function's name.
            handler: ``module:function`` (``app:handler``, ``pkg.mod:handler``); the module
                must be in the code, and define the function.
            code: the sha256 of the uploaded code archive (the SDK and CLI pack and upload a folder).
            timeout_s: the time limit of one call (at most 900 s); a map gives each row this long.
            memory_mb: the worker's address-space limit (128 to 65536).
            environment: variables the handler's process sees (not ``KILN_*``).
            description: a line for people.

        Raises:
            InvalidArgument: a bad name, handler, limit or variable; code without the handler.
            AlreadyExists: a function of that name exists (update it instead).
        """
        check_name(name, kind="function")
        with self._audited("functions.create", name):
            self.ctx.require("editor")
            values = self._checked(handler=handler, code=code, timeout_s=timeout_s, memory_mb=memory_mb, environment=environment, description=description)
        now = time.time()
        with self.ws.mutation(self.ctx, action="functions.create", resource=f"functions/{name}", details={"handler": handler, "code": code[:12]}) as (conn, _):
            if self._rows(conn, name):
                raise AlreadyExists(f"function {name!r} exists; `kiln functions update {name}` makes a new version")
            try:
                conn.execute(t.functions.insert(), {"name": name, "version": 1, **values, "created_at": now, "created_by": self.ctx.actor, "updated_at": now, "updated_by": self.ctx.actor})
            except sa.exc.IntegrityError:
                raise AlreadyExists(f"function {name!r} exists; `kiln functions update {name}` makes a new version") from None
        return self.get(name=f"{name}@1")

    def update(
        self,
        *,
        name: str,
        handler: str | None = None,
        code: str | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        environment: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> Function:
        """Update a function: a change of code, handler, limits or environment makes a new
        version (calls in flight keep theirs); a new description alone is written in place.

        Raises:
            NotFound: no such function.
            InvalidArgument: nothing to update, or a bad value.
        """
        check_name(name, kind="function")
        with self._audited("functions.update", name):
            self.ctx.require("editor")
            if all(v is None for v in (handler, code, timeout_s, memory_mb, environment, description)):
                raise InvalidArgument("nothing to update: give the code, handler, timeout_s, memory_mb, environment or description")
            current = self.get(name=name)
            values = self._checked(
                handler=current.handler if handler is None else handler, code=current.code_sha256 if code is None else code,
                timeout_s=current.timeout_s if timeout_s is None else timeout_s, memory_mb=current.memory_mb if memory_mb is None else memory_mb,
                environment=current.environment if environment is None else environment,
                description=current.description if description is None else description,
            )
        behaviour = ("handler", "code_sha256", "timeout_s", "memory_mb", "environment")
        was = {"handler": current.handler, "code_sha256": current.code_sha256, "timeout_s": current.timeout_s, "memory_mb": current.memory_mb,
               "environment": orjson.dumps(current.environment, option=orjson.OPT_SORT_KEYS).decode()}
        changed = sorted(k for k in behaviour if values[k] != was[k])
        if not changed and values["description"] == current.description:
            return current  # the same function again: no new version
        now = time.time()
        with self.ws.mutation(self.ctx, action="functions.update", resource=f"functions/{name}", details={"changed": changed or ["description"]}) as (conn, details):
            latest = conn.execute(sa.select(sa.func.max(t.functions.c.version)).where(t.functions.c.name == name)).scalar()
            if latest != current.version:
                raise Conflict(f"function {name!r} changed while this update was checked (now at version {latest}); try again")
            if not changed:
                conn.execute(t.functions.update().where(t.functions.c.name == name, t.functions.c.version == latest),
                             {"description": values["description"], "updated_at": now, "updated_by": self.ctx.actor})
                version = latest
            else:
                version = latest + 1
                try:
                    conn.execute(t.functions.insert(), {"name": name, "version": version, **values, "created_at": now, "created_by": self.ctx.actor, "updated_at": now, "updated_by": self.ctx.actor})
                except sa.exc.IntegrityError:
                    raise Conflict(f"function {name!r} changed while this update was written; try again") from None
            details["version"] = version
        return self.get(name=f"{name}@{version}")

    def delete(self, *, name: str) -> list[int]:
        """Delete a function and all its versions; returns the version numbers deleted.

        Calls in flight end normally; a map job not yet started fails (its function is gone).

        Raises:
            NotFound: no such function.
        """
        self.ctx.require("editor")
        check_name(name, kind="function")
        with self.ws.mutation(self.ctx, action="functions.delete", resource=f"functions/{name}") as (conn, details):
            versions = [r.version for r in self._rows(conn, name)]
            if not versions:
                raise NotFound(f"function {name!r} does not exist; `kiln functions ls` lists functions")
            conn.execute(t.functions.delete().where(t.functions.c.name == name))
            details["versions"] = versions
        pools_for(self.ws).drop(name)
        return versions

    # -- reads --------------------------------------------------------------------------------

    def get(self, *, name: str) -> Function:
        """A function: its latest version (``name``) or one version (``name@3``).

        Raises:
            NotFound: no such function or version.
        """
        self.ctx.require("viewer")
        ref = parse_ref(name, kind="function")
        if ref.alias is not None:
            raise InvalidArgument(f"functions have no aliases; use {ref.name} or {ref.name}@VERSION")
        fns = t.functions
        latest_q = sa.select(sa.func.max(fns.c.version)).where(fns.c.name == ref.name).scalar_subquery()
        with self.ws.db.read() as conn:
            row = conn.execute(
                sa.select(fns, latest_q.label("latest")).where(fns.c.name == ref.name, fns.c.version == (latest_q if ref.version is None else ref.version))
            ).first()
            if row is None:
                latest = conn.execute(sa.select(latest_q)).scalar()
        if row is None:
            if latest is None:
                raise NotFound(f"function {ref.name!r} does not exist; `kiln functions ls` lists functions")
            raise NotFound(f"function {ref.name!r} has no version {ref.version} (latest is {latest})")
        return _function(row, row.latest)

    def list(self) -> list[Function]:
        """Every function, at its latest version, by name."""
        self.ctx.require("viewer")
        latest = sa.select(t.functions.c.name, sa.func.max(t.functions.c.version).label("v")).group_by(t.functions.c.name).subquery()
        q = sa.select(t.functions).join(latest, sa.and_(t.functions.c.name == latest.c.name, t.functions.c.version == latest.c.v)).order_by(t.functions.c.name)
        with self.ws.db.read() as conn:
            return [_function(r, r.version) for r in conn.execute(q)]

    # -- calls --------------------------------------------------------------------------------

    def invoke(self, *, name: str, payload: Any = None) -> Any:
        """Call a function with a JSON event; returns its JSON result (``name`` or ``name@3``).

        The handler runs in a warm worker process (``handler(event, context)``, or
        ``handler(event)``); at most ``KILN_FUNCTIONS_CONCURRENCY`` calls of a function run
        at once, others wait for one.

        Raises:
            FunctionError: the handler raised (its type, message and traceback), crashed, ran
                past the function's time limit, or returned what JSON cannot hold.
            PayloadTooLarge: the event is larger than ``KILN_MAX_REQUEST_MB``.
            ResourceExhausted: the function's calls stayed busy for ``KILN_FUNCTIONS_QUEUE_S``.
            NotFound: no such function.
        """
        self.ctx.require("editor")
        from kiln.jobs._service import require_user_code

        require_user_code(self.ws)
        fn = self.get(name=name)
        try:
            event = orjson.dumps(payload, option=_JSON)
        except TypeError as exc:
            raise InvalidArgument(f"the payload is not JSON: {exc}") from None
        limit = int(self.ws.settings.max_request_mb * (1 << 20))
        if len(event) > limit:
            raise PayloadTooLarge(f"the payload is {len(event) / (1 << 20):.1f} MB, more than the {limit / (1 << 20):g} MB a call takes (KILN_MAX_REQUEST_MB)")
        result = pools_for(self.ws).invoke(spec_of(fn), event)
        if len(result) > limit:
            raise FunctionError(f"function {fn.ref} returned {len(result) / (1 << 20):.1f} MB, more than the {limit / (1 << 20):g} MB a result may hold (KILN_MAX_REQUEST_MB)")
        return orjson.loads(result)

    def map(
        self,
        *,
        name: str,
        dataset: str,
        output_dataset: str,
        batch_size: int = 1000,
        job_name: str | None = None,
        max_run_s: float | None = None,
    ) -> Job:
        """Map a function over a dataset's rows into a new dataset version, as a job.

        Each row (a JSON object) is one event; the handler returns a dict (a row), a list of
        dicts (several rows) or None (the row is dropped). Rows travel to the worker
        ``batch_size`` at a time. The new version's lineage names the dataset version, the
        job and the function version.

        Raises:
            NotFound: no such function or dataset version.
            InvalidArgument: a bad dataset name, batch size or job name.
        """
        self.ctx.require("editor")
        from kiln.jobs._service import JobService
        from kiln.lake.datasets import DatasetService

        fn = self.get(name=name)
        source = DatasetService(self.ws, self.ctx).get(dataset)
        check_name(output_dataset, kind="dataset")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
            raise InvalidArgument(f"batch_size must be a whole number of rows from 1 to {MAX_BATCH}")
        spec = {"function": fn.name, "version": fn.version, "dataset": source.ref, "output": output_dataset, "batch_size": batch_size}
        return JobService(self.ws, self.ctx).submit(
            kind="function-map", spec=spec, name=job_name, base_name=f"{fn.name}-map", time_limit_s=max_run_s,
        )


# -- the map job's program (in the job's runner process) ----------------------------------------


def run_map(job: RunningJob) -> Outcome:
    """Map the function over the dataset, batch by batch, in a worker of the runner's own."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kiln.lake.datasets import DatasetService

    spec = job.spec
    try:
        fn = FunctionService(job.ws, job.ctx).get(name=f"{spec['function']}@{spec['version']}")
    except NotFound as exc:
        return Outcome(failure=f"{exc.message}: it was deleted after the job was submitted")
    datasets = DatasetService(job.ws, job.ctx)
    try:
        source = datasets.get(spec["dataset"])
    except NotFound as exc:
        return Outcome(failure=exc.message)
    total = source.row_count
    out_dir = job.folder / "output"
    out_dir.mkdir(parents=True, exist_ok=True)
    job.log(f"mapping function {fn.ref} ({fn.handler}) over {source.ref}: {total:,} rows, {spec['batch_size']:,} a batch")
    worker = spec_of(fn).worker(job.ws, code_dir(job.ws, fn.code_sha256))
    args = spec_of(fn).args(code_dir(job.ws, fn.code_sha256))
    watcher = _StopWatcher(job, worker)
    done = produced = parts = 0
    rows: list[dict[str, Any]] = []
    last_log = time.monotonic()
    try:
        worker.call(f"{TARGET}:load", args, timeout_s=max(10.0, fn.timeout_s))
        with job.ws.db.write() as conn:  # whoever finds the runner dead ends its worker too
            conn.execute(t.jobs.update().where(t.jobs.c.name == job.name), {"pgid": worker.pid})
        for batch in datasets.iter_batches(source.ref, batch_size=int(spec["batch_size"])):
            if job.stop_requested:
                return Outcome(stopped=True)
            rows = batch.to_pylist()
            limit = fn.timeout_s * max(len(rows), 1)
            remaining = job.remaining_s()
            if remaining is not None:
                limit = max(0.001, min(limit, remaining))
            blob = orjson.dumps(rows, option=_JSON, default=str)
            result, blobs = worker.call(f"{TARGET}:map_rows", {**args, "first_row": done, "request_id": job.name}, [blob], timeout_s=limit)
            out = orjson.loads(blobs[0])
            if out:
                try:
                    table = pa.Table.from_pylist(out)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    return Outcome(failure=f"rows {done}-{done + len(rows) - 1}: the function's results do not form a table: {exc}")
                pq.write_table(table, out_dir / f"part-{parts:05d}.parquet")
                parts += 1
            done += len(rows)
            produced += len(out)
            if time.monotonic() - last_log >= 1.0 or done >= total:
                last_log = time.monotonic()
                job.log(f"{done:,}/{total:,} rows ({100 * done / max(total, 1):.0f}%), {produced:,} out")
    except FunctionError as exc:
        if job.stop_requested:
            return Outcome(stopped=True)
        trace = str(exc.details.get("traceback") or "").rstrip()
        if trace:
            job.log(trace)
        where = "" if "row" in exc.details or not rows else f" (rows {done}-{done + len(rows) - 1})"
        return Outcome(failure=f"function {fn.ref} failed{where}: {exc.message}" + (f"\n{trace}" if trace else ""))
    finally:
        watcher.done.set()
        worker.close()
    if not parts:
        return Outcome(failure=f"function {fn.ref} dropped every one of the {done:,} rows: there is nothing to register")
    lineage = {"parents": [source.ref], "job": job.name, "function": fn.ref}
    try:
        version = datasets.ingest(spec["output"], str(out_dir), lineage=lineage)
    except KilnError as exc:
        return Outcome(failure=f"the results could not be registered as dataset {spec['output']!r}: {exc.message}")
    job.log(f"registered {produced:,} rows as dataset {version.name}@{version.version}")
    return Outcome(outputs={"datasets": {"output": f"{version.name}@{version.version}"}}, metrics={"rows_in": float(done), "rows_out": float(produced)})


class _StopWatcher(threading.Thread):
    """Stops the map's worker as soon as the job is asked to stop, mid-batch."""

    def __init__(self, job: RunningJob, worker: Any) -> None:
        super().__init__(name="kiln-map-stop", daemon=True)
        self.job, self.worker = job, worker
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.2):
            if self.job.stop_requested:
                self.worker.close()
                return
