"""A feature group's definition as the services work with it: the ``Group`` record, the
feature definitions checked on create and update, and derived features, computed by the
same DuckDB SQL online (here, one record at a time) and offline (in a training set)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from kiln.core._lazy import lazy
from kiln.core.errors import InvalidArgument
from kiln.features import _offline as off
from kiln.features._base import arrow_type, check_expression, check_feature_name, duck_type, normalise_type
from kiln.features._models import FeatureDefinition

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
else:
    duckdb = lazy("duckdb")
    pa = lazy("pyarrow")

__all__ = ["Group"]

_MAX_TAGS = 50
_derive_local = threading.local()


@dataclass(frozen=True)
class Group:
    """A feature group at one version, as the service works with it."""

    id: str
    name: str
    version: int
    latest_version: int
    record_id: str
    event_time: str
    features: dict[str, FeatureDefinition]
    description: str
    tags: dict[str, str]
    ttl_s: float | None
    online: bool
    created_at: float
    created_by: str
    updated_at: float
    source: dict[str, Any]

    @functools.cached_property
    def stored(self) -> dict[str, FeatureDefinition]:
        """The features kept in the stores (derived ones are computed when read)."""
        return {n: f for n, f in self.features.items() if f.expression is None and f.function is None}

    @functools.cached_property
    def derived(self) -> dict[str, FeatureDefinition]:
        return {n: f for n, f in self.features.items() if f.expression is not None or f.function is not None}

    @functools.cached_property
    def functions(self) -> dict[str, FeatureDefinition]:
        """The derived features a registered function computes."""
        return {n: f for n, f in self.features.items() if f.function is not None}

    @functools.cached_property
    def types(self) -> dict[str, str]:
        return {n: f.type for n, f in self.stored.items()}

    def arrow_schema(self) -> pa.Schema:
        fields = [pa.field(n, arrow_type(ty)) for n, ty in self.types.items()]
        fields += [pa.field("write_time", pa.timestamp("us", tz="UTC")), pa.field("api_invocation_time", pa.timestamp("us", tz="UTC")), pa.field("is_deleted", pa.bool_())]
        return pa.schema(fields)


def _check_function(value: Any, feature: str) -> str | None:
    """A function reference (``name`` or ``name@3``), checked as a name; whether it exists is
    checked when the group is created or changed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"derived feature {feature!r}: function must be a function name (name or name@3)", details={"field": feature})
    from kiln.core.names import parse_ref

    r = parse_ref(value, kind="function")
    if r.alias is not None:
        raise InvalidArgument(f"derived feature {feature!r}: functions have no aliases; use NAME or NAME@VERSION", details={"field": feature})
    return value


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _check_tags(tags: dict[str, str] | None) -> dict[str, str]:
    tags = dict(tags or {})
    if len(tags) > _MAX_TAGS:
        raise InvalidArgument(f"a feature group takes at most {_MAX_TAGS} tags")
    for k, v in tags.items():
        if not isinstance(k, str) or not 0 < len(k) <= 128 or not isinstance(v, str) or len(v) > 256:
            raise InvalidArgument(f"invalid tag {str(k)[:40]!r}: keys are 1-128 characters, values at most 256")
    return tags


def _definitions(features: Sequence[FeatureDefinition | dict[str, Any]], record_id: str, event_time: str) -> dict[str, FeatureDefinition]:
    out: dict[str, FeatureDefinition] = {}
    for item in features:
        spec = item.model_dump() if isinstance(item, FeatureDefinition) else dict(item) if isinstance(item, dict) else None
        if spec is None or "name" not in spec:
            raise InvalidArgument("each feature is {name, type[, description]}")
        name = check_feature_name(spec["name"])
        if name in out:
            raise InvalidArgument(f"feature {name!r} is defined twice", details={"field": name})
        out[name] = FeatureDefinition(name=name, type=normalise_type(spec.get("type"), feature=name), description=str(spec.get("description") or "")[:1000],
                                      expression=spec.get("expression") or None, function=_check_function(spec.get("function"), name))
        if out[name].expression is not None and out[name].function is not None:
            raise InvalidArgument(f"derived feature {name!r}: give an expression or a function, not both", details={"field": name})
    check_feature_name(record_id)
    check_feature_name(event_time)
    if record_id == event_time:
        raise InvalidArgument("the record identifier and the event time must be different features")
    if record_id not in out:
        raise InvalidArgument(f"the record identifier {record_id!r} is not among the features", details={"field": record_id})
    if out[record_id].type not in ("integral", "string"):
        raise InvalidArgument(f"the record identifier {record_id!r} must be integral or string, not {out[record_id].type}", details={"field": record_id})
    if event_time not in out:
        raise InvalidArgument(f"the event time {event_time!r} is not among the features", details={"field": event_time})
    if out[event_time].type not in ("timestamp", "fractional", "integral", "string"):
        raise InvalidArgument(f"the event time {event_time!r} must be a timestamp, Unix seconds or ISO-8601 text, not {out[event_time].type}", details={"field": event_time})
    stored = {n for n, d in out.items() if d.expression is None and d.function is None}
    for n, d in out.items():
        if d.expression is not None or d.function is not None:
            if n in (record_id, event_time):
                raise InvalidArgument(f"the record identifier and the event time cannot be derived ({n!r})", details={"field": n})
        if d.expression is not None:
            check_expression(d.expression, feature=n, names=stored)
    derived = {n: d for n, d in out.items() if d.expression is not None}
    if derived:  # bind the SQL once on nulls: a type error is refused now, not at the first read
        probe = Group(id="", name="probe", version=1, latest_version=1, record_id=record_id, event_time=event_time, features=out, description="", tags={},
                      ttl_s=None, online=True, created_at=0.0, created_by="", updated_at=0.0, source={})
        for n, d in derived.items():
            try:
                _derive(probe, {}, {n: d})
            except InvalidArgument as exc:
                raise InvalidArgument(f"derived feature {n!r}: {exc.message.split(': ', 1)[-1]}", details={"field": n}) from None
    # Offline and online, the event time is kept as a timestamp (UTC, microseconds).
    out[event_time] = out[event_time].model_copy(update={"type": "timestamp"})
    if len(out) > 2500:
        raise InvalidArgument("a feature group holds at most 2,500 features")
    return out


def _derive(g: Group, data: dict[str, Any], wanted: dict[str, FeatureDefinition]) -> dict[str, Any]:
    """Derived features of one online record, by the same SQL a training set runs (DuckDB, in
    memory, no file access)."""
    con = getattr(_derive_local, "con", None)
    if con is None:
        con = duckdb.connect(":memory:", config={"enable_external_access": False, "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
        _derive_local.con = con
    stored = g.stored
    inner = ", ".join(
        (f"make_timestamptz(CAST(round(CAST(? AS DOUBLE) * 1000000) AS BIGINT)) AS {off._q(n)}" if d.type == "timestamp" else f"CAST(? AS {duck_type(d.type)}) AS {off._q(n)}")
        for n, d in stored.items()
    )
    outer = ", ".join(
        (f"epoch_us(CAST(({d.expression}) AS TIMESTAMPTZ)) / 1e6" if d.type == "timestamp" else f"CAST(({d.expression}) AS {duck_type(d.type)})") + f" AS {off._q(n)}"
        for n, d in wanted.items()
    )
    try:
        row = con.execute(f"SELECT {outer} FROM (SELECT {inner})", [data.get(n) for n in stored]).fetchall()[0]
    except duckdb.Error as exc:
        raise InvalidArgument(f"derived features of {g.name!r} cannot be computed: {str(exc).splitlines()[0][:200]}") from None
    return dict(zip(wanted, row, strict=True))
