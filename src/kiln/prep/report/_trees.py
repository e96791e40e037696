"""The two tree ensembles of target insights, in NumPy: boosted trees and an isolation forest.

Both work on small integer codes (a category's code, a number's quantile bin, 0 for
missing: :func:`kiln.prep.report._insights._bins`) or on a float matrix, a few
thousand rows at a time, and cost a fraction of a second on the profile's sample.
LightGBM and scikit-learn would cost more to import (about 0.9 s, mostly SciPy) than
these cost to run, and the profile with a target is meant to take at most twice the
profile without.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["BoostedTrees", "isolation_scores"]


@dataclass
class _Tree:
    column: int  # the class whose score this tree adds to (0 for one score)
    features: list[np.ndarray]  # per level: each node's split feature
    cuts: list[np.ndarray]  # per level: each node's split, as the last code that goes left
    splits: list[np.ndarray]  # per level: whether each node splits (else its rows go left)
    values: np.ndarray  # each leaf's value, already scaled by the learning rate


@dataclass
class BoostedTrees:
    """Gradient-boosted trees over binned features (histogram boosting, as LightGBM does it):
    squared error for a regression, log loss for two classes, softmax for more.

    Trees grow level by level to ``depth``; a split must leave ``min_rows`` rows on each
    side; leaves are Newton steps with L2 penalty ``l2``. With more than two classes each
    round grows one tree per class, so the rounds shrink to keep the trees about constant.
    """

    kind: str  # "regression" or "classification"
    rounds: int = 40
    learning_rate: float = 0.25
    depth: int = 6
    min_rows: int = 20
    l2: float = 1.0
    classes_: int = 0
    base_: np.ndarray = field(default_factory=lambda: np.zeros(1))
    trees_: list[_Tree] = field(default_factory=list)
    offsets_: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def fit(self, codes: np.ndarray, y: np.ndarray) -> BoostedTrees:
        n, d = codes.shape
        bins = codes.max(axis=0).astype(np.int64) + 1
        self.offsets_ = np.concatenate([[0], np.cumsum(bins)[:-1]]).astype(np.int64)
        width = int(bins.sum())
        flat = codes.astype(np.int64) + self.offsets_  # one code space for every feature
        owner = np.repeat(np.arange(d), bins)  # the feature of each flat code
        first = np.repeat(self.offsets_, bins)  # the first code of that feature
        last = np.zeros(width, bool)
        last[self.offsets_ + bins - 1] = True  # nothing to split after a feature's last code
        score = self._start(y)
        rounds = self.rounds if score.shape[1] <= 2 else max(8, self.rounds * 2 // score.shape[1])
        rows = np.arange(n)
        for _ in range(rounds):
            grad, hess = self._gradients(score, y)
            for c in range(grad.shape[1]):
                tree, leaf = self._grow(flat, grad[:, c], hess[:, c], width, owner, first, last, rows, d)
                tree.column = c
                self.trees_.append(tree)
                score[:, c] += tree.values[leaf]
        return self

    def _start(self, y: np.ndarray) -> np.ndarray:
        if self.kind == "regression":
            self.base_ = np.array([float(y.mean())])
        else:
            self.classes_ = int(y.max()) + 1
            share = np.clip(np.bincount(y, minlength=self.classes_) / len(y), 1e-6, 1 - 1e-6)
            self.base_ = np.log(share[1:2] / share[:1]) if self.classes_ == 2 else np.log(share)
        return np.tile(self.base_, (len(y), 1))

    def _gradients(self, score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "regression":
            return score - y[:, None], np.ones_like(score)
        if self.classes_ == 2:
            p = 1.0 / (1.0 + np.exp(-score))
            return p - y[:, None], p * (1.0 - p)
        p = np.exp(score - score.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        onehot = np.zeros_like(p)
        onehot[np.arange(len(y)), y] = 1.0
        return p - onehot, p * (1.0 - p)

    def _grow(self, flat: np.ndarray, g: np.ndarray, h: np.ndarray, width: int, owner: np.ndarray,
              first: np.ndarray, last: np.ndarray, rows: np.ndarray, d: int) -> tuple[_Tree, np.ndarray]:
        node = np.zeros(len(g), np.int64)
        tree = _Tree(0, [], [], [], np.zeros(0))
        weights = [g, h] if self.kind == "regression" else [g, h, np.ones(len(g))]  # row counts: h is 1 in a regression
        parent: list[np.ndarray] = []
        for level in range(self.depth):
            nodes = 2**level
            if level == 0:
                where = flat.ravel()
                sums = [np.bincount(where, weights=np.repeat(w, d), minlength=width).reshape(1, width) for w in weights]
            else:
                # Histogram subtraction: sum the left children's rows only; a right child is its
                # parent less its sibling.
                lefts = np.flatnonzero(node % 2 == 0)
                where = ((node[lefts] // 2)[:, None] * width + flat[lefts]).ravel()
                sums = []
                for w, up in zip(weights, parent, strict=True):
                    left_sum = np.bincount(where, weights=np.repeat(w[lefts], d), minlength=nodes // 2 * width).reshape(nodes // 2, width)
                    both = np.empty((nodes, width))
                    both[0::2], both[1::2] = left_sum, up - left_sum
                    sums.append(both)
            parent = sums
            count = sums[-1]
            # Left of a cut: every code of the same feature up to it (the running sum restarts
            # at each feature's first code); right: the node's total less that.
            left = []
            for total_by_code in sums:
                run = np.cumsum(total_by_code, axis=1)
                left.append(run - np.where(first > 0, run[:, np.maximum(first - 1, 0)], 0.0))
            total = [t[:, owner == 0].sum(axis=1, keepdims=True) for t in sums]  # each row has one code of feature 0
            gl, hl, nl = left[0], left[1], left[-1]
            gr, hr, nr = total[0] - gl, total[1] - hl, total[-1] - nl
            gain = gl**2 / (hl + self.l2) + gr**2 / (hr + self.l2) - total[0] ** 2 / (total[1] + self.l2)
            gain[:, last] = -np.inf
            gain[(nl < self.min_rows) | (nr < self.min_rows)] = -np.inf
            best = gain.argmax(axis=1)
            split = gain[np.arange(nodes), best] > 1e-9
            feature = owner[best]
            tree.features.append(feature)
            tree.cuts.append(best)
            tree.splits.append(split)
            del count
            node = 2 * node + ((flat[rows, feature[node]] > best[node]) & split[node])
        leaves = 2**self.depth
        gs = np.bincount(node, weights=g, minlength=leaves)
        hs = np.bincount(node, weights=h, minlength=leaves)
        tree.values = -self.learning_rate * gs / (hs + self.l2)
        return tree, node

    def decision(self, codes: np.ndarray) -> np.ndarray:
        """Raw scores: (rows, 1) for a regression or two classes, (rows, classes) for more."""
        flat = codes.astype(np.int64) + self.offsets_
        rows = np.arange(len(flat))
        score = np.tile(self.base_, (len(flat), 1))
        for tree in self.trees_:
            node = np.zeros(len(flat), np.int64)
            for feature, cut, split in zip(tree.features, tree.cuts, tree.splits, strict=True):
                node = 2 * node + ((flat[rows, feature[node]] > cut[node]) & split[node])
            score[:, tree.column] += tree.values[node]
        return score

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """The predicted value, or class code."""
        score = self.decision(codes)
        if self.kind == "regression":
            return score[:, 0]
        if self.classes_ == 2:
            return (score[:, 0] > 0).astype(np.int64)
        return score.argmax(axis=1)


def _average_path(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful search in a binary search tree of ``n`` keys."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    many = n > 2
    out[many] = 2.0 * (np.log(n[many] - 1.0) + np.euler_gamma) - 2.0 * (n[many] - 1.0) / n[many]
    out[n == 2] = 1.0
    return out


def isolation_scores(x: np.ndarray, *, trees: int = 100, samples: int = 256, seed: int = 0) -> np.ndarray:
    """Isolation Forest anomaly scores in (0, 1], higher for rows isolated sooner (Liu, Ting
    and Zhou, 2008, as scikit-learn's ``IsolationForest`` computes them: each tree is grown
    on ``samples`` rows drawn without replacement, to depth log2(samples), splitting on a
    random feature that varies in the node at a uniform cut between its min and max).
    """
    forest = _Forest.grow(x, trees=trees, samples=samples, seed=seed)
    return 2.0 ** (-forest.path_lengths(x) / _average_path(np.array([forest.samples]))[0])


@dataclass
class _Forest:
    """Isolation trees in heap layout (node k's children are 2k+1 and 2k+2), one row each."""

    samples: int
    depth: int
    feature: np.ndarray  # (trees, nodes): the split feature
    cut: np.ndarray  # (trees, nodes): rows above it go right
    leaf: np.ndarray  # (trees, nodes): no split here
    count: np.ndarray  # (trees, nodes): training rows that reached the node

    @classmethod
    def grow(cls, x: np.ndarray, *, trees: int, samples: int, seed: int) -> _Forest:
        n, d = x.shape
        psi = min(samples, n)
        depth = max(1, int(np.ceil(np.log2(max(psi, 2)))))
        size = 2 ** (depth + 1) - 1  # heap layout: node k's children are 2k+1 and 2k+2
        rng = np.random.default_rng(seed)
        sub = np.stack([x[rng.choice(n, psi, replace=False)] for _ in range(trees)])  # (trees, psi, d)
        feature = np.zeros((trees, size), np.int64)
        cut = np.zeros((trees, size))
        leaf = np.ones((trees, size), bool)
        count = np.zeros((trees, size), np.int64)
        node = np.zeros(trees * psi, np.int64)
        tree_of = np.repeat(np.arange(trees), psi)
        values = sub.reshape(trees * psi, d)
        for level in range(depth + 1):
            start, width = 2**level - 1, 2**level
            here = node >= start  # rows still splitting (the others sit in a leaf above)
            key = tree_of[here] * width + node[here] - start
            counts = np.bincount(key, minlength=trees * width)
            count[:, start:start + width] = counts.reshape(trees, width)
            if level == depth:
                break
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            heads = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
            present = sorted_key[heads]
            lo = np.minimum.reduceat(values[here][order], heads, axis=0)
            hi = np.maximum.reduceat(values[here][order], heads, axis=0)
            varying = hi > lo
            m = varying.sum(axis=1)
            splits = (counts[present] > 1) & (m > 0)
            pick = np.minimum((rng.random(len(present)) * m).astype(np.int64), np.maximum(m - 1, 0))
            f = np.argmax(np.cumsum(varying, axis=1) > pick[:, None], axis=1)
            at = np.arange(len(present))
            c = lo[at, f] + rng.random(len(present)) * (hi[at, f] - lo[at, f])
            t, k = present // width, present % width + start
            feature[t, k], cut[t, k], leaf[t, k] = f, c, ~splits
            moving = np.flatnonzero(here)[splits[np.searchsorted(present, key)]]
            t_m, n_m = tree_of[moving], node[moving]
            node[moving] = 2 * n_m + 1 + (values[moving, feature[t_m, n_m]] > cut[t_m, n_m])
        return cls(psi, depth, feature, cut, leaf, count)

    def path_lengths(self, x: np.ndarray) -> np.ndarray:
        """Each row's path length averaged over the trees (a leaf adds the expected depth of
        the rows it held). Nodes are numbered across the forest, and a leaf is its own child,
        so every row takes ``depth`` steps, a block of rows at a time."""
        trees, size = self.feature.shape
        first = np.arange(trees)[:, None, None] * size
        kids = np.stack([2 * np.arange(size) + 1, 2 * np.arange(size) + 2], axis=-1)[None]  # (1, size, 2)
        itself = np.arange(trees * size).reshape(trees, size)[..., None]
        child = np.where(self.leaf[..., None] | (kids >= size), itself, np.minimum(kids, size - 1) + first).reshape(-1).astype(np.int32)
        depth_of = np.floor(np.log2(np.arange(size) + 1.0))
        ends = (depth_of + _average_path(self.count)).reshape(-1)
        feature, cut = self.feature.reshape(-1).astype(np.int32), self.cut.reshape(-1)
        total = np.zeros(len(x))
        block = max(1, 400_000 // trees)
        for lo in range(0, len(x), block):
            chunk = np.ascontiguousarray(x[lo:lo + block]).reshape(-1)
            row_start = (np.arange(len(chunk) // x.shape[1], dtype=np.int32) * x.shape[1])[:, None]
            at = np.broadcast_to(np.arange(trees, dtype=np.int32) * size, (len(row_start), trees))
            for _ in range(self.depth):
                at = child.take(2 * at + (chunk.take(row_start + feature.take(at)) > cut.take(at)))
            total[lo:lo + block] = ends.take(at).sum(axis=1)
        return total / trees
