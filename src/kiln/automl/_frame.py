"""Column typing for AutoML: what each column of a dataset is (numeric, categorical, date,
free text, or dropped), and :func:`prepare`, which turns raw rows into the frame every
candidate's scikit-learn pipeline takes.

:func:`prepare` is the one place raw rows are read: at training, when a package serves
rows, and in each candidate's exported script (its source is copied there verbatim, so
keep it self-contained: it imports inside and calls no other function of Kiln).
"""

from __future__ import annotations

from typing import Any

__all__ = ["infer_schema", "prepare", "prepared_columns"]

# A string column with at most this many distinct values is categorical; more, and free
# text (long values with several words), or categorical of high cardinality otherwise.
TEXT_MIN_WORDS = 3.0
TEXT_MIN_UNIQUE = 0.3
DATE_PARTS = ("year", "month", "day", "dayofweek", "hour", "epoch_days")


def infer_schema(frame: Any, *, target: str) -> dict[str, Any]:
    """Each feature column's kind, and why a column was dropped.

    Returns:
        ``{"columns": [{"name", "kind", ...}], "dropped": {name: reason}}`` where kind is
        numeric, categorical, date or text, in the dataset's column order.
    """
    import pandas as pd

    columns: list[dict[str, Any]] = []
    dropped: dict[str, str] = {}
    n = len(frame)
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        present = col.dropna()
        if present.empty:
            dropped[str(name)] = "all values are missing"
            continue
        if present.nunique() <= 1:
            dropped[str(name)] = "constant"
            continue
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            columns.append({"name": str(name), "kind": "numeric"})
            continue
        if pd.api.types.is_datetime64_any_dtype(col):
            columns.append({"name": str(name), "kind": "date"})
            continue
        text = present.astype(str)
        sample = text.iloc[: min(len(text), 2000)]
        unique = text.nunique() / max(len(text), 1)
        words = float(sample.str.split().str.len().mean())
        if _dates(sample):
            columns.append({"name": str(name), "kind": "date"})
        elif words >= TEXT_MIN_WORDS and unique >= TEXT_MIN_UNIQUE:
            columns.append({"name": str(name), "kind": "text"})
        elif text.nunique() == n and n > 50 and words < TEXT_MIN_WORDS:
            dropped[str(name)] = "an identifier (a distinct value in every row)"
        else:
            columns.append({"name": str(name), "kind": "categorical", "cardinality": int(text.nunique())})
    return {"columns": columns, "dropped": dropped}


def _dates(sample: Any) -> bool:
    """Whether string values read as dates (nine in ten parse, and they are not plain numbers)."""
    import warnings

    import pandas as pd

    if pd.to_numeric(sample, errors="coerce").notna().mean() > 0.5:
        return False
    if not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() > 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def prepared_columns(schema: dict[str, Any]) -> dict[str, list[str]]:
    """The prepared frame's columns by kind (a date column becomes several numeric ones)."""
    out: dict[str, list[str]] = {"numeric": [], "categorical": [], "text": []}
    for c in schema["columns"]:
        if c["kind"] == "date":
            out["numeric"] += [f"{c['name']}__{p}" for p in DATE_PARTS]
        else:
            out[c["kind"]].append(c["name"])
    return out


def prepare(frame, schema):
    """Raw rows (a DataFrame with the dataset's column names) as candidates take them:
    numbers as floats (missing kept as NaN), categories as strings ("__NA__" when
    missing), dates as numeric parts, text as strings ("" when missing)."""
    import warnings

    import pandas as pd

    missing = [c["name"] for c in schema["columns"] if c["name"] not in frame.columns]
    if missing:
        raise ValueError(f"rows are missing column(s) {missing[:5]}; the model takes {[c['name'] for c in schema['columns']]}")
    out = {}
    for c in schema["columns"]:
        name, kind = c["name"], c["kind"]
        col = frame[name]
        if kind == "numeric":
            if col.dtype == object or str(col.dtype) in ("string", "str", "category"):
                low = col.astype("string").str.strip().str.lower()
                col = low.map({"true": 1.0, "false": 0.0}).where(low.isin(["true", "false"]), pd.to_numeric(low, errors="coerce"))
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        elif kind == "categorical":
            # As _category_text reads one value, vectorised: 1, 1.0 and "1" alike.
            values = col.astype(object)
            mask = pd.isna(values).to_numpy()
            text = values.astype(str).str.replace(r"^(-?\d+)\.0$", r"\1", regex=True).to_numpy(dtype=object)
            text[mask] = "__NA__"
            out[name] = text
        elif kind == "text":
            out[name] = col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object)
        else:  # date
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                when = pd.to_datetime(col, errors="coerce", format="mixed", utc=True) if not pd.api.types.is_datetime64_any_dtype(col) else col
            when = pd.Series(when)
            if getattr(when.dt, "tz", None) is not None:
                when = when.dt.tz_convert("UTC").dt.tz_localize(None)
            out[f"{name}__year"] = when.dt.year.astype("float64").to_numpy()
            out[f"{name}__month"] = when.dt.month.astype("float64").to_numpy()
            out[f"{name}__day"] = when.dt.day.astype("float64").to_numpy()
            out[f"{name}__dayofweek"] = when.dt.day_of_week.astype("float64").to_numpy()
            out[f"{name}__hour"] = when.dt.hour.astype("float64").to_numpy()
            seconds = (when - pd.Timestamp("1970-01-01")).dt.total_seconds()
            out[f"{name}__epoch_days"] = (seconds / 86400.0).astype("float64").to_numpy()
    return pd.DataFrame(out, index=range(len(frame)))


def _category_text(value):
    """A category as a string that reads the same from Parquet, CSV and JSON (1 and 1.0 and "1" alike)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        import numpy as np

        if isinstance(value, np.floating) and float(value).is_integer():
            return str(int(value))
        if isinstance(value, np.integer):
            return str(int(value))
    except ImportError:  # pragma: no cover - numpy is always there
        pass
    text = str(value)
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        return text[:-2]
    return text
