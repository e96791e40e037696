"""Functions inside their worker process (:class:`kiln.core.worker.Worker`'s child): load
the handler once, then call it, Lambda's way, for each event or each row of a batch.

The child keeps the handler loaded in its state for as long as it lives, so a warm
worker pays the import once. Whatever the user's code raises comes back as a
:class:`~kiln.core.errors.FunctionError` whose message is ``Type: message`` and whose
details carry the traceback of the user's frames; the child itself lives on.

Imported by the child alone: it keeps to the standard library and orjson.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import orjson

from kiln.core.errors import FunctionError

__all__ = ["LambdaContext", "invoke", "load", "map_rows"]

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_HERE = os.path.abspath(__file__)


class LambdaContext:
    """The ``context`` a handler gets, with the names AWS Lambda's Python runtime gives it."""

    def __init__(self, *, name: str, version: int, request_id: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = name
        self.function_version = str(version)
        self.invoked_function_arn = f"arn:kiln:functions:local:{name}:{version}"
        # A string, as Lambda's runtime gives it (it reads an environment variable).
        self.memory_limit_in_mb = str(memory_mb)
        self.aws_request_id = request_id
        self.log_group_name = f"/kiln/functions/{name}"
        self.log_stream_name = f"{name}/{version}/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the call's time limit."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _user_frames(tb: Any) -> Any:
    """The traceback from the first frame of the user's code (not this module's, not importlib's)."""
    while tb is not None and (tb.tb_frame.f_code.co_filename == _HERE or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")):
        tb = tb.tb_next
    return tb


def _user_error(exc: BaseException, *, prefix: str = "", **details: Any) -> FunctionError:
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    lines = traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__))
    return FunctionError(prefix + message, details={"type": type(exc).__name__, "traceback": "".join(lines)[-20_000:], **details})


def _handler(state: dict[str, Any], args: dict[str, Any]) -> tuple[Callable[..., Any], bool]:
    """The handler, imported on the first call and kept; and whether it takes one parameter."""
    key = (args["code_dir"], args["handler"])
    if state.get("key") == key:
        return state["fn"], state["one"]
    code_dir = str(args["code_dir"])
    name, version = str(args["name"]), int(args["version"])
    os.environ.update({
        "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": str(version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(args["memory_mb"]), "LAMBDA_TASK_ROOT": code_dir,
        **{str(k): str(v) for k, v in (args.get("environment") or {}).items()},
    })
    os.chdir(code_dir)  # as Lambda's /var/task: files beside the code open by relative path
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    module_name, _, attr = str(args["handler"]).partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module failed to load
        raise _user_error(exc, prefix=f"handler {args['handler']} could not be loaded: ") from None
    if not callable(fn):
        raise FunctionError(f"handler {args['handler']} is a {type(fn).__name__}, not a function")
    state.update(key=key, fn=fn, one=_takes_one(fn))
    return fn, state["one"]


def _takes_one(fn: Callable[..., Any]) -> bool:
    """Whether to call ``fn(event)`` rather than ``fn(event, context)``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1


def _call(fn: Callable[..., Any], one: bool, event: Any, context: LambdaContext) -> Any:
    result = fn(event) if one else fn(event, context)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    return result


async def _wait(awaitable: Any) -> Any:
    return await awaitable


def _context(args: dict[str, Any], request_id: str) -> LambdaContext:
    return LambdaContext(name=str(args["name"]), version=int(args["version"]), request_id=request_id,
                         memory_mb=int(args["memory_mb"]), timeout_s=float(args["timeout_s"]))


def load(state: dict[str, Any], args: dict[str, Any], _: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """Import the handler (a cold start), under a time limit of its own."""
    _handler(state, args)
    return {"pid": os.getpid()}, []


def invoke(state: dict[str, Any], args: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """Call the handler with the event in ``blobs[0]`` (JSON); its result comes back as JSON."""
    fn, one = _handler(state, args)
    event = orjson.loads(blobs[0]) if blobs and blobs[0] else None
    try:
        result = _call(fn, one, event, _context(args, str(args["request_id"])))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's error, reported with its traceback
        raise _user_error(exc) from None
    try:
        return {}, [orjson.dumps(result, option=_JSON)]
    except TypeError as exc:
        raise FunctionError(f"the handler returned a value JSON cannot hold ({exc})", details={"type": type(result).__name__}) from None


def map_rows(state: dict[str, Any], args: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """Call the handler once per row of a batch (``blobs[0]``, a JSON list of objects).

    A dict result is one output row, a list of dicts several, None drops the row. The
    first row whose call raises ends the batch with that row's index and traceback.
    """
    fn, one = _handler(state, args)
    rows = orjson.loads(blobs[0])
    first = int(args.get("first_row", 0))
    out: list[Any] = []
    for i, row in enumerate(rows):
        index = first + i
        try:
            result = _call(fn, one, row, _context(args, f"{args['request_id']}-{index}"))
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's error, reported with its row
            raise _user_error(exc, prefix=f"row {index}: ", row=index) from None
        if result is None:
            continue
        if isinstance(result, dict):
            out.append(result)
        elif isinstance(result, list) and all(isinstance(r, dict) for r in result):
            out.extend(result)
        else:
            raise FunctionError(
                f"row {index}: the handler returned a {type(result).__name__}; a map's handler returns a dict (one row), "
                "a list of dicts (several rows) or None (the row is dropped)", details={"row": index},
            )
    try:
        return {"rows": len(out)}, [orjson.dumps(out, option=_JSON)]
    except TypeError as exc:
        raise FunctionError(f"rows {first}-{first + len(rows) - 1}: the handler returned values JSON cannot hold ({exc})") from None
