"""Recipes: storage, validation before data, fit/apply, unseen categories, preview, export."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import kiln.prep.recipes as recipes
from kiln.core.errors import InvalidArgument
from kiln.prep.recipes import FittedRecipe, Recipe, RecipeError, export_python


def _people(n: int = 80, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cities = ["Paris", " lyon", "NICE ", None, "Lille"]
    start = dt.datetime(2023, 3, 1, 9, 0)
    return pl.DataFrame(
        {
            "id": list(range(n)),
            "age": [None if i % 6 == 1 else int(a) for i, a in enumerate(rng.integers(18, 80, n))],
            "income": [
                None if i % 8 == 3 else float(x) for i, x in enumerate(rng.lognormal(10, 1, n))
            ],
            "city": [cities[i % 5] for i in range(n)],
            "signup": [
                (start + dt.timedelta(days=3 * i, hours=i)).isoformat(sep=" ") for i in range(n)
            ],
            "label": ["yes" if i % 3 == 0 else "no" for i in range(n)],
            "score": [float(x) for x in rng.normal(50, 20, n)],
        }
    )


PEOPLE = _people()
CITIES = pa.table({"city": ["paris", "lyon", "nice"], "region": ["IDF", "ARA", "PACA"]})

MANY_STEPS: list[dict[str, Any]] = [
    {"op": "fill_missing", "params": {"columns": ["age", "income"], "strategy": "median"}},
    {"op": "missing_indicator", "params": {"columns": ["city"]}},
    {"op": "str_strip", "params": {"columns": ["city"]}},
    {"op": "str_lower", "params": {"columns": ["city"]}},
    {"op": "join", "params": {"dataset": "cities", "on": ["city"], "how": "left"}},
    {"op": "fill_missing", "params": {"columns": ["city", "region"], "value": "other"}},
    {"op": "parse_datetime", "params": {"columns": ["signup"]}},
    {
        "op": "date_parts",
        "params": {"column": "signup", "parts": ["year", "month", "weekday", "hour"]},
    },
    {"op": "date_diff", "params": {"start": "signup", "reference": "2024-01-01", "output": "days"}},
    {"op": "clip_quantiles", "params": {"columns": ["income"], "lower": 0.05, "upper": 0.95}},
    {"op": "log_transform", "params": {"columns": ["income"], "offset": 1}},
    {"op": "standard_scale", "params": {"columns": ["income", "score"]}},
    {
        "op": "clip",
        "params": {"columns": ["score"], "lower": -2, "upper": 2},
        "when": "label = 'yes'",
    },
    {"op": "one_hot", "params": {"columns": ["region"], "handle_unknown": "value"}},
    {"op": "target_encode", "params": {"columns": ["city"], "target": "score", "smoothing": 2}},
    {"op": "ordinal_encode", "params": {"columns": ["label"]}},
    {"op": "formula", "params": {"output": "age_x_income", "expr": "age * income"}},
    {"op": "filter", "params": {"condition": "age >= 20"}},
    {"op": "bin_quantile", "params": {"columns": ["age"], "bins": 4}},
    {
        "op": "pca",
        "params": {
            "columns": ["income", "score", "days"],
            "n_components": 2,
            "drop_original": False,
        },
    },
    {"op": "split", "params": {"stratify": "label", "seed": 5}},
    {"op": "drop_columns", "params": {"columns": ["signup"]}},
]


def _many() -> Recipe:
    return Recipe(MANY_STEPS, description="many ops at once")


# -- storage ---------------------------------------------------------------------------------


def test_recipe_round_trips_through_json_and_yaml() -> None:
    recipe = _many()
    assert Recipe.from_json(recipe.to_json()) == recipe
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    yaml_text = "steps:\n  - op: clip\n    params: {columns: [score], upper: 9}\n    when: id > 3\n"
    step = Recipe.from_yaml(yaml_text).steps[0]
    assert (step.op, dict(step.params), step.when) == (
        "clip",
        {"columns": ["score"], "upper": 9},
        "id > 3",
    )


@pytest.mark.parametrize(
    "data,fragment",
    [
        ({"steps": "nope"}, 'needs "steps"'),
        ({"steps": [], "stepz": 1}, "unknown recipe key(s) stepz"),
        ([{"op": "clip"}, 3], "step 2 (?): a step must be a mapping"),
        ([{"params": {}}], 'step 1 (?): a step needs "op"'),
        ([{"op": "clip", "parms": {}}], "step 1 (clip): unknown step key(s) parms"),
        ([{"op": "clip", "params": [1]}], 'step 1 (clip): "params" must be a mapping'),
        ([{"op": "clip", "params": {"upper": {1, 2}}}], "step 1 (clip): params must be plain JSON"),
    ],
)
def test_malformed_recipes_are_refused_on_load(data: Any, fragment: str) -> None:
    with pytest.raises(RecipeError, match=None) as info:
        Recipe.from_dict(data)
    assert fragment in str(info.value)


# -- validation before any data is read ----------------------------------------------------------

BAD: list[tuple[list[dict[str, Any]], int, str]] = [
    (
        [{"op": "fill_mising", "params": {}}],
        1,
        'unknown op "fill_mising" (did you mean "fill_missing"?)',
    ),
    (
        [
            {"op": "str_strip", "params": {"columns": ["city"]}},
            {"op": "str_lower", "params": {"columns": ["city"]}},
            {"op": "fill_missing", "params": {"columns": ["agee"], "strategy": "mean"}},
        ],
        3,
        'column "agee" not found (did you mean "age"?); columns are: id, age, income, city, signup',
    ),
    (
        [
            {"op": "drop_columns", "params": {"columns": ["age"]}},
            {"op": "clip", "params": {"columns": ["age"], "upper": 3}},
        ],
        2,
        'column "age" not found',
    ),
    (
        [
            {"op": "rename_columns", "params": {"mapping": {"age": "years"}}},
            {"op": "standard_scale", "params": {"columns": ["age"]}},
        ],
        2,
        'column "age" not found; columns are: id, years, income',
    ),
    (
        [{"op": "clip", "params": {"columns": ["age"], "lower": "abc"}}],
        1,
        'param "lower" must be a number, got str',
    ),
    (
        [{"op": "fill_missing", "params": {"strategy": "mean"}}],
        1,
        'missing required param "columns"',
    ),
    (
        [{"op": "clip", "params": {"columns": ["age"], "lowr": 1}}],
        1,
        'unknown param "lowr" (did you mean "lower"?)',
    ),
    (
        [{"op": "fill_missing", "params": {"columns": ["age"], "strategy": "average"}}],
        1,
        'param "strategy" must be one of',
    ),
    (
        [{"op": "fill_missing", "params": {"columns": ["age"]}}],
        1,
        'strategy "constant" needs param "value"',
    ),
    (
        [{"op": "fill_missing", "params": {"columns": ["age"], "value": "x"}}],
        1,
        "'x' does not fit column \"age\" (int64)",
    ),
    (
        [{"op": "standard_scale", "params": {"columns": ["city"]}}],
        1,
        'column "city" is str, expected a numeric column',
    ),
    (
        [{"op": "date_parts", "params": {"column": "signup"}}],
        1,
        'column "signup" is str, expected a date or datetime',
    ),
    ([{"op": "sample", "params": {"n": 3.5}}], 1, 'param "n" must be an integer'),
    ([{"op": "sample", "params": {}}], 1, 'give exactly one of "n" and "fraction"'),
    ([{"op": "filter", "params": {"condition": "age >>> 3"}}], 1, "invalid expression"),
    (
        [{"op": "filter", "params": {"condition": "agee > 3"}}],
        1,
        'param "condition": column "agee" not found',
    ),
    ([{"op": "filter", "params": {"condition": "age + 1"}}], 1, "gives int64, not true/false"),
    (
        [{"op": "filter", "params": {"condition": "age IN (SELECT 1)"}}],
        1,
        "'SELECT' is not allowed",
    ),
    (
        [{"op": "formula", "params": {"output": "x", "expr": "(1 + read_csv('/etc/passwd'))"}}],
        1,
        "is not allowed",
    ),
    (
        [{"op": "formula", "params": {"output": "x", "expr": "1; DROP TABLE t"}}],
        1,
        "';' is not allowed",
    ),
    (
        [{"op": "filter", "params": {"condition": "age > 1"}, "when": "id > 3"}],
        1,
        '"when" is not supported by filter',
    ),
    (
        [{"op": "clip", "params": {"columns": ["age"], "upper": 1}, "when": "id + 1"}],
        1,
        "\"when\": 'id + 1' gives int64",
    ),
    (
        [{"op": "clip", "params": {"columns": ["age"], "upper": 1}, "when": "idd > 1"}],
        1,
        '"when": column "idd" not found',
    ),
    (
        [{"op": "str_extract", "params": {"column": "city", "pattern": "("}}],
        1,
        "is not a valid regex",
    ),
    (
        [{"op": "cast", "params": {"columns": ["age"], "dtype": "int65"}}],
        1,
        "unknown dtype 'int65'",
    ),
    (
        [{"op": "join", "params": {"dataset": "nope", "on": ["city"]}}],
        1,
        'the schema of dataset "nope" is unknown',
    ),
    (
        [{"op": "join", "params": {"dataset": "cities", "on": ["label"]}}],
        1,
        'join key (in dataset "cities") "label" not found',
    ),
    (
        [{"op": "join", "params": {"dataset": "cities", "left_on": ["age"], "right_on": ["city"]}}],
        1,
        'join key "age" is int64 but "city" in "cities" is str',
    ),
    (
        [{"op": "split", "params": {"parts": {"train": 0.5, "test": 0.4}}}],
        1,
        "add up to 0.9, not 1",
    ),
    (
        [{"op": "split", "params": {"keep": "tests"}}],
        1,
        'param "keep": "tests" is not one of the parts',
    ),
    (
        [
            {"op": "str_length", "params": {"columns": ["city"]}},
            {"op": "str_length", "params": {"columns": ["city"]}},
        ],
        2,
        'column "city_length" already exists',
    ),
    (
        [
            {
                "op": "group_by",
                "params": {"by": ["city"], "aggregations": [{"column": "age", "agg": "avg"}]},
            }
        ],
        1,
        "aggregation 1: unknown agg 'avg'",
    ),
    (
        [
            {
                "op": "group_by",
                "params": {"by": ["city"], "aggregations": [{"column": "city", "agg": "mean"}]},
            }
        ],
        1,
        'aggregation 1: column "city" is str, expected a numeric column',
    ),
    (
        [
            {"op": "one_hot", "params": {"columns": ["city"]}},
            {"op": "clip", "params": {"columns": ["cty_paris"], "upper": 1}},
        ],
        2,
        'column "cty_paris" not found',
    ),
    (
        [{"op": "pca", "params": {"columns": ["age", "income"], "n_components": 3}}],
        1,
        '"n_components" (3) exceeds',
    ),
    (
        [{"op": "date_truncate", "params": {"columns": ["signup"], "every": "1d"}}],
        1,
        "expected a date or datetime",
    ),
]


@pytest.mark.parametrize(
    "steps,number,fragment", BAD, ids=[f"{b[0][-1]['op']}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_recipes_fail_at_validate_naming_the_step(
    steps: list[dict[str, Any]], number: int, fragment: str
) -> None:
    with pytest.raises(RecipeError) as info:
        Recipe(steps).validate(PEOPLE.schema, dataset_schemas={"cities": CITIES.schema})
    err = info.value
    assert str(err).startswith(f"step {number} ({steps[number - 1]['op']}): ")
    assert fragment in str(err)
    assert err.step_index == number - 1 and isinstance(err, InvalidArgument)


def test_validate_propagates_schema_from_any_spelling() -> None:
    steps = [
        {"op": "one_hot", "params": {"columns": ["city"]}},
        {"op": "clip", "params": {"columns": ["city_paris"], "upper": 1}},
        {"op": "formula", "params": {"output": "twice", "expr": "age * 2"}},
        {"op": "cast", "params": {"columns": ["score"], "dtype": "float32"}},
    ]
    spellings = [
        PEOPLE.schema,
        PEOPLE.to_arrow().schema,
        {
            "id": "int64",
            "age": "int64",
            "income": "float64",
            "city": "str",
            "signup": "string",
            "label": pl.String,
            "score": pa.float64(),
        },
    ]
    outs = [Recipe(steps).validate(s) for s in spellings]
    assert outs[0] == outs[1] == outs[2]
    assert outs[0]["twice"] == "int64" and outs[0]["score"] == "float32" and "city" not in outs[0]


# -- fit / apply -----------------------------------------------------------------------------


def test_fitted_state_round_trips_and_applies_identically() -> None:
    resolver = {"cities": CITIES}
    fitted, out = _many().fit_apply(PEOPLE, resolver=resolver)
    assert len(fitted.state) == len(MANY_STEPS) and fitted.state[2] is None
    assert fitted.state[0]["values"] == [PEOPLE["age"].median(), PEOPLE["income"].median()]
    reloaded = FittedRecipe.from_json(fitted.to_json())
    assert reloaded.state == fitted.state and reloaded.recipe == fitted.recipe
    new = _people(50, seed=9)
    assert_frame_equal(reloaded.apply(new, resolver=resolver), fitted.apply(new, resolver=resolver))
    assert_frame_equal(fitted.apply(PEOPLE, resolver=resolver), out)
    assert list(out.columns) == list(fitted.output_schema)


def test_arrow_in_arrow_out() -> None:
    recipe = Recipe([{"op": "standard_scale", "params": {"columns": ["score"]}}])
    fitted, out = recipe.fit_apply(PEOPLE.to_arrow())
    assert isinstance(out, pa.Table) and isinstance(fitted.apply(PEOPLE.to_arrow()), pa.Table)
    assert abs(pl.from_arrow(out)["score"].mean()) < 1e-12


@pytest.mark.parametrize("op", ["one_hot", "ordinal_encode", "target_encode", "frequency_encode"])
@pytest.mark.parametrize("handle", ["ignore", "error", "value"])
def test_unseen_categories(op: str, handle: str) -> None:
    params: dict[str, Any] = {"columns": ["city"], "handle_unknown": handle}
    if op == "target_encode":
        params["target"] = "score"
    fitted = Recipe([{"op": op, "params": params}]).fit(PEOPLE)
    new = pl.DataFrame(
        {
            "id": [1, 2, 3],
            "age": [1, 2, 3],
            "income": [1.0, 2.0, 3.0],
            "city": ["Paris", "Berlin", None],
            "signup": ["x"] * 3,
            "label": ["yes"] * 3,
            "score": [1.0, 2.0, 3.0],
        }
    )
    if handle == "error":
        with pytest.raises(
            RecipeError,
            match=r"step 1 \(" + op + r"\): column 'city' has categories not seen at fit: 'Berlin'",
        ):
            fitted.apply(new)
        return
    out = fitted.apply(new)
    if op == "one_hot":
        row = out.select(pl.selectors.starts_with("city_")).row(1, named=True)
        assert row.get("city_other", 0) == (1 if handle == "value" else 0)
        assert sum(row.values()) == (1 if handle == "value" else 0)
        return
    known, unseen, null = out["city"].to_list()
    assert null is None and known is not None
    expected = {
        "ignore": None,
        "value": {
            "ordinal_encode": -1,
            "frequency_encode": 0.0,
            "target_encode": fitted.state[0].get("global_mean"),
        }[op],
    }
    assert unseen == expected[handle]


def test_apply_checks_new_data_before_running() -> None:
    fitted = Recipe(
        [
            {"op": "str_lower", "params": {"columns": ["city"]}},
            {"op": "standard_scale", "params": {"columns": ["score"]}},
        ]
    ).fit(PEOPLE)
    with pytest.raises(RecipeError, match=r'^step 2 \(standard_scale\): column "score" not found'):
        fitted.apply(PEOPLE.drop("score"))


def test_data_errors_name_the_step() -> None:
    recipe = Recipe([{"op": "cast", "params": {"columns": ["city"], "dtype": "int64"}}])
    with pytest.raises(RecipeError, match=r"^step 1 \(cast\): ") as info:
        recipe.fit(PEOPLE)
    assert info.value.details["error"] == "InvalidOperationError"


@pytest.mark.parametrize(
    "op,params",
    [
        ("sample", {"fraction": 0.5}),
        ("split", {}),
        ("balance", {"column": "label"}),
    ],
)
def test_random_ops_are_reproducible(op: str, params: dict[str, Any]) -> None:
    one = Recipe([{"op": op, "params": params}]).fit_apply(PEOPLE)[1]
    assert_frame_equal(one, Recipe([{"op": op, "params": params}]).fit_apply(PEOPLE)[1])
    other = Recipe([{"op": op, "params": params | {"seed": 99}}]).fit_apply(PEOPLE)[1]
    assert not one.equals(other)


def test_datasets_come_from_the_resolver() -> None:
    recipe = Recipe([{"op": "union", "params": {"dataset": "more"}}])
    out = recipe.fit_apply(PEOPLE, resolver=lambda name: PEOPLE.head(3).to_arrow())[1]
    assert out.height == PEOPLE.height + 3
    with pytest.raises(RecipeError, match=r'step 1 \(union\): dataset "more" not found'):
        recipe.fit(PEOPLE, resolver={})
    with pytest.raises(RecipeError, match="no resolver was given"):
        recipe.fit(PEOPLE)


# -- preview ---------------------------------------------------------------------------------


def test_preview_works_on_a_sample_and_shows_each_step() -> None:
    big = pl.concat([PEOPLE] * 250)  # 20,000 rows
    recipe = Recipe(
        [
            {"op": "filter", "params": {"condition": "age > 30"}},
            {"op": "one_hot", "params": {"columns": ["label"]}},
            {"op": "standard_scale", "params": {"columns": ["score"]}},
        ]
    )
    preview = recipe.preview(big, n=5, sample_rows=1_000)
    assert preview.sample_rows == 1_000 and preview.rows.height == 5
    assert len(preview.schemas) == len(preview.row_counts) == 3
    assert preview.row_counts[0] < 1_000 and preview.row_counts[1] == preview.row_counts[0]
    assert "label_yes" in preview.schemas[1] and preview.schemas[2]["score"] == "float64"
    again = preview.fitted.preview(big.tail(100), n=3)
    assert again.rows.height == 3 and again.fitted is preview.fitted


# -- export ----------------------------------------------------------------------------------


def test_exported_script_reproduces_apply(tmp_path: Path) -> None:
    fitted = _many().fit(PEOPLE, resolver={"cities": CITIES})
    script = export_python(fitted)
    imports = [x for x in script.splitlines() if x.startswith(("import", "from"))]
    assert not any("kiln" in x for x in imports)
    new = _people(120, seed=3)
    expected = fitted.apply(new, resolver={"cities": CITIES})
    assert_frame_equal(_run_script(tmp_path, script, new), expected)


def _run_script(tmp_path: Path, script: str, data: pl.DataFrame) -> pl.DataFrame:
    (tmp_path / "recipe.py").write_text(script)
    data.write_parquet(tmp_path / "in.parquet")
    pl.from_arrow(CITIES).write_parquet(tmp_path / "cities.parquet")
    done = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "recipe.py"),
            str(tmp_path / "in.parquet"),
            str(tmp_path / "out.parquet"),
            "--dataset",
            f"cities={tmp_path / 'cities.parquet'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return pl.read_parquet(tmp_path / "out.parquet")


def test_exported_pandas_script_matches(tmp_path: Path) -> None:
    steps = list(MANY_STEPS)  # filter, formula and "when" included
    steps.append(
        {
            "op": "group_by",
            "params": {
                "by": ["split", "city"],
                "sort": True,
                "aggregations": [
                    {"column": "score", "agg": "mean"},
                    {"column": "age", "agg": "max"},
                    {"agg": "count"},
                ],
            },
        }
    )
    fitted = Recipe(steps).fit(PEOPLE, resolver={"cities": CITIES})
    script = export_python(fitted, engine="pandas")
    assert "import polars" not in script and "import pandas as pd" in script
    new = _people(120, seed=4)
    expected = fitted.apply(new, resolver={"cities": CITIES})
    assert_frame_equal(_run_script(tmp_path, script, new), expected, rel_tol=1e-12, abs_tol=1e-12)


def test_pandas_export_names_the_steps_it_cannot_run() -> None:
    steps = [
        *MANY_STEPS,
        {"op": "formula", "params": {"output": "r", "expr": "ROUND(score, 1)"}},
        {"op": "clip", "params": {"columns": ["r"], "upper": 3.0}, "when": "r > 2"},
    ]
    fitted = Recipe(steps).fit(PEOPLE, resolver={"cities": CITIES})
    with pytest.raises(RecipeError, match="cannot export to pandas") as info:
        export_python(fitted, engine="pandas")
    n = len(MANY_STEPS)
    assert f"step {n + 1} (formula): the pandas export cannot evaluate" in str(info.value)
    assert info.value.details["steps"] == [n]  # the "when" r > 2 is plain SQL


def test_public_api() -> None:
    assert sorted(recipes.__all__) == recipes.__all__
    for name in recipes.__all__:
        assert getattr(recipes, name) is not None
    assert len(recipes.list_ops()) >= 40
