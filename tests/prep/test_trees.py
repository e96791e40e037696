"""The NumPy tree ensembles of target insights: each against a plain walk or the library it replaces."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, r2_score

from kiln.prep.report._insights import _score
from kiln.prep.report._trees import BoostedTrees, _average_path, _Forest, isolation_scores


def _walk(forest: _Forest, row: np.ndarray, t: int) -> float:
    k, depth = 0, 0
    while not forest.leaf[t, k] and depth < forest.depth:
        k = 2 * k + 1 + int(row[forest.feature[t, k]] > forest.cut[t, k])
        depth += 1
    return depth + float(_average_path(np.array([forest.count[t, k]]))[0])


def test_isolation_path_lengths_are_a_walk_down_each_tree() -> None:
    x = np.random.default_rng(0).normal(size=(500, 3))
    forest = _Forest.grow(x, trees=7, samples=64, seed=1)
    assert forest.count[:, 0].tolist() == [64] * 7 and forest.depth == 6
    rows = x[[0, 1, 499]]
    expected = [np.mean([_walk(forest, r, t) for t in range(7)]) for r in rows]
    assert np.allclose(forest.path_lengths(rows), expected)


def test_isolated_rows_score_highest_and_scores_are_seeded() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 4))
    x[:10] += 9.0
    scores = isolation_scores(x, seed=3)
    assert set(np.argsort(-scores)[:10]) == set(range(10)) and 0 < scores.min() and scores.max() <= 1
    assert np.array_equal(scores, isolation_scores(x, seed=3)) and not np.array_equal(scores, isolation_scores(x, seed=4))


def test_boosted_trees_learn_an_interaction_and_every_class() -> None:
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 16, size=(4000, 3))
    y = np.where(codes[:, 0] > 7, codes[:, 1], -codes[:, 1]) + rng.normal(0, 0.5, 4000)  # x1's sign flips with x0
    fit = BoostedTrees("regression").fit(codes[:3000], y[:3000])
    assert r2_score(y[3000:], fit.predict(codes[3000:])) > 0.95
    for classes in (2, 5):
        label = (codes[:, 0] * classes // 16 + (codes[:, 1] > 11)) % classes  # x1 moves some rows up a class
        model = BoostedTrees("classification").fit(codes[:3000], label[:3000])
        assert accuracy_score(label[3000:], model.predict(codes[3000:])) > 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, guess = rng.integers(0, 4, 300), rng.integers(0, 5, 300)
    got = _score("classification", truth, guess)
    assert got["accuracy"] == pytest.approx(accuracy_score(truth, guess))
    assert got["f1_macro"] == pytest.approx(f1_score(truth, guess, average="macro", zero_division=0))
    y, pred = rng.normal(size=200), rng.normal(size=200)
    assert _score("regression", y, pred)["r2"] == pytest.approx(r2_score(y, pred))
    assert _score("regression", np.ones(3), np.ones(3))["r2"] == 1.0
