"""Real-time endpoints as a managed resource (SageMaker Endpoints): create, update,
describe, list, delete, invoke, and the reconcile that keeps them running.

The service never loads a model. It resolves each variant's reference, decides from the
server's settings and the version's recorded trust whether the package's code may run,
fetches the verified package into this machine's cache (a package failing its hashes is
refused here), writes an :class:`~kiln.serving._spec.EndpointSpec` per generation into
the endpoint's run folder and starts a supervisor (``python -m kiln.serving._supervisor
--run-dir DIR``) detached in a session of its own, as job runners are. The supervisor binds
the port, starts the workers (where model code runs) and writes ``state.json``;
:meth:`EndpointService.reconcile` (run by every read and by the server's watcher) turns
that into the endpoint's state: Creating → InService, or Failed with the last lines of
``supervisor.log`` when it is not ready in time; an update (a new generation, SIGHUP) is
InService again once the new workers are ready, or rolls back to the old generation,
which kept serving all along. A supervisor found dead is restarted: endpoints come back
after a crash or a server restart. Invocations are proxied over HTTP to the endpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from kiln.core.context import Context
from kiln.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    KilnError,
    ModelError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    UnsupportedMediaType,
    invalid_input,
)
from kiln.core.names import check_name, parse_ref
from kiln.core.workspace import Workspace
from kiln.jobs._local import _start_ticks, process_alive, this_host
from kiln.serving import _tables as t
from kiln.serving._models import (
    ENDPOINT_STATES,
    BatchingRequest,
    Endpoint,
    EndpointMetric,
    EndpointVariant,
    Invocation,
    MultiModelRequest,
    ServerlessRequest,
    VariantRequest,
)
from kiln.serving._spec import MB, BatchingSpec, CaptureSpec, EndpointSpec, MultiModelSpec, ServerlessSpec, VariantSpec

__all__ = ["EndpointService", "endpoint_dir"]

# How long a new endpoint (or a new generation, or a restarted supervisor) may take to be
# ready before it is Failed (rolled back, for an update) with the reason from its log.
START_LIMIT_S = 180.0
# How long a stopped supervisor may drain its workers before it is killed.
DRAIN_S = 35.0
LOG_TAIL_LINES = 20
SUPERVISOR = [sys.executable, "-m", "kiln.serving._supervisor"]
# A start claimed but not yet recorded (the process is being spawned) counts as alive this long.
_STARTING = "starting:"
_STARTING_S = 30.0
# SageMaker's variant names: they become folder names of the capture files, so no '/' or '.'.
_VARIANT_RE = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9]){0,62}")
_SETTINGS_ENV = ("home", "database_url", "storage_url", "s3_endpoint_url", "audit_key", "model_code", "worker_timeout_s")
_RUNNING = ("Creating", "InService", "Updating")
_variants_adapter: TypeAdapter[list[VariantRequest]] = TypeAdapter(list[VariantRequest])
_SYSTEM = Context(actor="system:endpoints", role="admin", source="server", request_id="endpoints-watcher")


def endpoint_dir(home: Path, name: str) -> Path:
    """The run folder of endpoint ``name``: specs, state, log, metrics, capture spool."""
    return Path(home) / "endpoints" / check_name(name, kind="endpoint")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _spec(row: Any) -> EndpointSpec:
    return EndpointSpec.model_validate_json(row.spec)


def _variant(v: VariantSpec, *, shadow: bool = False) -> EndpointVariant:
    return EndpointVariant(name=v.name, model=v.model_ref, weight=v.weight, trusted=v.trusted, shadow=shadow)


def _endpoint(row: Any) -> Endpoint:
    spec = _spec(row)
    return Endpoint(
        name=row.name, state=row.state, failure_reason=row.failure_reason, generation=row.generation, url=row.url,
        host=row.host, port=row.port, variants=[_variant(v) for v in spec.variants],
        shadow=_variant(spec.shadow, shadow=True) if spec.shadow else None, workers=spec.workers, timeout_s=spec.timeout_s,
        max_payload_mb=spec.max_payload_bytes / MB,
        capture={"enabled": spec.capture.enabled, "percent": spec.capture.percent, "modes": list(spec.capture.modes), "prefix": spec.capture.prefix},
        serverless=({"memory_mb": spec.serverless.memory_mb, "max_concurrency": spec.serverless.max_concurrency, "idle_timeout_s": spec.serverless.idle_s} if spec.serverless else None),
        batching=spec.batching.model_dump() if spec.batching else None,
        multi_model=({"memory_mb": spec.multi_model.memory_mb, "allow": list(spec.multi_model.allow)} if spec.multi_model else None),
        restarts=row.restarts, created_at=row.created_at, created_by=row.created_by, updated_at=row.updated_at, updated_by=row.updated_by,
    )


class EndpointService:
    """Real-time endpoints: each one a supervisor process serving a spec's variants."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    # -- create ---------------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        model: str | None = None,
        variants: list[VariantRequest] | None = None,
        shadow: VariantRequest | None = None,
        workers: int = 1,
        port: int = 0,
        capture_percent: float = 0.0,
        capture_modes: list[str] | None = None,
        timeout_s: float = 60.0,
        max_payload_mb: float = 6.0,
        serverless: ServerlessRequest | None = None,
        batching: BatchingRequest | None = None,
        multi_model: MultiModelRequest | None = None,
    ) -> Endpoint:
        """Create an endpoint serving ``model`` (or weighted ``variants``) and start its processes.

        The endpoint is Creating until its workers are ready, then InService; one that is
        not ready within the start limit is Failed with the reason from its log. It binds
        127.0.0.1 (``port`` 0: a free port, kept across restarts).

        Args:
            name: the endpoint's name.
            model: a model reference (``name``, ``name@3``, ``name@alias``): one variant, AllTraffic.
            variants: production variants ``{"name", "model", "weight"}``, instead of ``model``.
            shadow: a variant that gets a copy of the traffic; its answers are recorded, never returned.
            workers: worker processes (each loads every variant).
            port: the port to bind (0: any free one).
            capture_percent: the share of requests whose input and output are captured (0: off).
            capture_modes: what is captured: Input, Output or both.
            timeout_s: the time limit of one request.
            max_payload_mb: the largest request body (413 beyond).
            serverless: scale to zero: no worker holds the model after ``idle_timeout_s``
                without a request; the next one starts it (a cold start); requests beyond
                ``max_concurrency`` get 429; ``memory_mb`` caps the worker's memory.
            batching: micro-batching: concurrent requests share one predict.
            multi_model: serve registered models chosen per request (``X-Amzn-SageMaker-Target-Model``)
                instead of ``model``/``variants``.

        Raises:
            InvalidArgument: a bad name, reference, variant, port or limit.
            AlreadyExists: an endpoint of that name exists.
            NotFound: a model, version or alias does not exist.
            PermissionDenied: the caller is not an editor, or a package runs code no admin trusted.
            Conflict: a version was rejected, or another endpoint has the port.
        """
        check_name(name, kind="endpoint")
        self.ctx.require("editor")  # before any package is fetched
        if not (port == 0 or 1024 <= port <= 65535):
            raise InvalidArgument(f"port {port} is not one an endpoint may bind: use 0 (any free port) or 1024-65535")
        with self.ws.db.read() as conn:
            if conn.execute(sa.select(t.endpoints.c.name).where(t.endpoints.c.name == name)).first() is not None:
                raise AlreadyExists(f"endpoint {name!r} exists; `kiln endpoints update {name}` changes what it serves")
            self._check_port(conn, port, name)
        extras = _extras(serverless=serverless, batching=batching, multi_model=multi_model, workers=workers)
        asked = [] if extras.get("multi_model") is not None and model is None and not variants else self._variant_requests(model, variants)
        if extras.get("multi_model") is not None and (asked or shadow is not None):
            raise InvalidArgument("a multi-model endpoint picks its models per request: give no model, variants or shadow")
        spec = self._build_spec(
            name=name, generation=1, variants=asked, shadow=self._shadow_request(shadow), workers=workers, port=port,
            capture_percent=capture_percent, capture_modes=capture_modes, timeout_s=timeout_s, max_payload_mb=max_payload_mb, **extras,
        )
        run_dir = endpoint_dir(self.ws.settings.home, name)
        now = time.time()
        details = {"variants": {v.name: v.model_ref for v in spec.variants}, "workers": spec.workers, "port": port}
        with self.ws.mutation(self.ctx, action="endpoints.create", resource=f"endpoints/{name}", details=details) as (conn, _):
            if conn.execute(sa.select(t.endpoints.c.name).where(t.endpoints.c.name == name)).first() is not None:
                raise AlreadyExists(f"endpoint {name!r} exists; `kiln endpoints update {name}` changes what it serves")
            self._check_port(conn, port, name)
            # Files first (a run folder left by a deleted endpoint of that name goes), then the row.
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            _write_atomic(run_dir / "gen-1.json", spec.model_dump_json(indent=2).encode())
            conn.execute(t.endpoints.insert(), {
                "name": name, "spec": spec.model_dump_json(), "generation": 1, "previous_spec": None, "state": "Creating",
                "failure_reason": None, "deadline_at": now + START_LIMIT_S, "host": spec.host, "port": port or None, "url": None,
                "restarts": 0, "created_at": now, "created_by": self.ctx.actor, "updated_at": now, "updated_by": self.ctx.actor,
            })
            self._claim(conn, name)
        self._start(name)
        return self._get(name)

    def _check_port(self, conn: Any, port: int, name: str) -> None:
        if not port:
            return
        other = conn.execute(sa.select(t.endpoints.c.name).where(t.endpoints.c.port == port, t.endpoints.c.name != name)).first()
        if other is not None:
            raise Conflict(f"endpoint {other.name!r} already serves on port {port}; pick another port or 0 for any free one")

    def _variant_requests(self, model: str | None, variants: Sequence[Any] | None) -> list[VariantRequest]:
        if (model is None) == (not variants):
            raise InvalidArgument("give exactly one of model (one variant, AllTraffic) or variants (NAME=MODEL:WEIGHT ...)")
        if model is not None:
            return [VariantRequest(name="AllTraffic", model=model, weight=1.0)]
        try:
            asked = _variants_adapter.validate_python([v.model_dump() if isinstance(v, VariantRequest) else v for v in variants or []])
        except ValidationError as exc:
            raise invalid_input("invalid variants", exc) from None
        if len(asked) > 10:
            raise InvalidArgument(f"an endpoint takes at most 10 production variants, not {len(asked)}")
        return asked

    def _shadow_request(self, shadow: Any) -> VariantRequest | None:
        if shadow is None:
            return None
        try:
            return VariantRequest.model_validate(shadow.model_dump() if isinstance(shadow, VariantRequest) else shadow)
        except ValidationError as exc:
            raise invalid_input("invalid shadow variant", exc) from None

    def _build_spec(
        self, *, name: str, generation: int, variants: list[VariantRequest], shadow: VariantRequest | None, workers: int, port: int,
        capture_percent: float, capture_modes: Sequence[str] | None, timeout_s: float, max_payload_mb: float,
        serverless: ServerlessSpec | None = None, batching: BatchingSpec | None = None, multi_model: MultiModelSpec | None = None,
    ) -> EndpointSpec:
        if not 1 <= int(workers) <= 64:
            raise InvalidArgument(f"workers must be between 1 and 64, not {workers}")
        if not 0 < float(timeout_s) <= 3600:
            raise InvalidArgument(f"timeout_s must be more than 0 and at most 3600 seconds, not {timeout_s}")
        if not 0 < float(max_payload_mb) <= 100:
            raise InvalidArgument(f"max_payload_mb must be more than 0 and at most 100 (SageMaker's limit), not {max_payload_mb}")
        if not 0 <= float(capture_percent) <= 100:
            raise InvalidArgument(f"capture_percent must be between 0 and 100, not {capture_percent}")
        modes = tuple(capture_modes or ("Input", "Output"))
        for mode in modes:
            if mode not in ("Input", "Output"):
                raise InvalidArgument(f"capture mode {mode!r} is not one of Input, Output")
        for v in [*variants, *([shadow] if shadow else [])]:
            if not _VARIANT_RE.fullmatch(v.name):
                raise InvalidArgument(f"invalid variant name {v.name[:80]!r}: use 1-63 letters, digits and single '-' between them")
            parse_ref(v.model, kind="model")
        served = [self._serve(v) for v in variants]
        capture = CaptureSpec(enabled=capture_percent > 0, percent=float(capture_percent) if capture_percent > 0 else 100.0, modes=modes, prefix=f"capture/{name}")  # type: ignore[arg-type]
        try:
            return EndpointSpec(
                name=name, generation=generation, variants=tuple(served), shadow=self._serve(shadow) if shadow else None,
                workers=int(workers), host="127.0.0.1", port=int(port), max_payload_bytes=int(float(max_payload_mb) * MB),
                timeout_s=float(timeout_s), capture=capture, run_dir=str(endpoint_dir(self.ws.settings.home, name)),
                serverless=serverless, batching=batching, multi_model=multi_model,
            )
        except ValidationError as exc:
            raise invalid_input(f"invalid endpoint {name!r}", exc) from None

    def _serve(self, asked: VariantRequest) -> VariantSpec:
        """A variant's spec: its version resolved, its trust decided, its package verified in the cache."""
        from kiln.registry._service import ModelService

        models = ModelService(self.ws, self.ctx)
        row, manifest = models._located(asked.model)
        if row.status == "Rejected":
            raise Conflict(f"model {row.name}@{row.version} was rejected; an endpoint serves only versions that are not rejected")
        # ModelService.start_worker's rules: the server's setting and the version's recorded trust decide, never the request.
        trusted = models.code_may_run(row, manifest)
        folder = models._fetch(row, manifest)  # downloads and checks every file's sha256
        return VariantSpec(name=asked.name, model_ref=f"{row.name}@{row.version}", folder=str(folder), trusted=trusted, weight=asked.weight)

    # -- update ---------------------------------------------------------------------------

    def update(
        self,
        *,
        name: str,
        model: str | None = None,
        variants: list[VariantRequest] | None = None,
        shadow: VariantRequest | None = None,
        remove_shadow: bool = False,
        workers: int | None = None,
        capture_percent: float | None = None,
        capture_modes: list[str] | None = None,
        timeout_s: float | None = None,
        max_payload_mb: float | None = None,
        batching: BatchingRequest | None = None,
        remove_batching: bool = False,
    ) -> Endpoint:
        """Serve new models, variants or settings, blue/green: the old generation keeps
        answering until the new one is ready, and stays if the new one fails.

        What is left out stays as it is (references resolve again only when given).

        Raises:
            NotFound: no such endpoint.
            Conflict: the endpoint is being created, updated or deleted.
        """
        check_name(name, kind="endpoint")
        self.ctx.require("editor")
        if model is not None and variants:
            raise InvalidArgument("give model or variants, not both")
        row = self._row(name)
        if row.state in ("Creating", "Updating", "Deleting"):
            raise Conflict(f"endpoint {name!r} is {row.state}; wait until it is InService (or Failed) to update it")
        if row.state == "InService" and row.deadline_at is not None:
            # Its supervisor was restarted and is not ready yet (a signal now could end it).
            raise Conflict(f"endpoint {name!r} is restarting; update it once it answers again (`kiln endpoints describe {name}`)")
        old = _spec(row)
        if old.multi_model is not None and (model is not None or variants or shadow is not None):
            raise InvalidArgument("a multi-model endpoint picks its models per request: it takes no model, variants or shadow")
        if model is not None or variants:
            asked = self._variant_requests(model, variants)
        else:
            asked = [VariantRequest(name=v.name, model=v.model_ref, weight=v.weight) for v in old.variants]
        shadow_req = self._shadow_request(shadow)
        if shadow_req is None and old.shadow is not None and not remove_shadow:
            shadow_req = VariantRequest(name=old.shadow.name, model=old.shadow.model_ref, weight=old.shadow.weight)
        generation = row.generation + 1
        spec = self._build_spec(
            name=name, generation=generation, variants=asked, shadow=shadow_req, workers=workers if workers is not None else old.workers,
            port=old.port, capture_percent=capture_percent if capture_percent is not None else (old.capture.percent if old.capture.enabled else 0.0),
            capture_modes=capture_modes if capture_modes is not None else list(old.capture.modes),
            timeout_s=timeout_s if timeout_s is not None else old.timeout_s,
            max_payload_mb=max_payload_mb if max_payload_mb is not None else old.max_payload_bytes / MB,
            serverless=old.serverless, multi_model=old.multi_model,
            batching=None if remove_batching else (_extras(batching=batching).get("batching") if batching is not None else old.batching),
        )
        run_dir = endpoint_dir(self.ws.settings.home, name)
        details = {"generation": generation, "variants": {v.name: v.model_ref for v in spec.variants}}
        with self.ws.mutation(self.ctx, action="endpoints.update", resource=f"endpoints/{name}", details=details) as (conn, _):
            cur = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()
            if cur is None or cur.generation != row.generation or cur.state != row.state:
                raise Conflict(f"endpoint {name!r} changed while this update was prepared; try again")
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(run_dir / f"gen-{generation}.json", spec.model_dump_json(indent=2).encode())
            alive = self._alive(cur)
            conn.execute(t.endpoints.update().where(t.endpoints.c.name == name), {
                "spec": spec.model_dump_json(), "generation": generation, "previous_spec": cur.spec if alive else None,
                "state": "Updating" if alive else "Creating", "failure_reason": None, "deadline_at": time.time() + START_LIMIT_S,
                "updated_at": time.time(), "updated_by": self.ctx.actor,
            })
            if not alive:
                self._claim(conn, name)
        if alive:
            self._signal(row, signal.SIGHUP)
        else:
            self._start(name)
        return self._get(name)

    # -- reads ----------------------------------------------------------------------------

    def get(self, *, name: str) -> Endpoint:
        """One endpoint: its state, URL, variants and settings.

        Raises:
            NotFound: no endpoint has that name.
        """
        check_name(name, kind="endpoint")
        self.ctx.require("viewer")
        self.reconcile(names=[name])
        return self._get(name)

    def list(self, *, state: str | None = None) -> list[Endpoint]:
        """Every endpoint, by name, optionally only those in one state."""
        self.ctx.require("viewer")
        if state is not None and state not in ENDPOINT_STATES:
            raise InvalidArgument(f"unknown endpoint state {state!r}; one of {', '.join(ENDPOINT_STATES)}")
        self.reconcile()
        q = sa.select(t.endpoints).order_by(t.endpoints.c.name)
        if state is not None:
            q = q.where(t.endpoints.c.state == state)
        with self.ws.db.read() as conn:
            return [_endpoint(r) for r in conn.execute(q)]

    def metrics(self, *, name: str, since: float | None = None, limit: int = 1000) -> list[EndpointMetric]:
        """The endpoint's persisted metric datapoints per variant, oldest first (the server
        keeps one every ~10 s from the workers' counters).

        Raises:
            NotFound: no such endpoint.
        """
        check_name(name, kind="endpoint")
        self.ctx.require("viewer")
        if not 1 <= limit <= 100_000:
            raise InvalidArgument("limit must be between 1 and 100000")
        self._row(name)
        m = t.endpoint_metrics
        q = sa.select(m).where(m.c.endpoint == name).order_by(m.c.at.desc(), m.c.variant.desc()).limit(limit)
        if since is not None:
            q = q.where(m.c.at >= since)
        with self.ws.db.read() as conn:
            rows = conn.execute(q).all()
        return [EndpointMetric(endpoint=r.endpoint, variant=r.variant, at=r.at, values=orjson.loads(r.values)) for r in reversed(rows)]

    def _row(self, name: str) -> Any:
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()
        if row is None:
            raise NotFound(f"endpoint {name!r} does not exist; `kiln endpoints ls` lists endpoints")
        return row

    def _get(self, name: str) -> Endpoint:
        return _endpoint(self._row(name))

    # -- delete ---------------------------------------------------------------------------

    def delete(self, *, name: str) -> Endpoint:
        """Delete an endpoint: its workers drain and stop, its supervisor ends, its row and run folder go.

        Returns the endpoint as it was, in state Deleting.

        Raises:
            NotFound: no such endpoint.
        """
        check_name(name, kind="endpoint")
        with self.ws.mutation(self.ctx, action="endpoints.delete", resource=f"endpoints/{name}") as (conn, details):
            row = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()
            if row is None:
                raise NotFound(f"endpoint {name!r} does not exist; `kiln endpoints ls` lists endpoints")
            details["state"] = row.state
            conn.execute(t.endpoints.update().where(t.endpoints.c.name == name), {"state": "Deleting", "updated_at": time.time(), "updated_by": self.ctx.actor})
        gone = self._get(name)
        self._teardown(name)
        return gone

    def _teardown(self, name: str) -> None:
        """Stop what the endpoint runs, then remove its run folder, metrics and row."""
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()
        if row is None:
            return
        self._stop(row)
        shutil.rmtree(endpoint_dir(self.ws.settings.home, name), ignore_errors=True)
        with self.ws.db.write() as conn:
            conn.execute(t.endpoint_metrics.delete().where(t.endpoint_metrics.c.endpoint == name))
            conn.execute(t.endpoints.delete().where(t.endpoints.c.name == name, t.endpoints.c.state == "Deleting"))

    # -- invoke ---------------------------------------------------------------------------

    def max_payload_bytes(self, *, name: str) -> int:
        """The largest body endpoint ``name`` takes (the REST route enforces it while reading)."""
        check_name(name, kind="endpoint")
        self.ctx.require("viewer")
        return _spec(self._row(name)).max_payload_bytes

    def invoke(
        self,
        *,
        name: str,
        body: bytes,
        content_type: str | None = None,
        accept: str | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
        request_id: str | None = None,
    ) -> Invocation:
        """Send one request to the endpoint's ``/invocations`` and return its answer.

        Raises:
            NotFound: no such endpoint.
            Unavailable: the endpoint is not InService, or does not answer.
            PayloadTooLarge: the body is over the endpoint's limit.
            InvalidArgument, UnsupportedMediaType, NotAcceptable, ModelError: as the endpoint answered.
        """
        check_name(name, kind="endpoint")
        self.ctx.require("viewer")
        row = self._row(name)
        spec = _spec(row)
        if row.state not in ("InService", "Updating") or not row.url:
            if row.state in ("Creating", "InService"):
                self.reconcile(names=[name])
                row = self._row(name)
            if row.state not in ("InService", "Updating") or not row.url:
                why = f": {row.failure_reason}" if row.state == "Failed" and row.failure_reason else ""
                raise Unavailable(f"endpoint {name!r} is {row.state}{why}; it answers once it is InService (`kiln endpoints describe {name}`)")
        if len(body) > spec.max_payload_bytes:
            raise PayloadTooLarge(f"the request body is {len(body):,} bytes; endpoint {name!r} takes at most {spec.max_payload_bytes / MB:g} MB")
        if custom_attributes is not None and len(custom_attributes) > 1024:
            raise InvalidArgument("custom attributes are at most 1024 characters")
        headers = {"content-type": content_type or "application/json", "accept": accept or "*/*"}
        for header, value in (
            ("x-amzn-sagemaker-target-model", target_model), ("x-amzn-sagemaker-target-variant", target_variant),
            ("x-amzn-sagemaker-inference-id", inference_id), ("x-amzn-sagemaker-custom-attributes", custom_attributes),
            ("x-request-id", request_id),
        ):
            if value is not None:
                if any(c in value for c in "\r\n\0"):
                    raise InvalidArgument(f"{header} cannot hold line breaks")
                headers[header] = value
        try:
            resp = _http(row.url, row.generation).post(f"{row.url.rstrip('/')}/invocations", content=body, headers=headers, timeout=spec.timeout_s + 5.0)
        except httpx.TimeoutException:
            raise ModelError(f"endpoint {name!r} did not answer within {spec.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise Unavailable(f"endpoint {name!r} does not answer ({type(exc).__name__}); `kiln endpoints describe {name}` shows its state") from None
        if resp.status_code >= 400:
            raise _endpoint_error(name, resp)
        return Invocation(
            body=resp.content, content_type=resp.headers.get("content-type", "application/octet-stream"),
            invoked_variant=resp.headers.get("x-amzn-invoked-production-variant"),
            custom_attributes=resp.headers.get("x-amzn-sagemaker-custom-attributes"), request_id=resp.headers.get("x-request-id"),
        )

    # -- processes --------------------------------------------------------------------------

    def _supervisor_env(self) -> dict[str, str]:
        """The supervisor is Kiln's own code with the workspace (it hands workers a clean env)."""
        s = self.ws.settings
        env = dict(os.environ)
        env.update({f"KILN_{k.upper()}": str(getattr(s, k)) for k in _SETTINGS_ENV if getattr(s, k, None) not in ("", None)})
        return env

    def _claim(self, conn: Any, name: str, *, expect: Any = None) -> bool:
        """Mark the endpoint as having a supervisor on its way (one starter wins: the watcher
        and a reader reconciling at once never start two). ``expect``: the row as read."""
        cond = [t.endpoints.c.name == name]
        if expect is not None:
            ticks = t.endpoints.c.supervisor_ticks
            cond.append(ticks.is_(None) if expect.supervisor_ticks is None else ticks == expect.supervisor_ticks)
        values = {"supervisor_pid": None, "supervisor_ticks": f"{_STARTING}{time.time()}", "supervisor_host": this_host()}
        return bool(conn.execute(t.endpoints.update().where(*cond).values(**values)).rowcount)

    def _start(self, name: str, *, restart: bool = False, expect: Any = None) -> None:
        """Start the endpoint's supervisor, detached in a session of its own; record it.

        The caller has claimed the start in its own transaction, or passes the row it read
        as ``expect`` so this claims it (and does nothing when another process did first)."""
        if expect is not None:
            with self.ws.db.write() as conn:
                if not self._claim(conn, name, expect=expect):
                    return
        run_dir = endpoint_dir(self.ws.settings.home, name)
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            (run_dir / "state.json").unlink()
        except FileNotFoundError:
            pass
        try:
            with open(run_dir / "supervisor.log", "ab") as log:
                log.write(f"--- kiln: supervisor {'restarted' if restart else 'started'} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
                log.flush()
                proc = subprocess.Popen(
                    [*SUPERVISOR, "--run-dir", str(run_dir)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=self._supervisor_env(), start_new_session=True, close_fds=True, cwd=str(run_dir),
                )
        except OSError as exc:
            self._fail(name, f"the endpoint's supervisor could not start: {exc.strerror or exc}")
            return
        _reap_later(proc)
        values: dict[str, Any] = {"supervisor_pid": proc.pid, "supervisor_ticks": _start_ticks(proc.pid), "supervisor_host": this_host()}
        if not restart:
            with self.ws.db.write() as conn:
                conn.execute(t.endpoints.update().where(t.endpoints.c.name == name).values(**values))
            return
        values.update(restarts=t.endpoints.c.restarts + 1, deadline_at=time.time() + START_LIMIT_S)
        with self.ws.mutation(_SYSTEM, action="endpoints.restarted", resource=f"endpoints/{name}", role="admin", details={"pid": proc.pid}) as (conn, _):
            conn.execute(t.endpoints.update().where(t.endpoints.c.name == name).values(**values))

    def _alive(self, row: Any) -> bool:
        """Whether the endpoint's supervisor runs (or is being started, for a moment)."""
        ticks = row.supervisor_ticks or ""
        if row.supervisor_host != this_host():
            return False
        if ticks.startswith(_STARTING):
            try:
                return time.time() - float(ticks[len(_STARTING):]) < _STARTING_S
            except ValueError:
                return False
        if not row.supervisor_pid:
            return False
        return process_alive(int(row.supervisor_pid), ticks)

    def _signal(self, row: Any, sig: int) -> None:
        if row.supervisor_pid and self._alive(row):
            try:
                os.kill(int(row.supervisor_pid), sig)
            except ProcessLookupError:
                pass

    def _stop(self, row: Any) -> None:
        """SIGTERM the supervisor (it drains its workers), SIGKILL its group after DRAIN_S.
        Workers die with it (PR_SET_PDEATHSIG) if it is killed."""
        if not row.supervisor_pid or not self._alive(row):
            return
        pid = int(row.supervisor_pid)
        self._signal(row, signal.SIGTERM)
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and process_alive(pid, row.supervisor_ticks or ""):
            _reap()
            time.sleep(0.05)
        if process_alive(pid, row.supervisor_ticks or ""):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap()

    def _state(self, name: str) -> dict[str, Any] | None:
        try:
            data = orjson.loads((endpoint_dir(self.ws.settings.home, name) / "state.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _log_tail(self, name: str) -> str:
        """The last lines of supervisor.log, with server paths hidden."""
        try:
            with open(endpoint_dir(self.ws.settings.home, name) / "supervisor.log", "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("--- kiln:")][-LOG_TAIL_LINES:]
        return _hide_paths("\n".join(lines), self.ws)[-3000:]

    def _fail(self, name: str, reason: str, *, kill: bool = False) -> None:
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == name)).first()
        if row is None:
            return
        if kill:
            self._stop(row)
        with self.ws.mutation(_SYSTEM, action="endpoints.failed", resource=f"endpoints/{name}", role="admin", details={"reason": reason[:300]}) as (conn, _):
            conn.execute(t.endpoints.update().where(t.endpoints.c.name == name, t.endpoints.c.state.in_(_RUNNING)), {
                "state": "Failed", "failure_reason": reason, "deadline_at": None, "previous_spec": None, "updated_at": time.time(),
            })

    # -- reconcile --------------------------------------------------------------------------

    def reconcile(self, *, names: Sequence[str] | None = None, restart: bool = True) -> list[str]:
        """Bring each endpoint's record in line with its processes: ready → InService, not
        ready in time → Failed (an update rolls back), a dead supervisor restarted, a
        Deleting endpoint finished. Returns the names it changed."""
        q = sa.select(t.endpoints).where(t.endpoints.c.state.in_((*_RUNNING, "Deleting")))
        if names is not None:
            q = q.where(t.endpoints.c.name.in_(list(names)))
        with self.ws.db.read() as conn:
            rows = conn.execute(q).all()
        changed = []
        for row in rows:
            try:
                if self._reconcile_one(row, restart=restart):
                    changed.append(row.name)
            except KilnError:
                continue  # another process settled it first; the next pass sees
        return changed

    def _reconcile_one(self, row: Any, *, restart: bool) -> bool:
        name = row.name
        if row.state == "Deleting":
            if not self._alive(row) or restart:
                self._teardown(name)
                return True
            return False
        if row.supervisor_host and row.supervisor_host != this_host():
            return False  # another machine's supervisor: that machine's server reconciles it
        alive = self._alive(row)
        state = self._state(name) if alive else None
        ours = state is not None and state.get("pid") == row.supervisor_pid
        ready = bool(ours and state and state.get("ready") and state.get("generation") == row.generation)
        now = time.time()
        if ready and (row.state != "InService" or row.deadline_at is not None):
            self._ready(row, state or {})
            return True
        if ready:
            return False
        if alive and row.state == "InService" and row.deadline_at is None:
            return False
        error = _hide_paths(str((state or {}).get("error") or ""), self.ws) if ours else ""
        if ours and state and state.get("status") == "failed" and row.state in ("Creating", "InService"):
            # The supervisor gave up (no worker of the first generation could load): no need to wait.
            tail = self._log_tail(name)
            self._fail(name, (error or "the endpoint could not start") + (f"; its log ends:\n{tail}" if tail else ""), kill=True)
            return True
        if (
            row.state == "Updating" and ours and state and state.get("pending_generation") is None
            and state.get("generation") != row.generation and (f"generation {row.generation} " in error or f"gen-{row.generation}.json" in error)
        ):
            self._roll_back(row, error)  # the supervisor dropped the new generation; the old one serves
            return True
        if row.state == "Updating" and alive and row.deadline_at is not None and now > row.deadline_at:
            self._roll_back(row, f"generation {row.generation} was not ready within {START_LIMIT_S:g} s")
            return True
        if alive:
            if row.deadline_at is not None and now > row.deadline_at:
                tail = self._log_tail(name)
                self._fail(name, f"the endpoint was not ready within {START_LIMIT_S:g} s" + (f"; its log ends:\n{tail}" if tail else ""), kill=True)
                return True
            return False
        # The supervisor is gone.
        if row.state == "Creating" or row.deadline_at is not None:
            # It never became ready (a bad package, a port in use): no restart loop.
            tail = self._log_tail(name)
            if row.state == "Updating" and row.previous_spec:
                self._roll_back(row, "the supervisor ended before the new generation was ready" + (f"; its log ends:\n{tail}" if tail else ""), restart_old=restart)
                return True
            self._fail(name, "the endpoint's processes ended before it was ready" + (f"; its log ends:\n{tail}" if tail else "; its log is empty"))
            return True
        if restart:
            self._start(name, restart=True, expect=row)
            return True
        return False

    def _ready(self, row: Any, state: Mapping[str, Any]) -> None:
        """InService: record where it answers; a free port chosen at start is pinned, so a
        restarted supervisor binds the same one and the URL stays."""
        port = state.get("port")
        url = state.get("url") or (f"http://{row.host}:{port}" if port else None)
        values: dict[str, Any] = {"state": "InService", "deadline_at": None, "previous_spec": None, "url": url, "port": port, "failure_reason": None if row.state in ("Creating", "Updating") else row.failure_reason}
        spec = _spec(row)
        if spec.port == 0 and isinstance(port, int) and port > 0:
            pinned = spec.model_copy(update={"port": port})
            _write_atomic(endpoint_dir(self.ws.settings.home, row.name) / f"gen-{row.generation}.json", pinned.model_dump_json(indent=2).encode())
            values["spec"] = pinned.model_dump_json()
        with self.ws.db.write() as conn:
            conn.execute(t.endpoints.update().where(t.endpoints.c.name == row.name, t.endpoints.c.generation == row.generation, t.endpoints.c.state == row.state), values)

    def _roll_back(self, row: Any, why: str, *, restart_old: bool = False) -> None:
        """An update that failed: the old generation stays (it kept serving), the new spec goes."""
        old = EndpointSpec.model_validate_json(row.previous_spec)
        run_dir = endpoint_dir(self.ws.settings.home, row.name)
        # The newest gen file is what a supervisor serves: the failed one must not be it.
        try:
            (run_dir / f"gen-{row.generation}.json").unlink()
        except FileNotFoundError:
            pass
        reason = f"update to generation {row.generation} failed and was rolled back to generation {old.generation}: {why}"
        with self.ws.mutation(_SYSTEM, action="endpoints.rolled_back", resource=f"endpoints/{row.name}", role="admin", details={"generation": row.generation}) as (conn, _):
            conn.execute(t.endpoints.update().where(t.endpoints.c.name == row.name, t.endpoints.c.generation == row.generation), {
                "spec": row.previous_spec, "generation": old.generation, "previous_spec": None, "state": "InService",
                "failure_reason": reason, "deadline_at": None, "updated_at": time.time(),
            })
        if self._alive(row):
            self._signal(row, signal.SIGHUP)  # back to the newest generation left: the old one
        elif restart_old:
            with self.ws.db.read() as conn:
                fresh = conn.execute(sa.select(t.endpoints).where(t.endpoints.c.name == row.name)).first()
            if fresh is not None:
                self._start(row.name, restart=True, expect=fresh)


# -- helpers ---------------------------------------------------------------------------------


def _request(cls: type[Any], value: Any, what: str) -> Any:
    if value is None:
        return None
    try:
        return cls.model_validate(value.model_dump() if isinstance(value, cls) else value)
    except ValidationError as exc:
        raise invalid_input(f"invalid {what}", exc) from None


def _extras(*, serverless: Any = None, batching: Any = None, multi_model: Any = None, workers: int = 1) -> dict[str, Any]:
    """The serverless, batching and multi-model settings as asked, as spec parts."""
    out: dict[str, Any] = {}
    sl = _request(ServerlessRequest, serverless, "serverless settings")
    if sl is not None:
        if int(workers) != 1:
            raise InvalidArgument("a serverless endpoint runs one worker (it scales to zero when idle); its concurrency is max_concurrency, not workers")
        out["serverless"] = ServerlessSpec(memory_mb=sl.memory_mb, max_concurrency=sl.max_concurrency, idle_s=sl.idle_timeout_s)
    b = _request(BatchingRequest, batching, "batching settings")
    if b is not None:
        out["batching"] = BatchingSpec(max_batch=b.max_batch, max_delay_ms=b.max_delay_ms)
    mm = _request(MultiModelRequest, multi_model, "multi-model settings")
    if mm is not None:
        for pattern in mm.allow:
            body = pattern[:-1] if pattern.endswith("*") else pattern
            if body and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", body):
                raise InvalidArgument(f"allow pattern {pattern[:80]!r} is not a model name or a name prefix ending in '*'")
        out["multi_model"] = MultiModelSpec(memory_mb=mm.memory_mb, allow=tuple(mm.allow))
    return out


_clients: dict[str, tuple[int, httpx.Client]] = {}
_clients_lock = threading.Lock()
_retired: list[tuple[float, httpx.Client]] = []


def _http(url: str, generation: int) -> httpx.Client:
    """A pooled client per endpoint URL. A new generation gets fresh connections: a kept-alive
    connection to a draining worker of the old generation would still be answered by it."""
    with _clients_lock:
        held = _clients.get(url)
        if held is not None and held[0] == generation:
            return held[1]
        client = httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        _clients[url] = (generation, client)
        now = time.monotonic()
        if held is not None:
            _retired.append((now, held[1]))  # requests in flight on it finish; closed a minute later
        done = [c for at, c in _retired if now - at > 60]
        _retired[:] = [(at, c) for at, c in _retired if now - at <= 60]
    for old in done:
        old.close()
    return client


_BY_STATUS: dict[int, type[KilnError]] = {
    400: InvalidArgument, 403: PermissionDenied, 404: NotFound, 406: NotAcceptable, 409: Conflict, 413: PayloadTooLarge,
    415: UnsupportedMediaType, 424: ModelError, 429: ResourceExhausted, 503: Unavailable, 507: ResourceExhausted,
}


def _endpoint_error(name: str, resp: httpx.Response) -> KilnError:
    """The endpoint's error as the same KilnError a local call would raise."""
    message = resp.text[:2000]
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("message"))
        if isinstance(err, dict):
            message = str(err.get("message", message))
        elif isinstance(err, str):
            message = err
    cls = _BY_STATUS.get(resp.status_code, ModelError)
    if cls is ModelError and resp.status_code != 424:
        message = f"endpoint {name!r} answered {resp.status_code}: {message}"
    return cls(message[:4000])


def _hide_paths(text: str, ws: Workspace) -> str:
    import tempfile

    roots = {str(ws.settings.home), str(Path(ws.settings.home).resolve()), tempfile.gettempdir(), sys.prefix, str(Path(sys.prefix).resolve())}
    pattern = re.compile("|".join(re.escape(r) + r"[^\s'\"]*" for r in sorted(roots, key=len, reverse=True) if r and r != "/"))
    return pattern.sub("<server path>", text)


_children: list[subprocess.Popen[bytes]] = []


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Keep the Popen so ended supervisors are reaped (no zombies in a long-lived server)."""
    _children.append(proc)
    _reap()


def _reap() -> None:
    _children[:] = [p for p in _children if p.poll() is None]
