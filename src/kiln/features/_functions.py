"""Derived features computed by a registered Kiln function (``FeatureDefinition.function``).

The function runs in Kiln's function workers (:mod:`kiln.jobs._function_pool`), never in the
process that reads, whether that is the API server (a GET or POST of the feature server) or a
local SDK: one code path for both, so offline and online get the same values. The handler gets
``{"records": [{feature: value, ...}, ...]}`` (every stored feature; timestamps as Unix
seconds, as the online store keeps them) and returns a list with one value per record, which
is coerced to the feature's type. The feature's role check is the read's: the group's editor
chose the function when they defined the feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from kiln.core.context import Context
from kiln.core.errors import FunctionError, InvalidArgument, NotFound
from kiln.core.workspace import Workspace
from kiln.features._base import coerce_value
from kiln.features._models import FeatureDefinition

if TYPE_CHECKING:
    from kiln.features._group import Group

__all__ = ["BATCH", "call_function", "check_functions_exist"]

BATCH = 1000  # records per call: a call's event stays well under KILN_MAX_REQUEST_MB


def _function(ws: Workspace, ctx: Context, ref: str) -> Any:
    from kiln.jobs._functions import FunctionService

    try:
        return FunctionService(ws, ctx).get(name=ref)
    except NotFound:
        raise InvalidArgument(f"function {ref!r} does not exist; `kiln functions create` registers it") from None


def check_functions_exist(ws: Workspace, ctx: Context, defs: dict[str, FeatureDefinition]) -> None:
    """Refuse a definition naming a function that is not registered (at create and update)."""
    for n, d in defs.items():
        if d.function is not None:
            try:
                _function(ws, ctx, d.function)
            except InvalidArgument as exc:
                raise InvalidArgument(f"derived feature {n!r}: {exc.message}", details={"field": n}) from None


def call_function(ws: Workspace, ctx: Context, g: Group, d: FeatureDefinition, records: list[dict[str, Any] | None]) -> list[Any]:
    """The feature's values for ``records`` (None stays None), from the function's workers.

    Raises:
        FunctionError: the handler raised, crashed or ran past its time.
        InvalidArgument: it returned something else than one value of the feature's type per record.
    """
    from kiln.jobs._function_pool import pools_for
    from kiln.jobs._functions import spec_of
    from kiln.jobs._service import require_user_code

    assert d.function is not None
    require_user_code(ws)
    fn = _function(ws, ctx, d.function)
    out: list[Any] = [None] * len(records)
    todo = [i for i, r in enumerate(records) if r is not None]
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        event = orjson.dumps({"records": [records[i] for i in chunk]}, option=orjson.OPT_SERIALIZE_NUMPY)
        got = orjson.loads(pools_for(ws).invoke(spec_of(fn), event))
        if not isinstance(got, list) or len(got) != len(chunk):
            what = f"a list of {len(got)}" if isinstance(got, list) else type(got).__name__
            raise FunctionError(f"function {fn.ref} returned {what} for {len(chunk)} records of feature {d.name!r} ({g.name}); return one value per record")
        for i, value in zip(chunk, got, strict=True):
            try:
                out[i] = coerce_value(value, d.type, field=d.name)
            except InvalidArgument as exc:
                raise FunctionError(f"function {fn.ref} returned a bad value for feature {d.name!r} ({g.name}): {exc.message}") from None
    return out
