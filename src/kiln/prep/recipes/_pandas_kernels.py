"""pandas versions of the op kernels, for ``export_python(..., engine="pandas")``.

They run only inside exported scripts, on frames read with
``dtype_backend="pyarrow"`` (Arrow-backed columns, so nulls and NaN stay
apart as in the engine), and mirror the polars kernels step for step. Like
those, they are copied verbatim into scripts: only ``pd``, ``np``, ``math``,
``re`` and helpers of this module.
"""

from __future__ import annotations

import math  # noqa: F401  (exported helpers may use it)
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ._pandas_sql import sql_cast, sql_column, sql_series


def arrow_type(col: pd.Series) -> str:
    """The Arrow type name of a column (``double``, ``int64``, ``large_string``...)."""
    return str(getattr(col.dtype, "pyarrow_dtype", col.dtype))


def is_int(col: pd.Series) -> bool:
    return arrow_type(col) in (
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
    )


def plain(col: pd.Series) -> pd.Series:
    """Dictionary (categorical) columns are handled as strings."""
    return col.astype("large_string[pyarrow]") if arrow_type(col).startswith("dictionary") else col


def to_float(col: pd.Series) -> pd.Series:
    return col if arrow_type(col) in ("double", "float") else col.astype("double[pyarrow]")


def missing_mask(col: pd.Series) -> np.ndarray:
    """Null, or NaN in a float column."""
    mask = np.array(col.isna(), dtype=bool)
    if arrow_type(col) in ("double", "float"):
        mask |= np.isnan(col.to_numpy(dtype=float, na_value=0.0))
    return mask


def nan_to_null(col: pd.Series) -> pd.Series:
    if arrow_type(col) in ("double", "float"):
        return col.mask(np.isnan(col.to_numpy(dtype=float, na_value=0.0)))
    return col


def keep_nan(result: pd.Series, raw: pd.Series) -> pd.Series:
    """pandas turns NaN into null in Arrow arithmetic; put NaN inputs back as they were."""
    if arrow_type(raw) not in ("double", "float"):
        return result
    nan = np.isnan(raw.to_numpy(dtype=float, na_value=0.0))
    return result.where(~nan, raw.astype(result.dtype)) if nan.any() else result


def value_like(value: Any, col: pd.Series) -> Any:
    """A fill value for ``col``; dates travel as ISO strings in the state."""
    kind = arrow_type(col)
    if isinstance(value, str) and kind.startswith("date32"):
        return pd.Timestamp(value).date()
    if isinstance(value, str) and kind.startswith("timestamp"):
        return pd.Timestamp(value)
    return value


def pd_select_columns(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df[p["columns"]]


def pd_drop_columns(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.drop(columns=p["columns"])


def pd_rename_columns(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.rename(columns=p["mapping"])


def pd_reorder_columns(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    first = p["columns"]
    return df[first + [c for c in df.columns if c not in first]]


def pd_cast_one(col: pd.Series, dtype: str, strict: bool) -> pd.Series:
    """Cast one column as the engine does (``dtype`` is a Kiln dtype name)."""
    names = {
        "int": "Int64", "integer": "Int64", "long": "Int64", "float": "Float64", "double": "Float64",
        "bool": "Boolean", "boolean": "Boolean", "str": "String", "string": "String",
        "utf8": "String", "text": "String", "category": "Categorical", "categorical": "Categorical",
        "date": "Date", "datetime": "Datetime", "timestamp": "Datetime",
    }  # fmt: skip
    n = dtype.strip().lower().replace(" ", "")
    name = names.get(n) or (n[0].upper() + n[1:] if re.fullmatch(r"u?int\d+|float\d+", n) else n)
    name = "UInt" + name[4:] if name.startswith("Uint") else name
    text = arrow_type(col) in ("string", "large_string") or arrow_type(col).startswith("dict")
    if name == "Categorical":
        return plain(col).astype(pd.ArrowDtype(pa.dictionary(pa.uint32(), pa.large_string())))
    if name == "Boolean" and text:
        raise ValueError("the engine cannot cast text to bool either")
    if name in ("Date", "Datetime") or n.startswith(("datetime", "timestamp")):
        unit, tz = "us", None
        found = re.fullmatch(r"(?:datetime|timestamp|datetime64)\[(\w+)(?:,(.+))?\]", n)
        if found:
            unit, tz = found.group(1), dtype.replace(" ", "").split(",")[1][:-1] if found.group(2) else None
        if text:
            values = plain(col).to_numpy(dtype=object, na_value=None)
            parsed = pd.to_datetime(
                pd.Series(values, index=col.index), format="ISO8601", errors="raise" if strict else "coerce"
            )
            col = parsed.astype("timestamp[us][pyarrow]")
        target = pa.date32() if name == "Date" else pa.timestamp(unit, tz)
        return col.astype(pd.ArrowDtype(target))
    if name in ("Float64", "Float32", "String", "Boolean") or re.fullmatch(r"U?Int\d+", name):
        return sql_series(sql_cast(sql_column(col), name, strict), col.index).astype(
            pd.ArrowDtype(pa.large_string()) if name == "String" else pd.ArrowDtype(
                {"Float64": pa.float64(), "Float32": pa.float32(), "Boolean": pa.bool_()}.get(name)
                or getattr(pa, name.lower())()
            )
        )
    return col.astype(pd.ArrowDtype(pa.type_for_alias(n)))


def pd_cast(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(**{c: pd_cast_one(df[c], p["dtype"], p["strict"]) for c in p["columns"]})


def pd_drop_missing(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    flags = np.column_stack([missing_mask(df[c]) for c in (p["columns"] or list(df.columns))])
    keep = ~flags.any(axis=1) if p["how"] == "any" else ~flags.all(axis=1)
    return df[keep].reset_index(drop=True)


def pd_fill_missing(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    out = {}
    for i, name in enumerate(p["columns"]):
        col = nan_to_null(df[name])
        value = p["value"] if s is None else s["values"][i]
        if is_int(col) and (p["strategy"] in ("mean", "median") or isinstance(value, float)):
            col = col.astype("double[pyarrow]")
        if value is not None:
            col = col.fillna(value_like(value, col))
        out[name] = col
    return df.assign(**out)


def pd_forward_fill(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(**{c: df[c].ffill(limit=p["limit"]) for c in p["columns"]})


def pd_backward_fill(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(**{c: df[c].bfill(limit=p["limit"]) for c in p["columns"]})


def pd_missing_indicator(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(
        **{
            c + p["suffix"]: pd.Series(missing_mask(df[c]), index=df.index, dtype="bool[pyarrow]")
            for c in p["columns"]
        }
    )


def pd_drop_duplicates(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    keep = {"first": "first", "last": "last", "none": False}[p["keep"]]
    return df.drop_duplicates(subset=p["columns"], keep=keep).reset_index(drop=True)


def pd_clip(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    lower, upper = p["lower"], p["upper"]
    out = {}
    for name in p["columns"]:
        col = df[name]
        if is_int(col) and (isinstance(lower, float) or isinstance(upper, float)):
            col = col.astype("double[pyarrow]")
        out[name] = keep_nan(col.clip(lower, upper), df[name])
    return df.assign(**out)


def pd_clip_quantiles(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(
        **{
            c: keep_nan(to_float(df[c]).clip(lo, hi), df[c])
            for c, (lo, hi) in zip(p["columns"], s["bounds"])
        }
    )


def pd_within(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    keep = np.ones(len(df), dtype=bool)
    for name, (lo, hi) in zip(p["columns"], s["bounds"]):
        col = df[name]
        x = col.to_numpy(dtype=float, na_value=np.nan)
        inside = np.ones(len(df), dtype=bool)
        with np.errstate(invalid="ignore"):
            if lo is not None:
                inside &= x >= lo
            if hi is not None:
                inside &= x <= hi
        keep &= inside | col.isna().to_numpy(dtype=bool)
    return df[keep].reset_index(drop=True)


def pd_remove_outliers_iqr(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_within(df, p, s)


def pd_remove_outliers_std(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_within(df, p, s)


def pd_sort_rows(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    out = df.sort_values(
        p["columns"],
        ascending=not p["descending"],
        kind="stable",
        na_position="last" if p["nulls_last"] else "first",
    )
    return out.reset_index(drop=True)


def pd_sample(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    size = p["n"] if p["n"] is not None else round(p["fraction"] * len(df))
    if not p["replace"]:
        size = min(size, len(df))
    if len(df) == 0:
        return df
    rng = np.random.default_rng(p["seed"])
    return df.iloc[np.sort(rng.choice(len(df), size=size, replace=p["replace"]))].reset_index(
        drop=True
    )


def pd_row_groups(df: pd.DataFrame, column: str) -> list[np.ndarray]:
    """Row positions of each value of ``column``, values in sorted order (nulls first)."""
    values = plain(df[column]).to_numpy(dtype=object, na_value=None)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    rank = np.zeros(len(uniques) + 1, dtype=np.int64)  # rank 0: the null group
    for r, i in enumerate(sorted(range(len(uniques)), key=lambda i: uniques[i])):
        rank[i + 1] = r + 1
    keys = rank[codes + 1]
    counts = np.bincount(keys, minlength=len(uniques) + 1)
    groups = np.split(np.argsort(keys, kind="stable"), np.cumsum(counts)[:-1])
    return [g for g in groups if len(g)]


def pd_balance(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    groups = pd_row_groups(df, p["column"])
    if not groups:
        return df
    rng = np.random.default_rng(p["seed"])
    sizes = [len(g) for g in groups]
    parts = []
    if p["strategy"] == "oversample":
        for rows in groups:
            parts += [rows, rng.choice(rows, size=max(sizes) - len(rows), replace=True)]
    else:
        for rows in groups:
            parts.append(rng.choice(rows, size=min(sizes), replace=False))
    return df.iloc[np.sort(np.concatenate(parts))].reset_index(drop=True)


def pd_split(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    names = list(p["parts"])
    fractions = np.array([p["parts"][k] for k in names], dtype=np.float64)
    cuts = np.cumsum(fractions) / fractions.sum()
    if p["stratify"] is None:
        groups = [np.arange(len(df), dtype=np.int64)]
    else:
        groups = pd_row_groups(df, p["stratify"])
    codes = np.zeros(len(df), dtype=np.int64)
    rng = np.random.default_rng(p["seed"])
    for rows in groups:
        order = rng.permutation(rows)
        start = 0
        for code, end in enumerate(np.round(cuts * len(rows)).astype(np.int64)):
            codes[order[start:end]] = code
            start = end
    labels = pd.Series(
        np.array(names, dtype=object)[codes], index=df.index, dtype="large_string[pyarrow]"
    )
    out = df.assign(**{p["output"]: labels})
    if p["keep"] is not None:
        out = out[(labels == p["keep"]).to_numpy(dtype=bool)].drop(columns=p["output"])
        out = out.reset_index(drop=True)
    return out


def pd_str_lower(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(**{c: plain(df[c]).str.lower() for c in p["columns"]})


def pd_str_upper(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(**{c: plain(df[c]).str.upper() for c in p["columns"]})


def pd_str_title(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(**{c: plain(df[c]).str.title() for c in p["columns"]})


def pd_str_strip(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    how = {"both": "strip", "left": "lstrip", "right": "rstrip"}[p["side"]]
    return df.assign(**{c: getattr(plain(df[c]).str, how)(p["chars"]) for c in p["columns"]})


def pd_str_replace(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    repl = p["replacement"]
    if p["regex"]:  # the engine writes groups as $1, Arrow's regex as \1
        repl = re.sub(r"\$\{?(\d+)\}?", r"\\\1", repl)
    return df.assign(
        **{
            c: plain(df[c]).str.replace(
                p["pattern"], repl, n=-1 if p["all"] else 1, regex=p["regex"]
            )
            for c in p["columns"]
        }
    )


def pd_str_extract(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    pattern, group = p["pattern"], p["group"]
    if group == 0:
        pattern, group = f"({pattern})", 1
    found = plain(df[p["column"]]).str.extract(pattern, expand=True)
    return df.assign(**{p["output"] or p["column"]: found.iloc[:, group - 1]})


def pd_str_split(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    name = p["column"]
    outputs = p["outputs"] or [f"{name}_{i}" for i in range(p["parts"])]
    pieces = plain(df[name]).str.split(p["separator"], n=p["parts"] - 1, expand=True)
    pieces = pieces.reindex(columns=range(p["parts"])).astype("large_string[pyarrow]")
    out = df.assign(**{o: pieces[i] for i, o in enumerate(outputs)})
    return out.drop(columns=name) if p["drop_original"] else out


def pd_str_pad(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(
        **{
            c: plain(df[c]).str.pad(p["width"], side=p["side"], fillchar=p["fill_char"])
            for c in p["columns"]
        }
    )


def pd_str_length(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df.assign(
        **{c + p["suffix"]: plain(df[c]).str.len().astype("int64[pyarrow]") for c in p["columns"]}
    )


def pd_str_contains(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    found = plain(df[p["column"]]).str.contains(p["pattern"], regex=p["regex"])
    return df.assign(**{p["output"]: found.astype("bool[pyarrow]")})


def pd_strptime(values: pd.Series, fmt: str, strict: bool) -> pd.Series:
    """Parse text; the engine's ``%.f`` (an optional ``.fraction``) is tried both ways."""
    if "%.f" not in fmt:
        return pd.to_datetime(values, format=fmt, errors="raise" if strict else "coerce")
    parsed = pd.to_datetime(values, format=fmt.replace("%.f", ".%f"), errors="coerce")
    bare = pd.to_datetime(values, format=fmt.replace("%.f", ""), errors="coerce")
    parsed = parsed.fillna(bare)
    if strict and (parsed.isna() & values.notna()).any():
        bad = values[parsed.isna() & values.notna()].iloc[0]
        raise ValueError(f"cannot parse {bad!r} with format {fmt!r}")
    return parsed


def pd_parse_datetime(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    target = "date32[day][pyarrow]" if p["to"] == "date" else "timestamp[us][pyarrow]"
    out = {}
    for name, fmt in zip(p["columns"], s["formats"]):
        values = plain(df[name]).to_numpy(dtype=object, na_value=None)
        parsed = pd_strptime(pd.Series(values, index=df.index), fmt, p["strict"])
        out[name] = parsed.astype("timestamp[us][pyarrow]").astype(target)
    return df.assign(**out)


def pd_days(col: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a date or datetime column (nulls as 0)."""
    micros = col.astype("timestamp[us][pyarrow]").astype("int64[pyarrow]")
    return np.floor_divide(micros.to_numpy(dtype=np.int64, na_value=0), 86_400_000_000)


def pd_iso_week(col: pd.Series) -> pd.Series:
    """ISO week number: the week of the year holding this week's Thursday."""
    days = pd_days(col)
    thursday = days - (days + 3) % 7 + 3  # 1970-01-01 was a Thursday
    year_start = thursday.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    week = (thursday - year_start.astype(np.int64)) // 7 + 1
    return pd.Series(week, index=col.index, dtype="int64[pyarrow]").mask(col.isna())


def pd_date_part(col: pd.Series, part: str) -> pd.Series:
    """One calendar part; weekday is ISO (Monday=1 ... Sunday=7), week the ISO week."""
    if part == "weekday":
        return col.dt.day_of_week + 1
    if part == "day_of_year":
        return col.dt.day_of_year
    if part == "week":
        return pd_iso_week(col)
    return getattr(col.dt, part)


def pd_date_parts(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    name = p["column"]
    prefix = name + "_" if p["prefix"] is None else p["prefix"]
    return df.assign(
        **{
            prefix + part: pd_date_part(df[name], part).astype("int32[pyarrow]")
            for part in p["parts"]
        }
    )


def pd_date_diff(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    start = df[p["start"]].astype("timestamp[us][pyarrow]")
    if p["end"] is not None:
        end = df[p["end"]].astype("timestamp[us][pyarrow]")
    else:
        end = pd.Series([pd.Timestamp(p["reference"])] * len(df), index=df.index).astype(
            "timestamp[us][pyarrow]"
        )
    seconds = {
        "weeks": 604800.0,
        "days": 86400.0,
        "hours": 3600.0,
        "minutes": 60.0,
        "seconds": 1.0,
    }[p["unit"]]
    micros = (end - start).astype("int64[pyarrow]").astype("double[pyarrow]")
    return df.assign(**{p["output"]: micros / (seconds * 1e6)})


def pd_date_truncate(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    sizes = {"ns": 0, "us": 1, "ms": 1000, "s": 10**6, "m": 6 * 10**7, "h": 36 * 10**8,
             "d": 864 * 10**8, "w": 7 * 864 * 10**8}  # fmt: skip
    months, micros, weekly = 0, 0, False
    for count, unit in re.findall(r"(\d+)(mo|ms|ns|us|s|m|h|d|w|q|y)", p["every"]):
        if unit in ("mo", "q", "y"):
            months += int(count) * {"mo": 1, "q": 3, "y": 12}[unit]
        else:
            micros += int(count) * sizes[unit]
            weekly = weekly or unit == "w"
    if months and micros:
        raise ValueError(f"cannot truncate by {p['every']!r}: months and fixed units mixed")
    out = {}
    for name in p["columns"]:
        col = df[name]
        x = col.astype("timestamp[us][pyarrow]").astype("int64[pyarrow]")
        x = x.to_numpy(dtype=np.int64, na_value=0)
        if months:
            month = x.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
            start = (month - month % months).astype("datetime64[M]")
            x = start.astype("datetime64[us]").astype(np.int64)
        elif micros:
            shift = 4 * 864 * 10**8 if weekly else 0  # weeks start on Monday (1970-01-05)
            x = (x - shift) // micros * micros + shift
        new = pd.Series(x, index=df.index, dtype="int64[pyarrow]").mask(col.isna())
        out[name] = new.astype("timestamp[us][pyarrow]").astype(col.dtype)
    return df.assign(**out)


def pd_unseen(col: pd.Series, categories: list[Any]) -> list[Any]:
    values = plain(col).dropna().unique().tolist()
    known = set(categories)
    return sorted(v for v in values if v not in known)


def pd_check_unknown(df: pd.DataFrame, p: dict, s: Any) -> None:
    if p["handle_unknown"] == "error":
        for name, cats in zip(p["columns"], s["categories"]):
            new = pd_unseen(df[name], cats)
            if new:
                shown = ", ".join(repr(v) for v in new[:5])
                raise ValueError(f"column {name!r} has categories not seen at fit: {shown}")


def pd_one_hot(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    pd_check_unknown(df, p, s)
    sep, flags = p["separator"], {}
    for name, cats in zip(p["columns"], s["categories"]):
        col = plain(df[name])
        for value in cats:
            flags[f"{name}{sep}{value}"] = (col == value).fillna(False).to_numpy(dtype=bool)
        if p["handle_unknown"] == "value":
            other = col.notna().to_numpy(dtype=bool) & ~col.isin(cats).to_numpy(dtype=bool)
            key = f"{name}{sep}{p['unknown_value']}"
            flags[key] = flags[key] | other if key in flags else other
    out = df.assign(
        **{
            k: pd.Series(v.astype(np.int8), index=df.index, dtype="int8[pyarrow]")
            for k, v in flags.items()
        }
    )
    return out.drop(columns=p["columns"]) if p["drop_original"] else out


def pd_recode(
    df: pd.DataFrame, p: dict, s: Any, values: list[list[Any]], dtype: str, default: Any
) -> pd.DataFrame:
    """Replace each category by its learned value; nulls stay null."""
    pd_check_unknown(df, p, s)
    out = {}
    for name, cats, vals in zip(p["columns"], s["categories"], values):
        col = plain(df[name])
        found = pd.Index(cats, dtype=object).get_indexer(col.to_numpy(dtype=object, na_value=None))
        mapped = np.array([*vals, default], dtype=object)[found]  # -1 picks the default
        mapped[col.isna().to_numpy(dtype=bool)] = None
        out[name] = pd.Series(mapped, index=df.index, dtype=dtype)
    return df.assign(**out)


def pd_unknown_default(p: dict, fallback: Any) -> Any:
    if p["handle_unknown"] == "value":
        return fallback if p["unknown_value"] is None else p["unknown_value"]
    return None


def pd_ordinal_encode(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    codes = [list(range(len(cats))) for cats in s["categories"]]
    return pd_recode(df, p, s, codes, "int32[pyarrow]", pd_unknown_default(p, -1))


def pd_target_encode(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    default = pd_unknown_default(p, s["global_mean"])
    return pd_recode(df, p, s, s["values"], "double[pyarrow]", default)


def pd_frequency_encode(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    dtype = "double[pyarrow]" if p["normalize"] else "int64[pyarrow]"
    values = s["fractions"] if p["normalize"] else s["counts"]
    return pd_recode(df, p, s, values, dtype, pd_unknown_default(p, 0))


def pd_affine(
    df: pd.DataFrame, columns: list[str], scale: list[Any], offset: list[Any]
) -> pd.DataFrame:
    return df.assign(
        **{
            c: keep_nan(df[c].astype("double[pyarrow]") * a + b, df[c])
            for c, a, b in zip(columns, scale, offset)
        }
    )


def pd_standard_scale(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_affine(df, p["columns"], s["scale"], s["offset"])


def pd_min_max_scale(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_affine(df, p["columns"], s["scale"], s["offset"])


def pd_max_abs_scale(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_affine(df, p["columns"], s["scale"], [0.0] * len(p["columns"]))


def pd_robust_scale(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_affine(df, p["columns"], s["scale"], s["offset"])


def pd_log_transform(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    out = {}
    for name in p["columns"]:
        x = df[name].to_numpy(dtype=float, na_value=np.nan) + p["offset"]
        with np.errstate(all="ignore"):
            y = np.log(x) if p["base"] is None else np.log(x) / np.log(float(p["base"]))
        # NaN from numpy becomes null here (NaN made by the log of a negative stays null).
        y = pd.Series(y, index=df.index, dtype="double[pyarrow]")
        out[name] = keep_nan(y.mask(np.array(df[name].isna(), dtype=bool)), df[name])
    return df.assign(**out)


def pd_bin_index(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    out = {}
    for name, edges in zip(p["columns"], s["edges"]):
        col = df[name]
        x = col.to_numpy(dtype=float, na_value=np.nan)
        found = np.searchsorted(np.asarray(edges[1:-1], dtype=float), x, side="right")
        bins = pd.Series(found.astype(np.int32), index=df.index, dtype="int32[pyarrow]")
        out[name + p["suffix"]] = bins.mask(col.isna().to_numpy(dtype=bool))
    return df.assign(**out)


def pd_bin_equal_width(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_bin_index(df, p, s)


def pd_bin_quantile(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return pd_bin_index(df, p, s)


def pd_pca(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    centered = [df[c].astype("double[pyarrow]") - m for c, m in zip(p["columns"], s["mean"])]
    new = {}
    for k, weights in enumerate(s["components"]):
        total = centered[0] * weights[0]
        for term, w in zip(centered[1:], weights[1:]):
            total = total + term * w
        new[f"{p['prefix']}{k + 1}"] = total
    out = df.assign(**new)
    return out.drop(columns=p["columns"]) if p["drop_original"] else out
