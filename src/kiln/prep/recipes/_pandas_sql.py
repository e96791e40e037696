"""The pandas side of SQL expressions (``filter``, ``formula``, ``when``).

The exporter parses each expression with the engine's own SQL parser
(``pl.sql_expr``) and writes the resulting expression tree into the script
as a small nested-list program (see ``_export_pandas.sql_program``); the
functions here evaluate that program over a pandas frame with the engine's
semantics: nulls propagate, ``AND``/``OR`` are three-valued, NaN equals NaN
and sorts above every number, ``/`` divides as floats and ``%`` truncates.
Values are ``(data, null)`` numpy pairs, so NaN and null stay apart. Copied
verbatim into scripts: only ``pd``, ``np``, ``pa`` and helpers of this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa


def sql_column(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as ``(data, null)``: numbers, bools, datetimes or strings (object)."""
    arr = pa.chunked_array(col.array.__arrow_array__())
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.large_string())
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    kind = arr.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        filler = False if pa.types.is_boolean(kind) else 0
        data = arr.fill_null(pa.scalar(filler, kind)).to_numpy(zero_copy_only=False)
        return np.asarray(data), null
    return np.asarray(arr.to_numpy(zero_copy_only=False)), null


def sql_series(value: tuple[np.ndarray, np.ndarray], index: Any) -> pd.Series:
    """``(data, null)`` back to an Arrow-backed column (NaN stays NaN, null stays null)."""
    data, null = value
    if data.dtype.kind == "O":
        arr = pa.array(data, mask=null, type=pa.large_string() if _all_str(data, null) else None)
    else:
        arr = pa.array(data, mask=null)
    return pd.Series(pd.arrays.ArrowExtensionArray(arr), index=index)


def _all_str(data: np.ndarray, null: np.ndarray) -> bool:
    return all(isinstance(v, str) for v in data[~null])


def _lit(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if value is None:
        return np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    if isinstance(value, str):
        return np.full(n, value, dtype=object), np.zeros(n, dtype=bool)
    return np.full(n, value), np.zeros(n, dtype=bool)


def _num(a: Any) -> Any:
    return a.astype(np.int64) if isinstance(a, np.ndarray) and a.dtype.kind == "b" else a


def _compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "O" or b.dtype.kind == "O":
        a = np.array(["" if v is None else str(v) for v in a], dtype=object)
        b = np.array(["" if v is None else str(v) for v in b], dtype=object)
        lt, eq = (a < b).astype(bool), (a == b).astype(bool)
        gt = (a > b).astype(bool)
    elif a.dtype.kind == "f" or b.dtype.kind == "f":  # NaN equals NaN and sorts last
        a, b = a.astype(np.float64), b.astype(np.float64)
        na, nb = np.isnan(a), np.isnan(b)
        with np.errstate(invalid="ignore"):
            eq = (a == b) | (na & nb)
            lt = (a < b) | (~na & nb)
            gt = (a > b) | (na & ~nb)
    else:
        eq, lt, gt = a == b, a < b, a > b
    return {"Eq": eq, "NotEq": ~eq, "Lt": lt, "LtEq": lt | eq, "Gt": gt, "GtEq": gt | eq}[op]


def _arith(op: str, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The result, and extra nulls (integer remainder by zero). A number literal stays a
    Python scalar, so it takes the column's type (Int32 + 1 is Int32), as in the engine."""
    kinds = np.asarray(a).dtype.kind + np.asarray(b).dtype.kind
    if op == "Plus" and "O" in kinds:
        return np.array([str(x) + str(y) for x, y in zip(a, b)], dtype=object), None
    a, b = _num(a), _num(b)
    with np.errstate(all="ignore"):
        if op == "Plus":
            return a + b, None
        if op == "Minus":
            return a - b, None
        if op in ("Multiply", "Mul"):
            return a * b, None
        if op in ("Div", "TrueDivide"):
            return np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64), None
        if op == "Rem":
            if "f" in kinds:
                return np.fmod(a, b), None
            zero = b == 0
            return np.fmod(a, np.where(zero, 1, b)), zero
    raise ValueError(f"unsupported SQL operator {op}")


def _logic(op: str, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    (x, xn), (y, yn) = a, b
    x, y = x.astype(bool) & ~xn, y.astype(bool) & ~yn
    if op == "And":  # false wins over null
        false = (~x & ~xn) | (~y & ~yn)
        return x & y, ~false & (xn | yn)
    true = x | y  # Or: true wins over null
    return true, ~true & (xn | yn)


def sql_cast(value: Any, dtype: str, strict: bool) -> tuple[np.ndarray, np.ndarray]:
    data, null = value
    if dtype == "String":
        if data.dtype.kind == "b":
            text = np.where(data, "true", "false").astype(object)
        else:
            text = np.array([str(v) for v in data.tolist()], dtype=object)
        return text, null
    if dtype == "Boolean" and data.dtype.kind != "O":
        return _num(data) != 0, null
    target = {"Float64": np.float64, "Float32": np.float32}.get(dtype)
    if target is None and dtype.startswith(("Int", "UInt")):
        target = np.dtype(dtype.lower())
    if target is None:
        raise ValueError(f"the pandas export cannot cast to {dtype} in SQL")
    bad = np.zeros(len(data), dtype=bool)
    if data.dtype.kind == "O":
        parsed = pd.to_numeric(pd.Series(np.where(null, "0", data)), errors="coerce")
        numbers = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(numbers) & ~null
        if np.dtype(target).kind in "iu":
            bad |= ~null & (numbers != np.trunc(numbers))
        data = np.where(bad, 0, numbers)
    elif np.dtype(target).kind in "iu" and data.dtype.kind == "f":
        bad = ~null & ~np.isfinite(data)
        data = np.where(bad, 0, np.trunc(data))
    if strict and bad.any():
        raise ValueError(f"conversion to {dtype} failed for {int(bad.sum())} value(s)")
    return data.astype(target), null | bad


def sql_eval(df: pd.DataFrame, node: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate one node of an exported SQL program over ``df`` (``n`` rows)."""
    kind = node[0]
    if kind == "col":
        return sql_column(df[node[1]])
    if kind == "lit":
        return _lit(node[1], n)
    args = [sql_eval(df, a, n) for a in node[2:]] if kind in ("op", "fn") else []
    if kind == "op":
        op, (a, an), (b, bn) = node[1], args[0], args[1]
        if op in ("And", "Or"):
            return _logic(op, args[0], args[1])
        if op in ("EqValidity", "NotEqValidity"):
            same = (an & bn) | (~an & ~bn & _compare("Eq", a, b))
            return (same if op == "EqValidity" else ~same), np.zeros(n, dtype=bool)
        if op in ("Eq", "NotEq", "Lt", "LtEq", "Gt", "GtEq"):
            return _compare(op, a, b), an | bn
        scalars = [
            x[1] if x[0] == "lit" and type(x[1]) in (int, float) else v
            for x, v in zip(node[2:], (a, b))
        ]
        out, extra = _arith(op, *scalars)
        out = np.broadcast_to(out, (n,)) if np.ndim(out) == 0 else out
        return out, (an | bn) if extra is None else (an | bn | extra)
    if kind == "fn":
        name, a, an = node[1], args[0][0] if args else None, args[0][1] if args else None
        if name == "IsNull":
            return an, np.zeros(n, dtype=bool)
        if name == "IsNotNull":
            return ~an, np.zeros(n, dtype=bool)
        if name == "Not":
            return ~a.astype(bool), an
        if name == "Abs":
            return np.abs(a), an
        if name == "Coalesce":
            data, null = args[0]
            for other, other_null in args[1:]:
                take = null & ~other_null
                if data.dtype.kind != other.dtype.kind and data.dtype.kind in "iub":
                    data = data.astype(other.dtype)
                data = np.where(take, other, data)
                null = null & other_null
            return data, null
        text = [None if m else str(v) for v, m in zip(a, an)] if a is not None else []
        if name in ("Uppercase", "Lowercase"):
            f = str.upper if name == "Uppercase" else str.lower
            return np.array([v if v is None else f(v) for v in text], dtype=object), an
        if name == "LenChars":
            return np.array([0 if v is None else len(v) for v in text], dtype=np.uint32), an
        if name in ("StartsWith", "EndsWith", "Contains"):
            pat = args[1][0][0]
            test = {"StartsWith": str.startswith, "EndsWith": str.endswith}.get(name)
            hit = [False if v is None else (test(v, pat) if test else pat in v) for v in text]
            return np.array(hit, dtype=bool), an | args[1][1]
        raise ValueError(f"unsupported SQL function {name}")
    if kind == "in":
        data, null = sql_eval(df, node[1], n)
        values = set(v for v in node[2] if v is not None)
        return np.array([v in values for v in data.tolist()], dtype=bool), null
    if kind == "if":
        (p, pn), (t, tn), (f, fn) = (sql_eval(df, a, n) for a in node[1:])
        pick = p.astype(bool) & ~pn
        if tn.all() and not fn.all():  # THEN NULL (NULLIF): take the other branch's type
            t = np.full(n, None) if f.dtype.kind == "O" else np.zeros(n, dtype=f.dtype)
        if fn.all() and not tn.all():
            f = np.full(n, None) if t.dtype.kind == "O" else np.zeros(n, dtype=t.dtype)
        if t.dtype != f.dtype and "O" not in (t.dtype.kind, f.dtype.kind):
            common = np.result_type(t.dtype, f.dtype)
            t, f = t.astype(common), f.astype(common)
        return np.where(pick, t, f), np.where(pick, tn, fn)
    if kind == "cast":
        return sql_cast(sql_eval(df, node[1], n), node[2], node[3])
    raise ValueError(f"unsupported SQL node {kind}")


def sql_mask(df: pd.DataFrame, program: list) -> np.ndarray:
    """Rows where a condition is true (false or null drop out)."""
    data, null = sql_eval(df, program, len(df))
    return data.astype(bool) & ~null


def pd_filter(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    return df[sql_mask(df, p["condition"])].reset_index(drop=True)


def pd_formula(df: pd.DataFrame, p: dict, s: Any) -> pd.DataFrame:
    value = sql_series(sql_eval(df, p["expr"], len(df)), df.index)
    return df.assign(**{p["output"]: value})


def pd_apply_when(df: pd.DataFrame, condition: list, kernel: Any, p: dict, s: Any) -> pd.DataFrame:
    """Run ``kernel`` and keep its result only where ``condition`` holds (else old values/null)."""
    mask = pd.Series(sql_mask(df, condition), index=df.index)
    out = kernel(df, p, s)
    cols = {}
    for name in out.columns:
        new = out[name]
        if name in df.columns:
            old = df[name]
            if new.dtype != old.dtype:
                old = old.astype(new.dtype)
            cols[name] = new.where(mask, old)
        else:
            cols[name] = new.where(mask)
    return out.assign(**cols)
