"""Dates: parse, extract parts, differences, truncation."""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from ._base import Env, OpSpec, check_new_name, columns_param, register
from ._errors import RecipeError
from ._params import Param
from ._schema import SchemaState

# Tried in order when no format is given; the one that parses the most values wins.
FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y%m%d",
    "%d %b %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%B %d, %Y",
)
PARTS = (
    "year",
    "quarter",
    "month",
    "day",
    "weekday",
    "day_of_year",
    "week",
    "hour",
    "minute",
    "second",
)
TIME_PARTS = ("hour", "minute", "second")
UNITS = {"weeks": 604800.0, "days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
_EVERY = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w|mo|q|y))+$")


def op_parse_datetime(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    target = pl.Date() if p["to"] == "date" else pl.Datetime("us")
    return df.with_columns(
        pl.col(c).str.strptime(target, fmt, strict=p["strict"])
        for c, fmt in zip(p["columns"], s["formats"])
    )


def _fit_parse(df: pl.DataFrame, p: dict) -> Any:
    if p["format"] is not None:
        return {"formats": [p["format"]] * len(p["columns"])}
    formats = []
    for name in p["columns"]:
        sample = df.get_column(name).drop_nulls().head(2000)
        best, best_count = None, 0
        for fmt in FORMATS:
            count = sample.str.strptime(pl.Datetime("us"), fmt, strict=False).count()
            if count > best_count:
                best, best_count = fmt, count
        if best is None and sample.len() > 0:
            raise ValueError(
                f'cannot tell the date format of column "{name}" '
                f'(e.g. {sample[0]!r}); give param "format"'
            )
        formats.append(best or FORMATS[0])
    return {"formats": formats}


def _schema_parse(sc: SchemaState, p: dict, env: Env) -> None:
    for name in p["columns"]:
        sc.add(name, pl.Date() if p["to"] == "date" else pl.Datetime("us"))


def date_part(col: pl.Expr, part: str) -> pl.Expr:
    """One calendar part of a date; weekday is ISO (Monday=1 ... Sunday=7)."""
    if part == "year":
        return col.dt.year()
    if part == "quarter":
        return col.dt.quarter()
    if part == "month":
        return col.dt.month()
    if part == "day":
        return col.dt.day()
    if part == "weekday":
        return col.dt.weekday()
    if part == "day_of_year":
        return col.dt.ordinal_day()
    if part == "week":
        return col.dt.week()
    if part == "hour":
        return col.dt.hour()
    if part == "minute":
        return col.dt.minute()
    return col.dt.second()


def op_date_parts(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    name = p["column"]
    prefix = name + "_" if p["prefix"] is None else p["prefix"]
    dtype, col = df.schema[name], pl.col(name)
    if (
        not (isinstance(dtype, pl.Datetime) and dtype.time_zone is None)
        or "__kiln_day__" in df.columns
    ):
        return df.with_columns(
            date_part(col, part).cast(pl.Int32).alias(prefix + part) for part in p["parts"]
        )
    # Naive datetimes: calendar parts from the date (computed once), clock parts by
    # arithmetic on the epoch; both much cheaper than per-part datetime decoding.
    micros = col.dt.epoch("us")
    clock = {"hour": (3_600_000_000, 24), "minute": (60_000_000, 60), "second": (1_000_000, 60)}
    out = df.with_columns(col.dt.date().alias("__kiln_day__"))
    exprs = []
    for part in p["parts"]:
        if part in clock:
            unit, wrap = clock[part]
            exprs.append((micros // unit % wrap).cast(pl.Int32).alias(prefix + part))
        else:
            exprs.append(
                date_part(pl.col("__kiln_day__"), part).cast(pl.Int32).alias(prefix + part)
            )
    return out.with_columns(exprs).drop("__kiln_day__")


def _schema_parts(sc: SchemaState, p: dict, env: Env) -> None:
    name = p["column"]
    prefix = name + "_" if p["prefix"] is None else p["prefix"]
    bad = [x for x in p["parts"] if x not in PARTS]
    if bad or not p["parts"]:
        raise RecipeError(
            f'param "parts": unknown part {bad[0] if bad else "(none)"!r}; '
            f"parts are: {', '.join(PARTS)}",
            details={"param": "parts"},
        )
    if sc.columns.get(name) == pl.Date and any(x in TIME_PARTS for x in p["parts"]):
        raise RecipeError(
            f'column "{name}" is a date: it has no hour, minute or second',
            details={"param": "parts"},
        )
    for part in p["parts"]:
        check_new_name(sc, prefix + part, param="prefix")
        sc.add(prefix + part, pl.Int32())


def op_date_diff(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    start = pl.col(p["start"]).cast(pl.Datetime("us"))
    if p["end"] is not None:
        end = pl.col(p["end"]).cast(pl.Datetime("us"))
    else:
        end = pl.lit(p["reference"]).str.to_datetime(time_unit="us")
    seconds = {
        "weeks": 604800.0,
        "days": 86400.0,
        "hours": 3600.0,
        "minutes": 60.0,
        "seconds": 1.0,
    }[p["unit"]]
    micros = (end - start).dt.total_microseconds().cast(pl.Float64)
    return df.with_columns((micros / (seconds * 1e6)).alias(p["output"]))


def _schema_diff(sc: SchemaState, p: dict, env: Env) -> None:
    if (p["end"] is None) == (p["reference"] is None):
        raise RecipeError(
            'give exactly one of "end" (a column) and "reference" (an ISO date)',
            details={"param": "end"},
        )
    if p["reference"] is not None:
        try:
            pl.select(pl.lit(p["reference"]).str.to_datetime(time_unit="us"))
        except pl.exceptions.PolarsError:
            raise RecipeError(
                f'param "reference": {p["reference"]!r} is not an ISO date or datetime',
                details={"param": "reference"},
            ) from None
    check_new_name(sc, p["output"])
    sc.add(p["output"], pl.Float64())


def op_date_truncate(df: pl.DataFrame, p: dict, s: Any) -> pl.DataFrame:
    return df.with_columns(pl.col(c).dt.truncate(p["every"]) for c in p["columns"])


def _schema_truncate(sc: SchemaState, p: dict, env: Env) -> None:
    if not _EVERY.match(p["every"]):
        raise RecipeError(
            f'param "every": {p["every"]!r} is not a duration such as 1d, 1w, 1mo, 1q, 1y, 6h, 15m',
            details={"param": "every"},
        )


_TEMPORAL = Param("column", "column", required=True, col_kind="temporal")

register(
    OpSpec(
        "parse_datetime",
        "dates",
        "Parse strings into dates or datetimes; without a format, the format is learned at fit.",
        (
            columns_param("string"),
            Param("format", "str", doc="strftime format, e.g. %d/%m/%Y"),
            Param("to", "choice", default="datetime", choices=("datetime", "date")),
            Param(
                "strict", "bool", default=False, doc="fail on values that do not parse (else null)"
            ),
        ),
        op_parse_datetime,
        _schema_parse,
        fit=_fit_parse,
        rowwise=True,
    )
)
register(
    OpSpec(
        "date_parts",
        "dates",
        "Add calendar parts (year, month, day, weekday, hour...) as columns.",
        (
            _TEMPORAL,
            Param("parts", "list", default=["year", "month", "day"], doc=", ".join(PARTS)),
            Param("prefix", "str", doc="prefix of the new columns (default: column_)"),
        ),
        op_date_parts,
        _schema_parts,
        rowwise=True,
    )
)
register(
    OpSpec(
        "date_diff",
        "dates",
        "Add end - start in a unit (fractional), end a column or a fixed date.",
        (
            Param("start", "column", required=True, col_kind="temporal"),
            Param("end", "column", col_kind="temporal"),
            Param("reference", "str", doc="ISO date used as the end when no end column is given"),
            Param("unit", "choice", default="days", choices=tuple(UNITS)),
            Param("output", "name", required=True),
        ),
        op_date_diff,
        _schema_diff,
        rowwise=True,
    )
)
register(
    OpSpec(
        "date_truncate",
        "dates",
        "Truncate dates to a period start (1d, 1w, 1mo, 1q, 1y...).",
        (columns_param("temporal"), Param("every", "str", required=True)),
        op_date_truncate,
        _schema_truncate,
        rowwise=True,
    )
)
