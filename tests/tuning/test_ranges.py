"""SageMaker's ParameterRanges, checked, and what a strategy samples for each scaling."""

from __future__ import annotations

import math

import pytest

from kiln.core.errors import InvalidArgument
from kiln.tuning._ranges import grid_points, grid_size, parse_ranges, ranges_json
from kiln.tuning._strategy import Study, TrialRecord


def test_sagemaker_ranges_round_trip_with_strings_or_numbers() -> None:
    given = {
        "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": 8, "ScalingType": "Linear"}],
        "ContinuousParameterRanges": [{"Name": "eta", "MinValue": 0.01, "MaxValue": "0.5", "ScalingType": "Logarithmic"},
                                      {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"}],
        "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}],
    }
    ranges = parse_ranges(given)
    assert [(r.name, r.kind) for r in ranges] == [("max_depth", "integer"), ("eta", "continuous"), ("momentum", "continuous"), ("booster", "categorical")]
    out = ranges_json(ranges)
    assert out["IntegerParameterRanges"] == [{"Name": "max_depth", "MinValue": "2", "MaxValue": "8", "ScalingType": "Linear"}]
    assert parse_ranges(out) == ranges  # what describe shows is itself a valid request


@pytest.mark.parametrize("scaling", ["Linear", "Logarithmic", "ReverseLogarithmic"])
def test_every_sample_is_inside_its_range(scaling: str) -> None:
    rng = {"Name": "p", "MinValue": "0.001", "MaxValue": "0.999", "ScalingType": scaling}
    study = Study(strategy="Random", ranges=parse_ranges({"ContinuousParameterRanges": [rng]}), direction="Maximize", seed=0, max_jobs=200, early_stopping="Off")
    values = [study.hyperparameters(study.ask(n))["p"] for n in range(200)]
    assert all(0.001 <= v <= 0.999 for v in values)
    near_zero, near_one = sum(v < 0.01 for v in values), sum(v > 0.99 for v in values)
    # Logarithmic explores the small end finely, ReverseLogarithmic the end near 1, Linear neither.
    expected = {"Linear": (near_zero < 10 and near_one < 10), "Logarithmic": near_zero > 50, "ReverseLogarithmic": near_one > 50}
    assert expected[scaling], (near_zero, near_one)


def test_integer_log_scaling_and_categorical_values_stay_typed() -> None:
    ranges = parse_ranges({"IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "1000", "ScalingType": "Logarithmic"}],
                           "CategoricalParameterRanges": [{"Name": "c", "Values": [1, "two", True]}]})
    study = Study(strategy="Bayesian", ranges=ranges, direction="Minimize", seed=1, max_jobs=20, early_stopping="Off")
    for n in range(20):
        hps = study.hyperparameters(study.ask(n))
        assert isinstance(hps["n"], int) and 1 <= hps["n"] <= 1000 and hps["c"] in ("1", "two", "true")
        study.tell(n, state="Completed", objective=math.log(hps["n"]), early_stopped=False)
    assert study.study.best_params["n"] < 50  # TPE heads for the small end when it is what minimises


def test_grid_enumerates_integers_and_categories_but_not_a_continuous_range() -> None:
    ranges = parse_ranges({"IntegerParameterRanges": [{"Name": "k", "MinValue": "1", "MaxValue": "3"}],
                           "CategoricalParameterRanges": [{"Name": "c", "Values": ["x", "y"]}]})
    assert grid_size(ranges) == 6 and len({tuple(p.items()) for p in grid_points(ranges)}) == 6
    with pytest.raises(InvalidArgument, match="continuous range"):
        grid_size(parse_ranges({"ContinuousParameterRanges": [{"Name": "a", "MinValue": "0", "MaxValue": "1"}]}))


def test_a_resumed_study_never_repeats_a_grid_point() -> None:
    ranges = parse_ranges({"CategoricalParameterRanges": [{"Name": "c", "Values": ["a", "b", "c", "d"]}]})
    first = Study(strategy="Grid", ranges=ranges, direction="Maximize", seed=0, max_jobs=4, early_stopping="Off")
    done = [first.ask(n) for n in range(2)]
    again = Study(strategy="Grid", ranges=ranges, direction="Maximize", seed=0, max_jobs=4, early_stopping="Off")
    for n, sampled in enumerate(done):
        again.add_own(TrialRecord(number=n, state="Completed" if n == 0 else "Running", sampled=sampled, objective=1.0 if n == 0 else None, intermediate=[]))
    rest = [again.ask(n) for n in range(2, 4)]
    assert sorted(p["c"] for p in done + rest) == ["a", "b", "c", "d"]


def test_warm_start_maps_what_fits_the_new_ranges() -> None:
    parent = parse_ranges({"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0", "MaxValue": "1"}],
                           "CategoricalParameterRanges": [{"Name": "gone", "Values": ["x"]}]})
    child = parse_ranges({"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.5", "MaxValue": "1"}]})
    study = Study(strategy="Bayesian", ranges=child, direction="Maximize", seed=0, max_jobs=10, early_stopping="Off")
    records = [TrialRecord(number=i, state="Completed", sampled={"lr": lr, "gone": "x"}, objective=lr, intermediate=[]) for i, lr in enumerate([0.2, 0.6, 0.9])]
    records.append(TrialRecord(number=3, state="Failed", sampled={"lr": 0.7}, objective=None, intermediate=[]))
    assert study.add_warm_start(records, parent) == 2
    assert sorted(t.params["lr"] for t in study.study.trials) == [0.6, 0.9]


BAD = [
    ("[]", "JSON object"),
    ({"IntegerParameterRanges": {"Name": "a"}}, "is a list of ranges"),
    ({"IntegerParameterRanges": ["a"]}, "object with a Name"),
    ({"IntegerParameterRanges": [{"MinValue": "1", "MaxValue": "2"}]}, "needs a Name"),
    ({"IntegerParameterRanges": [{"Name": "a", "MinValue": "1.5", "MaxValue": "2"}]}, "is not an integer"),
    ({"IntegerParameterRanges": [{"Name": "a", "MinValue": "1", "MaxValue": "2", "ScalingType": "ReverseLogarithmic"}]}, "continuous ranges only"),
    ({"ContinuousParameterRanges": [{"Name": "a", "MinValue": "1", "MaxValue": "1"}]}, "must be below"),
    ({"ContinuousParameterRanges": [{"Name": "a", "MinValue": "nan", "MaxValue": "1"}]}, "finite"),
    ({"ContinuousParameterRanges": [{"Name": "a", "MinValue": "0", "MaxValue": "1", "ScalingType": "Cubic"}]}, "ScalingType"),
    ({"ContinuousParameterRanges": [{"Name": "a", "MinValue": "0", "MaxValue": "1", "Step": 1}]}, "not ['Step']"),
    ({"CategoricalParameterRanges": [{"Name": "a", "Values": []}]}, "needs Values"),
    ({"CategoricalParameterRanges": [{"Name": "a", "Values": ["x", "x"]}]}, "twice"),
    ({"CategoricalParameterRanges": [{"Name": "a", "Values": ["x"]}], "IntegerParameterRanges": [{"Name": "a", "MinValue": 1, "MaxValue": 2}]}, "more than one range"),
    ({"CategoricalParameterRanges": [{"Name": "_tuning_objective_metric", "Values": ["x"]}]}, "reserved"),
]


@pytest.mark.parametrize(("ranges", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_ranges_say_what_is_wrong(ranges: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_ranges(ranges)
