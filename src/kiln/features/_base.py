"""The feature store's small shared rules: feature types, names, times, records, and the
online store interface with its registry of backends (chosen by URL scheme)."""

from __future__ import annotations

import datetime as dt
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kiln.core.errors import InvalidArgument

__all__ = [
    "FEATURE_TYPES",
    "RESERVED",
    "BulkBatch",
    "Capabilities",
    "OnlineRow",
    "OnlineStore",
    "arrow_type",
    "check_feature_name",
    "feature_type_of",
    "open_online_store",
    "parse_duration",
    "parse_time",
    "register_online_store",
]

# integral, fractional, string, boolean, timestamp, and a list of numbers (a vector).
FEATURE_TYPES = ("integral", "fractional", "string", "boolean", "timestamp", "vector")
_ALIASES = {"int": "integral", "integer": "integral", "bigint": "integral", "float": "fractional", "double": "fractional",
            "str": "string", "varchar": "string", "bool": "boolean", "datetime": "timestamp", "list": "vector"}
# Columns every offline row carries (SageMaker's names); no feature may take them.
RESERVED = ("write_time", "api_invocation_time", "is_deleted")
_FEATURE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_BATCH = 10_000


def check_feature_name(name: Any) -> str:
    """A feature name: a letter, then letters, digits or '_' (64 at most); not a reserved column."""
    if not isinstance(name, str) or not _FEATURE_NAME.fullmatch(name):
        raise InvalidArgument(f"invalid feature name {str(name)[:80]!r}: use a letter, then up to 63 letters, digits or '_'", details={"field": str(name)[:80]})
    if name.lower() in RESERVED:
        raise InvalidArgument(f"feature name {name!r} is reserved for the offline store's own columns ({', '.join(RESERVED)})", details={"field": name})
    return name


def normalise_type(type_name: Any, *, feature: str = "") -> str:
    """A feature type from its name (``Integral``, ``int``, ``vector``...)."""
    text = str(type_name).strip().lower() if isinstance(type_name, str) else ""
    text = _ALIASES.get(text, text)
    if text not in FEATURE_TYPES:
        raise InvalidArgument(f"unknown type {str(type_name)[:40]!r} for feature {feature!r}: use one of {', '.join(FEATURE_TYPES)}", details={"field": feature})
    return text


def feature_type_of(arrow_type: Any) -> str | None:
    """The feature type of an Arrow column type, or None when no feature type holds it."""
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_boolean(arrow_type):
        return "boolean"
    if pt.is_integer(arrow_type):
        return "integral"
    if pt.is_floating(arrow_type) or pt.is_decimal(arrow_type):
        return "fractional"
    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type) or pt.is_dictionary(arrow_type) and pt.is_string(arrow_type.value_type):
        return "string"
    if pt.is_timestamp(arrow_type) or pt.is_date(arrow_type):
        return "timestamp"
    if isinstance(arrow_type, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        value = arrow_type.value_type
        if pt.is_integer(value) or pt.is_floating(value):
            return "vector"
    return None


def arrow_type(feature_type: str) -> Any:
    """The Arrow type a feature is stored as offline."""
    import pyarrow as pa

    return {
        "integral": pa.int64(), "fractional": pa.float64(), "string": pa.string(), "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"), "vector": pa.list_(pa.float64()),
    }[feature_type]


def duck_type(feature_type: str) -> str:
    return {"integral": "BIGINT", "fractional": "DOUBLE", "string": "VARCHAR", "boolean": "BOOLEAN",
            "timestamp": "TIMESTAMPTZ", "vector": "DOUBLE[]"}[feature_type]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: Any, *, what: str = "ttl") -> float | None:
    """Seconds from ``7d``, ``12h``, ``30m``, ``90s`` or a number of seconds; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid {what} {value!r}: use seconds or a duration such as 7d, 12h, 30m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.fullmatch(str(value).strip().lower())
        if m is None:
            raise InvalidArgument(f"invalid {what} {str(value)[:40]!r}: use seconds or a duration such as 7d, 12h, 30m, 90s")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 100 * 365 * 86400:
        raise InvalidArgument(f"invalid {what} {value!r}: it must be positive and at most 100 years")
    return seconds


_MIN_T, _MAX_T = 0.0, 253402300799.0  # 1970-01-01 .. 9999-12-31


def parse_time(value: Any, *, field: str = "event_time") -> float:
    """Unix seconds from a number, or from ISO-8601 with a zone (``2024-05-01T12:00:00Z``)."""
    if isinstance(value, bool) or value is None:
        raise InvalidArgument(f"{field} is missing or not a time: give Unix seconds or ISO-8601 with a zone", details={"field": field})
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidArgument(f"{field} {value.isoformat()!r} has no time zone: add Z or an offset", details={"field": field})
        t = value.timestamp()
    elif isinstance(value, str):
        text = value.strip()
        try:
            t = float(text)
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise InvalidArgument(f"{field} {text[:40]!r} is not a time: give Unix seconds or ISO-8601 with a zone (2024-05-01T12:00:00Z)", details={"field": field}) from None
            if parsed.tzinfo is None:
                raise InvalidArgument(f"{field} {text[:40]!r} has no time zone: add Z or an offset", details={"field": field})
            t = parsed.timestamp()
    else:
        raise InvalidArgument(f"{field} must be Unix seconds or ISO-8601 text, not {type(value).__name__}", details={"field": field})
    if not math.isfinite(t) or not _MIN_T <= t <= _MAX_T:
        raise InvalidArgument(f"{field} {value!r} is out of range (1970 to 9999)", details={"field": field})
    return t


def coerce_value(value: Any, feature_type: str, *, field: str) -> Any:
    """A record's value as its feature type (strings parsed, as SageMaker's ValueAsString);
    None stays None. Raises InvalidArgument naming the field."""
    if value is None:
        return None
    try:
        if feature_type == "integral":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int):
                out: Any = value
            elif isinstance(value, float) and value.is_integer():
                out = int(value)
            elif isinstance(value, str):
                out = int(value.strip())
            else:
                raise ValueError
            if not -(2**63) <= out < 2**63:
                raise ValueError
            return out
        if feature_type == "fractional":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str):
                return float(value.strip())
            raise ValueError
        if feature_type == "string":
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            raise ValueError
        if feature_type == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
            raise ValueError
        if feature_type == "timestamp":
            return parse_time(value, field=field)
        if feature_type == "vector":
            if isinstance(value, str):
                import orjson

                value = orjson.loads(value)
            if not isinstance(value, list | tuple):
                raise ValueError
            return [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else _bad() for v in value]
    except (ValueError, TypeError, OverflowError):  # orjson's JSONDecodeError is a ValueError
        pass
    shown = repr(value)[:60]
    raise InvalidArgument(f"feature {field!r} must be {feature_type}, got {shown}", details={"field": field})


def _bad() -> Any:
    raise ValueError


# -- derived features ---------------------------------------------------------------------

# SQL a derived feature may use: its group's features, literals, operators and these
# functions. Nothing else (no table functions, no files, no subqueries) gets through.
_FUNCTIONS = frozenset({
    "abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log", "log2", "log10", "power", "pow", "sign", "greatest", "least",
    "coalesce", "nullif", "lower", "upper", "length", "trim", "concat", "substr", "substring", "strpos", "contains", "starts_with",
    "ends_with", "epoch", "year", "month", "day", "hour", "minute", "dayofweek", "list_sum", "list_avg", "list_min", "list_max",
    "len", "list_dot_product", "list_cosine_similarity", "cast", "try_cast",
})
_KEYWORDS = frozenset({"case", "when", "then", "else", "end", "and", "or", "not", "is", "null", "true", "false", "in", "between", "as",
                       "bigint", "double", "varchar", "boolean", "integer", "timestamptz", "like"})
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><>|!=|<=|>=|\|\||[-+*/%()<>=,\[\]]))")


def check_expression(expression: Any, *, feature: str, names: set[str]) -> str:
    """A derived feature's SQL, checked token by token: names of ``names``, literals,
    operators and a small set of functions only."""
    if not isinstance(expression, str) or not expression.strip() or len(expression) > 2000:
        raise InvalidArgument(f"derived feature {feature!r} needs an expression of at most 2000 characters", details={"field": feature})
    pos = 0
    text = expression.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidArgument(f"derived feature {feature!r}: cannot read the expression at {text[pos:pos + 20]!r}", details={"field": feature})
        ident = m.group("ident")
        if ident is not None:
            low = ident.lower()
            following = text[m.end():].lstrip()[:1]
            if following == "(" and low not in _FUNCTIONS:
                raise InvalidArgument(f"derived feature {feature!r}: function {ident!r} is not allowed (use {', '.join(sorted(_FUNCTIONS)[:12])}...)", details={"field": feature})
            if following != "(" and low not in _KEYWORDS and ident not in names:
                raise InvalidArgument(f"derived feature {feature!r}: {ident!r} is not a stored feature of the group", details={"field": feature})
        pos = m.end()
    return text


# -- the online store -------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineRow:
    """One record as the online store holds it (``data`` None: soft-deleted)."""

    record_id: str
    event_time: float
    expires_at: float | None
    data: bytes | None


@dataclass(frozen=True)
class Capabilities:
    """What a backend does natively (callers read these; nothing raises NotImplementedError)."""

    native_expiry: bool  # expired records vanish by themselves (Redis)
    shared: bool  # several processes and machines see one store
    atomic_bulk: bool = False  # write_bulk applies every batch in one transaction (readers see all of it or none)


# One batch of a bulk load, as columns: record ids, event times, expiry times (None: never),
# data (None: soft-deleted). Columns, not OnlineRow objects: a million of those cost a second.
BulkBatch = tuple[Sequence[str], Sequence[float], Sequence[float | None], Sequence[bytes | None]]


class OnlineStore(ABC):
    """The latest record per id of each feature group.

    Every write is conditional, SageMaker's rule: a record replaces the stored one only when
    its event time is not older; a batch is applied whole or not at all.
    """

    capabilities: ClassVar[Capabilities]

    @abstractmethod
    def write(self, group: str, rows: Sequence[OnlineRow], *, hard_delete: bool = False) -> int:
        """Put ``rows`` (or remove them, ``hard_delete``) where not older than what is stored;
        returns how many changed the store."""

    @abstractmethod
    def read(self, group: str, record_ids: Sequence[str], *, now: float) -> list[OnlineRow | None]:
        """The stored rows of ``record_ids`` in order: None where absent or expired at ``now``."""

    @abstractmethod
    def drop(self, group: str) -> None:
        """Remove every record of ``group``."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def write_bulk(self, group: str, batches: Iterable[BulkBatch], *, before_commit: Callable[[], None] | None = None) -> int:
        """A materialisation: put every batch's rows (conditional writes, as :meth:`write`);
        returns how many changed the store. A store whose capabilities say ``atomic_bulk``
        applies all batches in one transaction, calling ``before_commit`` (which may raise)
        last, so a reader sees none of the load or all of it and a failure part-way (an
        exception from ``batches`` or ``before_commit`` too) leaves the store as it was; the
        others apply each batch whole, one after another, and call ``before_commit`` at the end."""
        changed = 0
        for ids, times, expires, data in batches:
            changed += self.write(group, [OnlineRow(*r) for r in zip(ids, times, expires, data, strict=True)])
        if before_commit is not None:
            before_commit()
        return changed

    def purge_expired(self, *, now: float, limit: int = 10_000) -> int:
        """Remove up to ``limit`` records expired at ``now``; returns how many went. Reads never
        return an expired record either way: this only gives the space back. A store with
        ``native_expiry`` has nothing to purge."""
        return 0


_BACKENDS: dict[str, Callable[[str], OnlineStore]] = {}


def register_online_store(scheme: str, factory: Callable[[str], OnlineStore]) -> None:
    """Register an online store backend for a URL scheme (built-ins register the same way)."""
    _BACKENDS[scheme] = factory


def open_online_store(url: str) -> OnlineStore:
    """The online store ``url`` names: ``sqlite:///path``, ``redis://host:6379/0``, ``postgresql://...``."""
    from kiln.features import _online  # noqa: F401 - registers the built-ins

    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    factory = _BACKENDS.get(scheme)
    if factory is None:
        raise InvalidArgument(f"unsupported online store URL {url[:80]!r}: use sqlite:///path, redis://host:6379/0 or postgresql://user@host/db (known: {sorted(_BACKENDS)})")
    return factory(url)
