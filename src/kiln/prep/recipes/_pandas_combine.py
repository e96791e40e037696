"""pandas kernels of the combining ops (see ``_pandas_kernels``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._pandas_kernels import plain, value_like
from ._pandas_sql import sql_series


def pd_join(df: pd.DataFrame, p: dict, s: Any, other: pd.DataFrame) -> pd.DataFrame:
    if p["how"] == "cross":
        return df.merge(other, how="cross", suffixes=("", p["suffix"]))
    left_keys, right_keys = p["on"] or p["left_on"], p["on"] or p["right_on"]
    df = df.assign(**{k: plain(df[k]) for k in left_keys})
    other = other.assign(**{k: plain(other[k]) for k in right_keys})
    right = other[other[right_keys].notna().all(axis=1).to_numpy(dtype=bool)]  # nulls never match
    if p["how"] in ("right", "full"):
        return pd_outer_join(df, p, other, left_keys, right_keys)
    if p["how"] in ("semi", "anti"):
        keys = right[right_keys].drop_duplicates().set_axis(left_keys, axis=1)
        found = df[left_keys].merge(keys, how="left", on=left_keys, indicator=True)
        hit = (found["_merge"] == "both").to_numpy(dtype=bool)
        return df[hit if p["how"] == "semi" else ~hit].reset_index(drop=True)
    out = df.merge(
        right,
        how=p["how"],
        left_on=left_keys,
        right_on=right_keys,
        suffixes=("", p["suffix"]),
        sort=False,
    )
    return out.drop(columns=[r for k, r in zip(left_keys, right_keys) if k != r])


def pd_outer_join(
    df: pd.DataFrame, p: dict, other: pd.DataFrame, left_keys: list, right_keys: list
) -> pd.DataFrame:
    """Right and full joins as the engine runs them: null keys never match, keys coalesce,
    rows in left order then unmatched right rows (right joins: in right order)."""
    n_keys = len(left_keys)
    names = [f"k{i}" for i in range(n_keys)]

    def keyed(frame: pd.DataFrame, keys: list, tag: str) -> pd.DataFrame:
        part = frame[keys].set_axis(names, axis=1).assign(**{tag: np.arange(len(frame))})
        return part[frame[keys].notna().all(axis=1).to_numpy(dtype=bool)]

    pairs = keyed(df, left_keys, "l").merge(keyed(other, right_keys, "r"), on=names)
    left_at, right_at = pairs["l"].to_numpy(dtype=np.int64), pairs["r"].to_numpy(dtype=np.int64)
    lone_right = np.setdiff1d(np.arange(len(other)), right_at)
    if p["how"] == "full":  # unmatched left rows among the matched ones, in left order
        lone_left = np.setdiff1d(np.arange(len(df)), left_at)
        left_at = np.concatenate([left_at, lone_left])
        right_at = np.concatenate([right_at, np.full(len(lone_left), -1)])
    order = np.lexsort((right_at, left_at))  # left order, then unmatched right rows
    left_at = np.concatenate([left_at[order], np.full(len(lone_right), -1)])
    right_at = np.concatenate([right_at[order], lone_right])
    order = np.arange(len(left_at))
    left = df.reset_index(drop=True).reindex(left_at[order]).reset_index(drop=True)
    right = other.reset_index(drop=True).reindex(right_at[order]).reset_index(drop=True)
    keys = dict(zip(left_keys, right_keys))
    rest = [c for c in right.columns if c not in right_keys]
    renamed = {c: c + p["suffix"] if c in df.columns and c not in keys else c for c in rest}
    if p["how"] == "full":
        for lk, rk in keys.items():
            found = right[rk].astype(left[lk].dtype)
            left[lk] = left[lk].where(left[lk].notna(), found)
        return pd.concat([left, right[rest].rename(columns=renamed)], axis=1)
    left = left.drop(columns=left_keys)
    renamed = {c: c + p["suffix"] if c in left.columns else c for c in right.columns}
    return pd.concat([left, right.rename(columns=renamed)], axis=1)


def pd_nan_last_median(group: pd.Series) -> float | None:
    x = np.sort(group.dropna().to_numpy(dtype=float))  # NaN is not null here: it stays, last
    return None if len(x) == 0 else float((x[(len(x) - 1) // 2] + x[len(x) // 2]) / 2)


def pd_pivot(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    keys = [plain(df[c]).to_numpy(dtype=object, na_value=None) for c in p["index"]]
    groups: dict = {}
    codes = np.array([groups.setdefault(k, len(groups)) for k in zip(*keys)], dtype=np.int64)
    first = np.unique(codes, return_index=True)[1] if len(codes) else np.array([], dtype=np.int64)
    out = df[p["index"]].iloc[first].reset_index(drop=True)
    on, values, agg = plain(df[p["on"]]), df[p["values"]], p["agg"]
    for value in s["on_values"]:
        hit = (on == value_like(value, on)).fillna(False).to_numpy(dtype=bool)
        by = values[hit].groupby(codes[hit])
        if agg in ("first", "last"):
            cells = getattr(by, agg)(skipna=False)
        elif agg == "count":
            cells = by.count().astype("uint32[pyarrow]")
        elif agg == "median":  # NaN sorts last, as in the engine
            cells = by.agg(pd_nan_last_median).astype("double[pyarrow]")
        else:
            cells = getattr(by, agg)()
            if agg == "mean":
                cells = cells.astype("double[pyarrow]")
            if agg in ("sum", "mean") and values.dtype == "double[pyarrow]":  # pandas skips NaN; the engine's sum and mean are NaN
                x = values[hit].to_numpy(dtype=float, na_value=0.0)
                has_nan = pd.Series(np.isnan(x)).groupby(codes[hit]).any()
                nan = has_nan.reindex(cells.index).to_numpy(dtype=bool)
                data = np.where(nan, np.nan, cells.to_numpy(dtype=float, na_value=0.0))
                null = cells.isna().to_numpy(dtype=bool) & ~nan
                cells = sql_series((data, null), cells.index)
        out[str(value)] = cells.reindex(range(len(groups))).reset_index(drop=True)
    return out


def pd_union(df: pd.DataFrame, p: dict, s: Any, other: pd.DataFrame) -> pd.DataFrame:
    if not p["by_name"]:
        other = other.set_axis(list(df.columns), axis=1)
    out = pd.concat([df, other], ignore_index=True)
    return out.drop_duplicates().reset_index(drop=True) if p["distinct"] else out


def pd_group_by(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    groups = df.groupby(p["by"], sort=False, dropna=False)
    columns = {}
    for spec in p["aggregations"]:
        agg, column = spec["agg"], spec.get("column")
        name = spec.get("as") or (f"{column}_{agg}" if column is not None else "count")
        if column is None:
            result = groups.size().astype("uint32[pyarrow]")
        elif agg == "count":
            result = groups[column].count().astype("uint32[pyarrow]")
        elif agg == "n_unique":
            result = groups[column].nunique(dropna=False).astype("uint32[pyarrow]")
        elif agg in ("first", "last"):
            result = getattr(groups[column], agg)(skipna=False)
        else:
            result = getattr(groups[column], agg)()
        columns[name] = result
    out = pd.DataFrame(columns).reset_index()
    if p["sort"]:
        out = out.sort_values(p["by"], kind="stable", na_position="last").reset_index(drop=True)
    return out


def pd_unpivot(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    out = df.melt(
        id_vars=p["index"],
        value_vars=p["on"],
        var_name=p["variable_name"],
        value_name=p["value_name"],
    )
    return out.astype({p["variable_name"]: "large_string[pyarrow]"})
