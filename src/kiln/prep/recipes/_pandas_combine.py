"""pandas kernels of the combining ops (see ``_pandas_kernels``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ._pandas_kernels import plain


def pd_join(df: pd.DataFrame, p: dict, s: Any, other: pd.DataFrame) -> pd.DataFrame:
    if p["how"] == "cross":
        return df.merge(other, how="cross", suffixes=("", p["suffix"]))
    left_keys, right_keys = p["on"] or p["left_on"], p["on"] or p["right_on"]
    df = df.assign(**{k: plain(df[k]) for k in left_keys})
    other = other.assign(**{k: plain(other[k]) for k in right_keys})
    right = other[other[right_keys].notna().all(axis=1).to_numpy(dtype=bool)]  # nulls never match
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
