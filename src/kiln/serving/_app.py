"""A serving worker's HTTP face: one raw ASGI app, three protocols on one port.

SageMaker (``GET /ping``, ``POST /invocations``), MLflow's scoring JSON (the same
``/invocations``) and the Open Inference Protocol V2 (``/v2/health/live|ready``,
``/v2/models/{m}``, ``/v2/models/{m}/ready``, ``/v2/models/{m}/infer``), plus ``GET
/metrics`` (Prometheus text, every worker of the endpoint summed).

No framework routing: each request is a dict lookup on the path, one pass over the
headers, a body read against the payload limit and a call into the variant's
:class:`~kiln.serving._runtime.Servable`. A package that runs none of its own code
is called on the event loop for small bodies (see :func:`_inline` for the measurement);
one with code runs on a thread under the request timeout, and a worker whose model ran
past it asks to be replaced (``on_stuck``).

What runs after the response is sent (metrics, capture, the shadow copy) costs the
next request on this connection, never this one.

Two opt-in behaviours replace the invocation path only when the spec asks for them, so
an endpoint without them pays nothing: a serverless endpoint's worker answers a request
beyond ``max_concurrency`` at once with 429 and SageMaker's ``ThrottlingException``;
micro-batching (``spec.batching``, :mod:`kiln.serving._batching`) lets concurrent
requests share one predict.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import random
import sys
import time
import traceback
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from kiln.core.errors import InvalidArgument, KilnError, ModelError, NotFound, PayloadTooLarge, PermissionDenied, ResourceExhausted
from kiln.serving._capture import Capture
from kiln.serving._metrics import VariantCounters, WorkerMetrics, prometheus, snapshot
from kiln.serving._spec import EndpointSpec

__all__ = ["INLINE_MAX_BYTES", "MAX_ATTRIBUTES", "ServingApp", "ThrottlingException"]

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_ATTRIBUTES = 1024  # X-Amzn-SageMaker-Custom-Attributes, as SageMaker limits it
MAX_INFERENCE_ID = 64
MAX_REQUEST_ID = 200
# Bodies up to this size go through an inline servable on the event loop; larger ones
# (a 6 MB CSV) decode on a thread so they do not stall the worker's other connections.
INLINE_MAX_BYTES = 64 * 1024
SHADOW_BACKLOG = 64
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_JSON = b"application/json"
_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_CLOSE = (b"connection", b"close")
_PING = orjson.dumps({"status": "Healthy"})


class _Stop(Exception):
    """The client went away while its body was being read."""


class ThrottlingException(ResourceExhausted):
    """A serverless endpoint's concurrency limit was reached (429, as SageMaker names it)."""

    code = "ThrottlingException"

    def to_payload(self) -> dict[str, Any]:
        # Kiln's error shape, plus the keys of SageMaker's JSON error ("__type", "message").
        return {**super().to_payload(), "__type": self.code, "message": self.message}


class _Variant:
    __slots__ = ("batcher", "counters", "inline", "model", "name", "name_b", "servable", "version")

    def __init__(self, name: str, model_ref: str, servable: Any, counters: VariantCounters) -> None:
        self.name = name
        self.name_b = name.encode()
        self.model, _, self.version = model_ref.partition("@")
        self.servable = servable
        self.counters = counters
        self.inline = _inline(servable)
        self.batcher: Any = None


class ServingApp:
    """The ASGI app of one serving worker.

    Args:
        spec: the endpoint's spec (variants, limits, capture, host).
        servables: each variant's loaded servable, by variant name (and the shadow's).
        port: the port the worker listens on (for the Host and Origin checks).
        metrics: this worker's counters (a fresh set when None).
        capture: the capture writer when capture is on.
        on_stuck: called once when a model runs past the timeout: the worker asks to be replaced.
        channel: multi-model endpoints: the channel to the supervisor that fetches verified
            packages (:class:`kiln.serving._multi.Channel`).
    """

    def __init__(
        self, spec: EndpointSpec, servables: Mapping[str, Any], *, port: int = 0,
        metrics: WorkerMetrics | None = None, capture: Capture | None = None,
        on_stuck: Callable[[], None] | None = None, threads: int = 4, channel: Any = None,
    ) -> None:
        self.spec = spec
        self.metrics = metrics or WorkerMetrics(spec.name, spec.run_dir)
        self.capture = capture if capture is not None and spec.capture.enabled else None
        self.on_stuck = on_stuck
        self.timeout_s = spec.timeout_s
        self.max_payload = spec.max_payload_bytes
        self.draining = False
        self.stuck = False
        # When an inline call began (perf_counter_ns), 0 when none runs: the worker's watchdog reads it.
        self.inline_since = 0
        self.variants = [_Variant(v.name, v.model_ref, servables[v.name], self.metrics.variant(v.name)) for v in spec.variants]
        self.by_name = {v.name: v for v in self.variants}
        self.shadow = _Variant(spec.shadow.name, spec.shadow.model_ref, servables[spec.shadow.name], self.metrics.variant(spec.shadow.name)) if spec.shadow else None
        weights = [v.weight for v in spec.variants]
        self._cum = list(itertools.accumulate(weights))
        self._total = self._cum[-1] if self._cum else 0.0
        live = [v for v, w in zip(self.variants, weights, strict=True) if w > 0]
        self._single = live[0] if len(live) == 1 else None
        self._v2_models = self._v2_names()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kiln-predict")
        self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kiln-shadow") if self.shadow else None
        self._shadow_pending = 0
        self._rid_prefix = os.urandom(6).hex() + "-"
        self._rid = itertools.count(1)
        self._ctypes: dict[str, bytes] = {}
        self.port = port
        self._hosts, self._names = self._allowed_hosts(port)
        self._batching = self._batchers() if spec.batching is not None else False
        self.max_concurrency = spec.serverless.max_concurrency if spec.serverless is not None else 0
        self.in_flight = 0
        if self.max_concurrency:
            self._invocations = self._limited  # type: ignore[method-assign]
            self._v2 = self._limited_v2  # type: ignore[method-assign]
        self.mm: Any = None
        if spec.multi_model is not None:
            from kiln.serving._multi import attach

            attach(self, channel)

    def _batchers(self) -> bool:
        from kiln.serving._batching import Batcher, batchable

        batching = self.spec.batching
        assert batching is not None
        found = False
        for variant in self.variants:
            if batchable(variant.servable):
                predict = self._batch_predict(variant)
                variant.batcher = Batcher(predict, max_batch=batching.max_batch, max_delay_ms=batching.max_delay_ms, counters=variant.counters)
                found = True
        return found

    def _batch_predict(self, variant: _Variant) -> Callable[[Any], Awaitable[tuple[Any, int]]]:
        async def predict(rows: Any) -> tuple[Any, int]:
            return await self._call(variant, variant.servable.predict_array, rows, size=rows.nbytes)

        return predict

    # -- set-up ----------------------------------------------------------------------------

    def _v2_names(self) -> dict[str, _Variant | None]:
        """V2 model names: the endpoint (weighted choice), each variant, each model name that is one variant's."""
        names: dict[str, _Variant | None] = {self.spec.name: None}
        models: dict[str, list[_Variant]] = {}
        for v in self.variants:
            models.setdefault(v.model, []).append(v)
        for model, vs in models.items():
            names.setdefault(model, vs[0] if len(vs) == 1 else None)
        for v in self.variants:
            names[v.name] = v
        return names

    def _allowed_hosts(self, port: int) -> tuple[frozenset[bytes], frozenset[str]]:
        names = {*_LOOPBACK_NAMES, *(h.lower() for h in self.spec.allowed_hosts)}
        if not _wildcard(self.spec.host):
            names.add(_bracket(self.spec.host.lower()))
        exact = {n.encode() for n in names}
        if port:
            exact |= {f"{n}:{port}".encode() for n in names}
        return frozenset(exact), frozenset(names)

    def _host_ok(self, host: bytes) -> bool:
        """The slow path of the Host check: another port, another loopback address, an IP on a wildcard bind."""
        text = host.decode("latin-1").lower()
        name, port = text, ""
        if text.startswith("["):
            end = text.find("]")
            name, port = text[: end + 1], text[end + 2 :] if end >= 0 else ""
        elif ":" in text:
            name, _, port = text.rpartition(":")
        if port and (not port.isdigit() or (self.port and int(port) != self.port)):
            return False
        if name in self._names or name.endswith(".localhost"):
            return True
        try:
            addr = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return False  # a DNS name the endpoint does not answer to: DNS rebinding
        return addr.is_loopback or _wildcard(self.spec.host)

    # -- the request path ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            return await self._http(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: logged here, a plain 500 there, no traceback
            traceback.print_exc(file=sys.stderr)
            with contextlib.suppress(Exception):
                await self._fail(send, b"-", KilnError(f"internal error ({type(exc).__name__}); the worker's log has the details"), close=True)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter_ns()
        h = dict(scope["headers"])
        rid = h.get(b"x-request-id")
        if rid is None or len(rid) > MAX_REQUEST_ID:
            rid = (self._rid_prefix + format(next(self._rid), "x")).encode()
        host = h.get(b"host")
        if host is not None and host not in self._hosts and not self._host_ok(host):
            return await self._fail(send, rid, PermissionDenied(f"this endpoint does not answer to Host {host.decode('latin-1')[:100]!r}; use 127.0.0.1 or localhost"), close=True)
        origin = h.get(b"origin")
        if (origin is not None and (host is None or origin != b"http://" + host)) or h.get(b"sec-fetch-site", b"none") not in (b"same-origin", b"none"):
            return await self._fail(send, rid, PermissionDenied("cross-site requests are refused: call the endpoint from its own origin or from a program"), close=True)
        path = scope["path"]
        method = scope["method"]
        if path == "/invocations":
            if method != "POST":
                return await self._fail(send, rid, _not_allowed(method, path, "POST"))
            return await self._invocations(h, rid, t0, receive, send)
        if path.startswith("/v2"):
            return await self._v2(path, method, h, rid, t0, receive, send)
        if path in ("/ping", "/health"):
            return await self._answer(send, 200, _PING, _JSON, rid)
        if path == "/metrics" and method == "GET":
            text = prometheus(snapshot(self.spec.run_dir, live=self.metrics), endpoint=self.spec.name).encode()
            return await self._answer(send, 200, text, _TEXT, rid)
        if self.mm is not None and (path == "/models" or path.startswith("/models/")):
            from kiln.serving._multi import models_api

            return await models_api(self, path, method, rid, h, receive, send)
        if path == "/execution-parameters" and method == "GET":
            body = orjson.dumps({"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": max(1, self.max_payload >> 20)})
            return await self._answer(send, 200, body, _JSON, rid)
        return await self._fail(send, rid, NotFound(f"no route {method} {path[:200]}: this endpoint answers GET /ping, POST /invocations, /v2/... and GET /metrics"))

    async def _invocations(self, h: dict[bytes, bytes], rid: bytes, t0: int, receive: Receive, send: Send, chosen: _Variant | None = None) -> None:
        attrs = h.get(b"x-amzn-sagemaker-custom-attributes")
        variant = chosen
        try:
            if variant is None:
                variant = self._route(h.get(b"x-amzn-sagemaker-target-variant"))
            if attrs is not None and len(attrs) > MAX_ATTRIBUTES:
                raise InvalidArgument(f"X-Amzn-SageMaker-Custom-Attributes is {len(attrs)} characters; at most {MAX_ATTRIBUTES} are allowed")
            inference_id = _inference_id(h.get(b"x-amzn-sagemaker-inference-id"))
            body = await self._body(receive, h.get(b"content-length"))
        except _Stop:
            return None
        except KilnError as exc:
            await self._fail(send, rid, exc, close=isinstance(exc, PayloadTooLarge))
            if variant is not None:
                variant.counters.observe(exc.http_status, 0, time.perf_counter_ns() - t0)
            return None
        ctype = h.get(b"content-type")
        ct = ctype.decode("latin-1") if ctype is not None else None
        accept = h.get(b"accept")
        acc = accept.decode("latin-1") if accept is not None else None
        att = attrs.decode("latin-1") if attrs is not None else None
        model_ns = 0
        try:
            if self._batching and variant.batcher is not None and len(body) <= INLINE_MAX_BYTES:
                reply, model_ns = await self._batched(variant, body, ct, acc, att)
            else:
                reply, model_ns = await self._call(variant, variant.servable.invoke, body, ct, acc, att, size=len(body))
            status, out, out_type = 200, reply.body, self._ctype(reply.content_type)
        except KilnError as exc:
            status, out, out_type = exc.http_status, orjson.dumps(exc.to_payload()), _JSON
        headers = [(b"content-type", out_type), (b"content-length", b"%d" % len(out)), (b"x-request-id", rid), (b"x-amzn-invoked-production-variant", variant.name_b)]
        if attrs is not None:
            headers.append((b"x-amzn-sagemaker-custom-attributes", attrs))
        if self.draining:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        variant.counters.observe(status, model_ns, time.perf_counter_ns() - t0)
        if status == 200:
            if self.capture is not None and self.capture.sample():
                self.capture.record(variant.name, request=body, request_type=ct or "", response=out, response_type=reply.content_type, inference_id=inference_id)
            if self.shadow is not None:
                self._shadow_copy(self.shadow, body, ct, acc, att, inference_id)
        return None

    async def _limited(self, h: dict[bytes, bytes], rid: bytes, t0: int, receive: Receive, send: Send) -> None:
        """A serverless worker's invocations: at most ``max_concurrency`` at once, the
        others refused at once (429, ThrottlingException) rather than queued."""
        if self.in_flight >= self.max_concurrency:
            return await self._throttle(send, rid, t0)
        self.in_flight += 1
        try:
            return await ServingApp._invocations(self, h, rid, t0, receive, send)
        finally:
            self.in_flight -= 1

    async def _limited_v2(self, path: str, method: str, h: dict[bytes, bytes], rid: bytes, t0: int, receive: Receive, send: Send) -> None:
        """V2 inference under the same limit (health and metadata are not limited)."""
        if method != "POST":
            return await ServingApp._v2(self, path, method, h, rid, t0, receive, send)
        if self.in_flight >= self.max_concurrency:
            return await self._throttle(send, rid, t0)
        self.in_flight += 1
        try:
            return await ServingApp._v2(self, path, method, h, rid, t0, receive, send)
        finally:
            self.in_flight -= 1

    async def _throttle(self, send: Send, rid: bytes, t0: int) -> None:
        variant = self._single or self.variants[0]
        variant.counters.throttled += 1
        exc = ThrottlingException(
            f"endpoint {self.spec.name!r} is at its maximum concurrency ({self.max_concurrency} requests at once); retry after a moment",
            details={"max_concurrency": self.max_concurrency},
        )
        body = orjson.dumps(exc.to_payload())
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body)), (b"x-request-id", rid), (b"x-amzn-errortype", b"ThrottlingException"), (b"retry-after", b"1"), _CLOSE]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        variant.counters.observe(429, 0, time.perf_counter_ns() - t0)

    async def _mm_invocations(self, h: dict[bytes, bytes], rid: bytes, t0: int, receive: Receive, send: Send) -> None:
        """A multi-model endpoint's invocation: the model named by X-Amzn-SageMaker-Target-Model, loaded on first use."""
        target = h.get(b"x-amzn-sagemaker-target-model")
        try:
            if target is None:
                raise InvalidArgument("this is a multi-model endpoint: name the model in X-Amzn-SageMaker-Target-Model (name@version, name/version or a name for its latest version)")
            variant = await self.mm.get(target.decode("latin-1"))
        except KilnError as exc:
            return await self._fail(send, rid, exc, close=True)
        return await ServingApp._invocations(self, h, rid, t0, receive, send, variant)

    async def _batched(self, variant: _Variant, body: bytes, ct: str | None, acc: str | None, att: str | None) -> tuple[Any, int]:
        """One request through its variant's batcher, answered as it would be alone."""
        from kiln.serving import _codecs
        from kiln.serving._batching import FALLBACK, rows_of

        servable = variant.servable
        kind = _codecs.choose_accept(acc)  # 406 before any work, as alone
        try:
            rows = rows_of(servable, body, ct)
        except KilnError:
            rows = None  # alone, the request gets its own error
        if rows is not None:
            got = await variant.batcher.submit(rows)
            if got is not FALLBACK:
                predictions, model_ns = got
                return _codecs.encode(predictions, kind), model_ns
        return await self._call(variant, servable.invoke, body, ct, acc, att, size=len(body))

    def _route(self, target: bytes | None) -> _Variant:
        if target is not None:
            variant = self.by_name.get(target.decode("latin-1"))
            if variant is None:
                names = ", ".join(self.by_name)
                raise InvalidArgument(f"X-Amzn-SageMaker-Target-Variant {target.decode('latin-1')[:100]!r} is not a variant of this endpoint ({names})")
            return variant
        if self._single is not None:
            return self._single
        if not self.variants:
            raise InvalidArgument("this is a multi-model endpoint: POST /invocations with X-Amzn-SageMaker-Target-Model naming the model")
        return self.variants[bisect_right(self._cum, random.random() * self._total)]

    async def _body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.max_payload
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise InvalidArgument(f"Content-Length {length.decode('latin-1')[:40]!r} is not a number") from None
            if declared > limit:
                raise _too_large(declared, limit)
        message = await receive()
        if message["type"] != "http.request":
            raise _Stop
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            raise _too_large(len(body), limit, partial=more)
        if not more:
            return body
        parts = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Stop
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit, partial=True)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    async def _call(self, variant: _Variant, fn: Callable[..., Any], *args: Any, size: int) -> tuple[Any, int]:
        """``fn(*args)`` inline or on a thread under the timeout; its result and the time it took (ns)."""
        if variant.inline and size <= INLINE_MAX_BYTES:
            start = self.inline_since = time.perf_counter_ns()
            try:
                return fn(*args), time.perf_counter_ns() - start
            except KilnError:
                raise
            except Exception as exc:  # noqa: BLE001 - the model's own failure: a 424 with its message
                raise _model_error(exc) from None
            finally:
                self.inline_since = 0
        loop = asyncio.get_running_loop()
        start = time.perf_counter_ns()
        try:
            result = await asyncio.wait_for(loop.run_in_executor(self._pool, fn, *args), self.timeout_s)
        except TimeoutError:
            self._stuck()
            raise ModelError(f"the model of variant {variant.name} did not answer within {self.timeout_s:g} s; the request was abandoned and the worker is being replaced") from None
        except KilnError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _model_error(exc) from None
        return result, time.perf_counter_ns() - start

    def _stuck(self) -> None:
        if not self.stuck:
            self.stuck = True
            if self.on_stuck is not None:
                self.on_stuck()

    def _shadow_copy(self, shadow: _Variant, body: bytes, ct: str | None, acc: str | None, att: str | None, inference_id: str | None) -> None:
        """Send a copy of a served request to the shadow variant; its answer is recorded, never returned."""
        if self._shadow_pending >= SHADOW_BACKLOG or self._shadow_pool is None:
            shadow.counters.shadow_dropped += 1
            return
        self._shadow_pending += 1
        loop = asyncio.get_running_loop()
        start = time.perf_counter_ns()
        future = loop.run_in_executor(self._shadow_pool, _timed, shadow.servable.invoke, body, ct, acc, att)

        def done(fut: asyncio.Future[tuple[Any, int]]) -> None:
            self._shadow_pending -= 1
            exc = fut.exception()
            if exc is not None:
                status = exc.http_status if isinstance(exc, KilnError) else 424
                shadow.counters.observe(status, 0, time.perf_counter_ns() - start)
                return
            reply, model_ns = fut.result()
            shadow.counters.observe(200, model_ns, time.perf_counter_ns() - start)
            if self.capture is not None and self.capture.sample():
                self.capture.record(shadow.name, request=body, request_type=ct or "", response=reply.body, response_type=reply.content_type, inference_id=inference_id)

        future.add_done_callback(done)

    # -- Open Inference Protocol V2 --------------------------------------------------------

    async def _v2(self, path: str, method: str, h: dict[bytes, bytes], rid: bytes, t0: int, receive: Receive, send: Send) -> None:
        parts = path.split("/")
        if path in ("/v2", "/v2/"):
            from kiln import __version__

            return await self._answer(send, 200, orjson.dumps({"name": "kiln", "version": __version__, "extensions": []}), _JSON, rid)
        if len(parts) == 4 and parts[2] == "health" and parts[3] in ("live", "ready"):
            return await self._answer(send, 200, orjson.dumps({parts[3]: True}), _JSON, rid)
        if len(parts) < 4 or parts[2] != "models" or not parts[3]:
            return await self._v2_fail(send, rid, 404, f"no route {method} {path[:200]}")
        name, rest = parts[3], parts[4:]
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        else:
            version = None
        if name not in self._v2_models:
            served = ", ".join(sorted(self._v2_models))
            return await self._v2_fail(send, rid, 404, f"model {name[:100]!r} is not served here (models: {served})")
        chosen = self._v2_models[name]
        if version is not None and (chosen is None or version != chosen.version):
            return await self._v2_fail(send, rid, 404, f"model {name[:100]!r} has no version {version[:40]!r} here")
        if not rest and method == "GET":
            variant = chosen or self._route(None)
            meta = dict(variant.servable.metadata_v2())
            meta["name"] = name
            return await self._answer(send, 200, orjson.dumps(meta), _JSON, rid)
        if rest == ["ready"] and method == "GET":
            return await self._answer(send, 200, orjson.dumps({"name": name, "ready": True}), _JSON, rid)
        if rest != ["infer"] or method != "POST":
            return await self._v2_fail(send, rid, 404, f"no route {method} {path[:200]}")
        try:
            variant = chosen or self._route(h.get(b"x-amzn-sagemaker-target-variant"))
            body = await self._body(receive, h.get(b"content-length"))
        except _Stop:
            return None
        except KilnError as exc:
            return await self._v2_fail(send, rid, exc.http_status, exc.message, close=isinstance(exc, PayloadTooLarge))
        model_ns = 0
        try:
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidArgument(f"the V2 request body is not valid JSON: {exc}") from None
            if not isinstance(request, dict):
                raise InvalidArgument("the V2 request body must be a JSON object with an 'inputs' list")
            result, model_ns = await self._call(variant, variant.servable.infer_v2, request, size=len(body))
            if isinstance(result, dict):
                result = {**result, "model_name": name}
                if variant.version:
                    result.setdefault("model_version", variant.version)
            status, out = 200, orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        except KilnError as exc:
            status, out = exc.http_status, orjson.dumps({"error": exc.message})
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(out)), (b"x-request-id", rid), (b"x-amzn-invoked-production-variant", variant.name_b)]
        if self.draining:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        variant.counters.observe(status, model_ns, time.perf_counter_ns() - t0)
        if status == 200:
            if self.capture is not None and self.capture.sample():
                self.capture.record(variant.name, request=body, request_type="application/json", response=out, response_type="application/json")
            if self.shadow is not None:
                self._v2_shadow(self.shadow, request)
        return None

    def _v2_shadow(self, shadow: _Variant, request: dict[str, Any]) -> None:
        if self._shadow_pending >= SHADOW_BACKLOG or self._shadow_pool is None:
            shadow.counters.shadow_dropped += 1
            return
        self._shadow_pending += 1
        loop = asyncio.get_running_loop()
        start = time.perf_counter_ns()
        future = loop.run_in_executor(self._shadow_pool, _timed, shadow.servable.infer_v2, request)

        def done(fut: asyncio.Future[tuple[Any, int]]) -> None:
            self._shadow_pending -= 1
            exc = fut.exception()
            model_ns = 0 if exc is not None else fut.result()[1]
            status = 200 if exc is None else (exc.http_status if isinstance(exc, KilnError) else 424)
            shadow.counters.observe(status, model_ns, time.perf_counter_ns() - start)

        future.add_done_callback(done)

    async def _v2_fail(self, send: Send, rid: bytes, status: int, message: str, *, close: bool = False) -> None:
        await self._answer(send, status, orjson.dumps({"error": message}), _JSON, rid, close=close)

    # -- answers ---------------------------------------------------------------------------

    def _ctype(self, content_type: str) -> bytes:
        cached = self._ctypes.get(content_type)
        if cached is None:
            cached = content_type.encode("latin-1")
            if len(self._ctypes) < 64:
                self._ctypes[content_type] = cached
        return cached

    async def _answer(self, send: Send, status: int, body: bytes, content_type: bytes, rid: bytes, *, close: bool = False) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), (b"x-request-id", rid)]
        if close or self.draining:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _fail(self, send: Send, rid: bytes, exc: KilnError, *, close: bool = False) -> None:
        await self._answer(send, exc.http_status, orjson.dumps(exc.to_payload()), _JSON, rid, close=close)

    def close(self) -> None:
        """Stop the predict threads (a stuck one is left behind: the process exits around it)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=False, cancel_futures=True)
        if self.capture is not None:
            self.capture.close()


def _inline(servable: Any) -> bool:
    """Whether the variant answers small requests on the event loop.

    Measured (benchmarks/serving.py's LogisticRegression, one CSV row): a hop to a thread
    and back costs about 80 µs of CPU per request and GIL hand-offs between the loop and
    the thread, against a 0.1 ms predict. So a package that runs none of its own code
    (a skops, XGBoost, LightGBM or ONNX file: the runtime's and the framework's code,
    which does not hang) is called inline, and the worker's watchdog recycles it should
    it ever stall the loop; a package with code (handlers, a pickle, a training script)
    runs on a thread under the request timeout. ``inline`` set on a servable overrides.
    """
    explicit = getattr(servable, "inline", None)
    if explicit is not None:
        return bool(explicit)
    manifest = getattr(servable, "manifest", None)
    if manifest is None:
        return False
    from kiln.registry._build import runs_code

    return not runs_code(manifest)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    start = time.perf_counter_ns()
    return fn(*args), time.perf_counter_ns() - start


def _model_error(exc: Exception) -> ModelError:
    return ModelError(f"{type(exc).__name__}: {exc}"[:2000])


def _too_large(size: int, limit: int, *, partial: bool = False) -> PayloadTooLarge:
    what = f"more than {limit} bytes" if partial else f"{size} bytes"
    return PayloadTooLarge(f"the request body is {what}; this endpoint takes at most {limit} bytes ({limit / (1 << 20):g} MB): send fewer rows per request")


class _MethodNotAllowed(InvalidArgument):
    code = "method_not_allowed"
    http_status = 405


def _not_allowed(method: str, path: str, allowed: str) -> InvalidArgument:
    return _MethodNotAllowed(f"{method} {path} is not allowed; use {allowed}")


def _inference_id(value: bytes | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_INFERENCE_ID:
        raise InvalidArgument(f"X-Amzn-SageMaker-Inference-Id must be 1 to {MAX_INFERENCE_ID} characters")
    return value.decode("latin-1")


def _wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
