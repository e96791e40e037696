"""Multi-model endpoints: registered models chosen per request, loaded on first use, evicted LRU.

A request names its model in ``X-Amzn-SageMaker-Target-Model``: ``name@version``,
SageMaker's path style ``name/version`` (``name/3.tar.gz`` too), ``name@alias``, or a bare
``name`` meaning its latest version when it is first loaded (it stays that version until
it is unloaded or evicted). The worker, which runs model code, has no workspace: it asks
its supervisor (Kiln's own code, with the workspace) over a private socket pair, one JSON
line each way, to resolve the reference, check the endpoint's ``allow`` list and the
registry's trust rules (:func:`kiln.registry._service.code_may_run`, the rule every
serving path uses) and fetch the verified package into the cache; the worker then loads
that folder. Loaded models are kept least-recently-used under the endpoint's memory
budget, counted as the packages' sizes on disk.

The worker also answers SageMaker's multi-model server API: ``GET /models``, ``POST
/models {"model_name", "url"}`` (409 if loaded, 507 when it cannot fit), ``DELETE
/models/{name}``; each acts on the worker that answers (a multi-model endpoint with
several workers loads on demand in each).
"""

from __future__ import annotations

import asyncio
import re
import time
import socket
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kiln.core.errors import Conflict, InvalidArgument, KilnError, NotFound, PayloadTooLarge, PermissionDenied, ResourceExhausted

__all__ = ["Channel", "InsufficientStorage", "MultiModels", "allowed", "attach", "models_api", "normalize", "serve_channel"]

_REF = re.compile(r"^([a-z0-9][a-z0-9_-]{0,62})(?:[@/]([A-Za-z0-9][A-Za-z0-9_-]{0,62}))?(?:\.tar\.gz)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
MAX_LINE = 64 * 1024


class InsufficientStorage(ResourceExhausted):
    """The model does not fit the endpoint's memory budget even alone (507, as SageMaker's MMS answers)."""

    code = "insufficient_storage"
    http_status = 507


def normalize(target: str) -> str:
    """A target model as a registry reference: ``name/3`` → ``name@3``, ``name`` stays (latest).

    Raises:
        InvalidArgument: anything else (a path, ``..``, an encoded or odd character).
    """
    match = _REF.fullmatch(target)
    if match is None:
        raise InvalidArgument(
            f"target model {target[:100]!r} is not a model reference: use name@version, name/version or a model name (its latest version)"
        )
    name, version = match.groups()
    return f"{name}@{version}" if version else name


def allowed(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """Whether the endpoint's ``allow`` list (names, or prefixes ending in ``*``) admits model ``name``."""
    return any(name == p or (p.endswith("*") and name.startswith(p[:-1])) for p in patterns)


# -- the supervisor's side ---------------------------------------------------------------


def serve_channel(sock: socket.socket, resolve: Callable[[str, tuple[str, ...]], dict[str, Any]], allow: tuple[str, ...]) -> threading.Thread:
    """Answer one worker's requests on its end of the socket pair, in a thread, until it closes.

    A request is ``{"op": "fetch", "model": REF}``; the answer ``{"ref", "folder",
    "trusted", "size"}`` or ``{"error": {"status", "code", "message"}}``."""

    def run() -> None:
        buf = b""
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                if len(buf) > MAX_LINE:
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        request = orjson.loads(line)
                        if not isinstance(request, dict) or request.get("op") != "fetch" or not isinstance(request.get("model"), str):
                            raise InvalidArgument("a request is {'op': 'fetch', 'model': REF}")
                        answer = resolve(request["model"], allow)
                    except KilnError as exc:
                        answer = {"error": {"status": exc.http_status, "code": exc.code, "message": exc.message}}
                    except Exception as exc:  # noqa: BLE001 - the worker gets a reason, the supervisor keeps going
                        answer = {"error": {"status": 500, "code": "internal", "message": f"the model could not be fetched ({type(exc).__name__})"}}
                    try:
                        sock.sendall(orjson.dumps(answer) + b"\n")
                    except OSError:
                        return

    thread = threading.Thread(target=run, name="kiln-models-channel", daemon=True)
    thread.start()
    return thread


def workspace_resolver() -> Callable[[str, tuple[str, ...]], dict[str, Any]]:
    """Resolve, check and fetch models with this process's workspace (the supervisor's)."""
    lock = threading.Lock()
    held: dict[str, Any] = {}

    def resolve(target: str, allow: tuple[str, ...]) -> dict[str, Any]:
        from kiln.core.context import Context
        from kiln.core.names import parse_ref
        from kiln.registry._service import ModelService

        ref = normalize(target)
        name = parse_ref(ref, kind="model").name
        if not allowed(name, allow):
            raise PermissionDenied(f"model {name!r} is not one this endpoint may load (it allows {', '.join(allow)})")
        with lock:
            if "ws" not in held:
                from kiln.core.config import load_settings
                from kiln.core.workspace import Workspace

                held["ws"] = Workspace(load_settings())
            ctx = Context(actor="system:endpoints", role="viewer", source="server", request_id="multi-model")
            models = ModelService(held["ws"], ctx)
            row, manifest = models._located(ref)
            if row.status == "Rejected":
                raise PermissionDenied(f"model {row.name}@{row.version} was rejected; an endpoint serves only versions that are not rejected")
            trusted = models.code_may_run(row, manifest)
            folder = models._fetch(row, manifest)  # every file's sha256 checked
        size = sum(f.size for f in manifest.files.values())
        return {"ref": f"{row.name}@{row.version}", "folder": str(folder), "trusted": trusted, "size": int(size)}

    return resolve


# -- the worker's side -------------------------------------------------------------------


class Channel:
    """The worker's end of the socket pair: one request at a time (fetches are rare)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.lock = threading.Lock()
        self.buf = b""

    def fetch(self, model: str) -> dict[str, Any]:
        with self.lock:
            self.sock.sendall(orjson.dumps({"op": "fetch", "model": model}) + b"\n")
            while b"\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise KilnError("the endpoint's supervisor closed the model channel")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
        answer = orjson.loads(line)
        err = answer.get("error")
        if err:
            raise _error(int(err.get("status", 500)), str(err.get("message", "")))
        return dict(answer)


def _error(status: int, message: str) -> KilnError:
    cls = {400: InvalidArgument, 403: PermissionDenied, 404: NotFound, 409: Conflict}.get(status, KilnError)
    return cls(message)


class _Loaded:
    __slots__ = ("name", "ref", "size", "variant")

    def __init__(self, name: str, ref: str, size: int, variant: Any) -> None:
        self.name, self.ref, self.size, self.variant = name, ref, size, variant


class MultiModels:
    """A worker's loaded models, least recently used first, under a budget in bytes.

    Args:
        budget: the most bytes of packages held at once.
        allow: the endpoint's allow list (checked here for a quick answer; the supervisor decides).
        fetch: the channel's fetch (blocking: run on a thread).
        load: ``(folder, trusted, name) -> servable`` (blocking: run on a thread).
        make_variant: wraps a servable for the app (its counters, whether it runs inline).
        run: runs a blocking call off the event loop.
    """

    def __init__(
        self, *, budget: int, allow: tuple[str, ...], fetch: Callable[[str], dict[str, Any]], load: Callable[[str, bool, str], Any],
        make_variant: Callable[[str, Any], Any], run: Callable[..., Any], unload: Callable[[str], None] | None = None,
    ) -> None:
        self.budget = budget
        self.allow = allow
        self._fetch = fetch
        self._load = load
        self._make_variant = make_variant
        self._run = run
        self._unloaded = unload
        self.loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self.used = 0
        self._loading: dict[str, asyncio.Future[_Loaded]] = {}
        self.evictions = 0

    def used_by(self, name: str) -> bool:
        return name in self.loaded

    async def get(self, target: str) -> Any:
        """The variant serving ``target`` (a name loaded by POST /models, or a reference), loading it on first use."""
        held = self.loaded.get(target)
        if held is not None:
            self.loaded.move_to_end(target)
            return held.variant
        return (await self.load(target, target)).variant

    async def load(self, name: str, url: str, *, explicit: bool = False) -> _Loaded:
        """Load ``url`` (a model reference) under ``name``; 409 when ``explicit`` and already loaded."""
        if name in self.loaded:
            if explicit:
                raise Conflict(f"model {name!r} is already loaded; DELETE /models/{name} first to load it again")
            return self.loaded[name]
        if explicit and not _NAME.fullmatch(name):
            raise InvalidArgument(f"model name {name[:100]!r} is not valid: use letters, digits, '.', '_', '-' and '@'")
        ref = normalize(url)
        if not allowed(ref.partition("@")[0], self.allow):
            raise PermissionDenied(f"model {ref.partition('@')[0]!r} is not one this endpoint may load (it allows {', '.join(self.allow)})")
        pending = self._loading.get(name)
        if pending is not None:
            if explicit:
                raise Conflict(f"model {name!r} is being loaded")
            return await asyncio.shield(pending)
        future: asyncio.Future[_Loaded] = asyncio.get_running_loop().create_future()
        self._loading[name] = future
        try:
            found = await self._run(self._fetch, ref)
            size = int(found["size"])
            if size > self.budget:
                raise InsufficientStorage(
                    f"model {found['ref']} needs {size / (1 << 20):.1f} MB and this endpoint holds at most {self.budget / (1 << 20):g} MB of models; "
                    "raise --memory-mb or serve it from an endpoint of its own"
                )
            self._evict(size)
            servable = await self._run(self._load, found["folder"], bool(found["trusted"]), found["ref"].partition("@")[0])
            self._evict(size)
            entry = _Loaded(name, found["ref"], size, self._make_variant(found["ref"], servable))
            self.loaded[name] = entry
            self.used += size
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure nobody else awaited is not logged as lost
            raise
        finally:
            self._loading.pop(name, None)

    def _evict(self, size: int) -> None:
        while self.loaded and self.used + size > self.budget:
            _, old = self.loaded.popitem(last=False)
            self.used -= old.size
            self.evictions += 1
            if self._unloaded is not None:
                self._unloaded(old.ref)

    def unload(self, name: str) -> None:
        held = self.loaded.pop(name, None)
        if held is None:
            raise NotFound(f"model {name[:100]!r} is not loaded here; GET /models lists the loaded models")
        self.used -= held.size
        if self._unloaded is not None:
            self._unloaded(held.ref)

    def listing(self) -> dict[str, Any]:
        return {"models": [{"modelName": m.name, "modelUrl": m.ref, "sizeBytes": m.size} for m in reversed(self.loaded.values())]}


# -- the worker's app ------------------------------------------------------------------


def attach(app: Any, channel: Any) -> None:
    """Make ``app`` (a ServingApp) a multi-model one: its invocations pick the target model."""
    from kiln.serving._app import _Variant

    mm = app.spec.multi_model
    assert mm is not None

    def fetch(ref: str) -> dict[str, Any]:
        if channel is None:
            raise KilnError("this worker has no channel to its supervisor: it cannot load models")
        return dict(channel.fetch(ref))

    def load(folder: str, trusted: bool, name: str) -> tuple[Any, int]:
        from kiln.serving._runtime import Servable

        start = time.perf_counter_ns()
        return Servable.load(folder, trusted=trusted, name=name), (time.perf_counter_ns() - start) // 1000

    def make_variant(ref: str, loaded: tuple[Any, int]) -> Any:
        servable, load_us = loaded
        variant = _Variant(ref, ref, servable, app.metrics.variant(ref))
        variant.counters.cold_starts += 1
        variant.counters.load_us += load_us
        if app.spec.batching is not None:
            from kiln.serving._batching import Batcher, batchable

            if batchable(servable):
                b = app.spec.batching
                variant.batcher = Batcher(app._batch_predict(variant), max_batch=b.max_batch, max_delay_ms=b.max_delay_ms, counters=variant.counters)
                app._batching = True
        return variant

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return asyncio.get_running_loop().run_in_executor(app._pool, fn, *args)

    app.mm = MultiModels(budget=mm.memory_mb << 20, allow=tuple(mm.allow), fetch=fetch, load=load, make_variant=make_variant, run=run)
    app._invocations = app._mm_invocations


async def models_api(
    app: Any, path: str, method: str, rid: bytes, h: dict[bytes, bytes], receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """SageMaker's multi-model server API: GET /models, POST /models, DELETE /models/{name}."""
    from urllib.parse import unquote

    from kiln.serving._app import _JSON, _Stop

    try:
        if path in ("/models", "/models/") and method == "GET":
            return await app._answer(send, 200, orjson.dumps(app.mm.listing()), _JSON, rid)
        if path in ("/models", "/models/") and method == "POST":
            body = await app._body(receive, h.get(b"content-length"))
            try:
                asked = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise InvalidArgument('POST /models takes JSON: {"model_name": NAME, "url": MODEL_REF}') from None
            if not isinstance(asked, dict) or not isinstance(asked.get("model_name"), str) or not isinstance(asked.get("url"), str):
                raise InvalidArgument('POST /models takes JSON: {"model_name": NAME, "url": MODEL_REF}')
            loaded = await app.mm.load(asked["model_name"], asked["url"], explicit=True)
            out = orjson.dumps({"status": f"model {loaded.name} loaded", "modelName": loaded.name, "modelUrl": loaded.ref})
            return await app._answer(send, 200, out, _JSON, rid)
        name = unquote(path[len("/models/"):]) if path.startswith("/models/") else ""
        if name and "/" not in name and method == "DELETE":
            app.mm.unload(name)
            return await app._answer(send, 200, orjson.dumps({"status": f"model {name} unloaded"}), _JSON, rid)
        if name and "/" not in name and method == "GET":
            held = app.mm.loaded.get(name)
            if held is None:
                raise NotFound(f"model {name[:100]!r} is not loaded here; GET /models lists the loaded models")
            return await app._answer(send, 200, orjson.dumps([{"modelName": held.name, "modelUrl": held.ref, "sizeBytes": held.size}]), _JSON, rid)
        raise NotFound(f"no route {method} {path[:200]}: the model API is GET /models, POST /models, GET or DELETE /models/NAME")
    except _Stop:
        return None
    except KilnError as exc:
        return await app._fail(send, rid, exc, close=isinstance(exc, PayloadTooLarge))
