"""All trees of a gradient-boosted model scored at once, with scikit-learn's exact sums.

A fitted ``HistGradientBoostingClassifier`` keeps one small node array per
tree. ``flatten`` joins them into one set of arrays (``Forest``). Two scorers
give the raw (log-odds) score from it:

* ``raw_masks`` (compiled by numba): no tree is walked. A tree compares each
  feature with a few thresholds, so all that matters of a value is its *bin*
  among the sorted distinct thresholds of that feature (NaN has a bin of its
  own). ``leaf_masks`` precomputes, per feature and bin, for every tree, a
  bit mask of the leaves still reachable; for a row, the AND of its features'
  masks has one bit left in each tree: its exit leaf (the idea of QuickScorer,
  Lucchese et al., SIGIR 2015, taken to bins). A row costs one binary search
  per feature and a few ANDs per tree, all trees at once. Batches of many rows
  are split over the cores with plain threads (``nogil``; no numba threading
  layer, so two threads may score at the same time). Compiled once per
  process at model load (``MaskScorer``), and cached on disk by numba.
* ``raw_numpy``: every (row, tree) pair walked at once with numpy fancy
  indexing, each leaf pointing to itself so that all rows take the same number
  of steps: the fallback when numba is missing or a model is too large for the
  masks. Fast for a few rows only.

A node sends a row left when ``x <= threshold``, or when x is NaN and the node
learned that missing values go left: scikit-learn's rule, which the bins keep
exactly (``x <= t`` if and only if fewer than ``t``'s rank of the cuts are
below ``x``). scikit-learn adds the trees' leaf values one by one, in tree
order, to the baseline; both scorers add in that same order, so the sums are
bit-for-bit scikit-learn's.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serving import jit

log = logging.getLogger("serving.trees")

# Rows per block of the compiled walk: a block's bins and sums stay in L1 while every tree is walked over it.
BLOCK_ROWS = 64
# Batches from this size up are split over the cores.
PARALLEL_MIN_ROWS = 20_000


@dataclass(frozen=True)
class Forest:
    """The trees of one model, flattened: node i's children are children[2i] (left), children[2i + 1] (right)."""

    children: np.ndarray      # int64 (2 * nodes,); a leaf's children are itself
    feature: np.ndarray       # int64 (nodes,); 0 for a leaf (never read for a decision)
    threshold: np.ndarray     # float64 (nodes,)
    missing_left: np.ndarray  # bool (nodes,)
    value: np.ndarray         # float64 (nodes,); the leaf values, shrinkage included
    roots: np.ndarray         # int64 (trees,)
    depths: np.ndarray        # int64 (trees,): steps from the root to the deepest leaf
    baseline: float

    @property
    def n_trees(self) -> int:
        return len(self.roots)


def flatten(model) -> Forest | None:
    """Return the trees of a binary, numeric-only HistGradientBoostingClassifier, or None for another shape."""
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        return None
    if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
        return None
    predictors = [iteration[0] for iteration in model._predictors]
    sizes = np.array([len(p.nodes) for p in predictors], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    nodes = np.concatenate([p.nodes for p in predictors])
    own = np.arange(len(nodes), dtype=np.int64)
    shift = np.repeat(offsets, sizes)
    is_leaf = nodes["is_leaf"].astype(bool)
    left = np.where(is_leaf, own, nodes["left"].astype(np.int64) + shift)
    right = np.where(is_leaf, own, nodes["right"].astype(np.int64) + shift)
    children = np.empty(2 * len(nodes), dtype=np.int64)
    children[0::2], children[1::2] = left, right
    depths = np.array([int(p.nodes["depth"].max()) for p in predictors], dtype=np.int64)
    return Forest(children=children, feature=np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.int64),
                  threshold=nodes["num_threshold"].astype(np.float64),
                  missing_left=nodes["missing_go_to_left"].astype(bool),
                  value=nodes["value"].astype(np.float64), roots=offsets, depths=depths,
                  baseline=float(np.asarray(model._baseline_prediction).ravel()[0]))


# --------------------------------------------------------------------------- numpy

def raw_numpy(forest: Forest, x: np.ndarray) -> np.ndarray:
    """Walk every (row, tree) pair at once with numpy; return the raw scores."""
    n = len(x)
    idx = np.broadcast_to(forest.roots, (n, forest.n_trees))
    rows = np.arange(n)[:, None]
    left, right = forest.children[0::2], forest.children[1::2]
    for _ in range(int(forest.depths.max(initial=0))):
        v = x[rows, forest.feature[idx]]
        go_left = (v <= forest.threshold[idx]) | (np.isnan(v) & forest.missing_left[idx])
        idx = np.where(go_left, left[idx], right[idx])
    # A cumulative sum adds the baseline, then tree after tree: scikit-learn's order, so its exact result.
    terms = np.concatenate([np.full((n, 1), forest.baseline), forest.value[idx]], axis=1)
    return np.cumsum(terms, axis=1)[:, -1]


# --------------------------------------------------------------------------- leaf masks (numba)

# A tree with more leaves than this, or masks larger than this, is walked instead.
MAX_LEAVES = 64
MAX_MASK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LeafMasks:
    """Every tree's exit leaf as an AND of per-feature masks, looked up by the row's bin of each feature.

    For feature j, ``cuts[cut_start[j]:cut_start[j + 1]]`` are the sorted distinct thresholds the
    trees compare it with, and the row's bin is how many of them are below its value (NaN: one bin
    after the last). ``masks[mask_start[j] + bin * trees + t]`` has a bit for each leaf of tree t
    that a row in that bin can still reach as far as feature j decides; the AND over the features
    leaves exactly one bit, the leaf the walk would reach (each leaf off the path is cut off by the
    node where the path turns away from it). ``leaf_value[t * width + k]`` is leaf k's value.
    """

    columns: np.ndarray     # int64 (used features,): the column of each used feature
    cuts: np.ndarray        # float64
    cut_start: np.ndarray   # int64 (used features + 1,)
    masks: np.ndarray       # uint8/16/32/64
    mask_start: np.ndarray  # int64 (used features,)
    init: np.ndarray        # the leaves each tree has, as a mask (trees that split on no feature)
    leaf_value: np.ndarray  # float64 (trees * width,)
    width: int
    baseline: float


def _leaves_below(forest: Forest, node: int, leaf_bit: dict[int, int]) -> int:
    left, right = forest.children[2 * node], forest.children[2 * node + 1]
    if left == node:
        return 1 << leaf_bit[node]
    return _leaves_below(forest, int(left), leaf_bit) | _leaves_below(forest, int(right), leaf_bit)


def leaf_masks(forest: Forest) -> LeafMasks | None:
    """Build the per-feature leaf masks of a forest, or None when it has too many leaves per tree or bins."""
    n_trees, n_nodes = forest.n_trees, len(forest.value)
    ends = np.append(forest.roots[1:], n_nodes)
    is_leaf = forest.children[0::2] == np.arange(n_nodes)
    leaves = [np.flatnonzero(is_leaf[a:b]) + a for a, b in zip(forest.roots, ends)]
    most = max((len(v) for v in leaves), default=1)
    if most > MAX_LEAVES:
        return None
    width = next(bits for bits in (8, 16, 32, 64) if most <= bits)
    dtype = np.dtype(f"uint{width}")
    internal = np.flatnonzero(~is_leaf)
    used = np.unique(forest.feature[internal])
    cuts = [np.unique(forest.threshold[internal][forest.feature[internal] == j]) for j in used]
    if sum(len(c) + 2 for c in cuts) * n_trees * dtype.itemsize > MAX_MASK_BYTES:
        return None
    tree_of = np.repeat(np.arange(n_trees), ends - forest.roots)
    leaf_bit = {int(node): k for v in leaves for k, node in enumerate(v)}
    init = np.array([(1 << len(v)) - 1 for v in leaves], dtype=np.uint64).astype(dtype)
    per_feature = {int(j): np.tile(init, (len(c) + 2, 1)) for j, c in zip(used, cuts)}
    for node in internal:
        j, t = int(forest.feature[node]), int(tree_of[node])
        c = cuts[int(np.searchsorted(used, j))]
        k = int(np.searchsorted(c, forest.threshold[node]))  # bins 0..k go left, k+1..len(c) right
        keep_left = dtype.type(~_leaves_below(forest, int(forest.children[2 * node + 1]), leaf_bit) & (2**width - 1))
        keep_right = dtype.type(~_leaves_below(forest, int(forest.children[2 * node]), leaf_bit) & (2**width - 1))
        m = per_feature[j]
        m[: k + 1, t] &= keep_left
        m[k + 1: len(c) + 1, t] &= keep_right
        m[len(c) + 1, t] &= keep_left if forest.missing_left[node] else keep_right
    blocks = [per_feature[int(j)].ravel() for j in used]
    sizes = np.array([len(b) for b in blocks], dtype=np.int64)
    leaf_value = np.zeros(n_trees * width)
    for t, v in enumerate(leaves):
        leaf_value[t * width: t * width + len(v)] = forest.value[v]
    return LeafMasks(columns=used.astype(np.int64),
                     cuts=np.concatenate(cuts) if cuts else np.zeros(0),
                     cut_start=np.concatenate([[0], np.cumsum([len(c) for c in cuts])]).astype(np.int64),
                     masks=np.concatenate(blocks) if blocks else np.zeros(0, dtype=dtype),
                     mask_start=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
                     init=init, leaf_value=leaf_value, width=width, baseline=forest.baseline)


# The position of the one set bit of a uint64, by de Bruijn multiplication (exact integer arithmetic).
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int64)
for _k in range(64):
    _DEBRUIJN_INDEX[((1 << _k) * 0x03F79D71B4CB0A89 & (2**64 - 1)) >> 58] = _k


def _score_masks(x, out, start, stop, columns, cuts, cut_start, masks, mask_start, init, leaf_value, width,
                 baseline, debruijn, debruijn_index):
    """Fill out[start:stop] with the raw scores of x[start:stop] (compiled by numba).

    Rows go in blocks: first each row's bin of each feature, then tree after tree, the exit
    leaf of every row of the block. The rows' sums are independent chains the CPU overlaps
    (a decision's row and its substitutions are one block); each row still adds its trees in order.
    """
    n_trees = init.shape[0]
    n_used = columns.shape[0]
    where = np.empty((BLOCK_ROWS, n_used), dtype=np.int64)
    acc = np.empty(BLOCK_ROWS, dtype=np.float64)
    for first in range(start, stop, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, stop - first)
        for r in range(rows):
            for f in range(n_used):
                v = x[first + r, columns[f]]
                lo, hi = cut_start[f], cut_start[f + 1]
                if v != v:
                    b = hi - lo + 1
                else:  # how many cuts are below v: binary search
                    a, z = lo, hi
                    while a < z:
                        mid = (a + z) >> 1
                        if cuts[mid] < v:
                            a = mid + 1
                        else:
                            z = mid
                    b = a - lo
                where[r, f] = mask_start[f] + b * n_trees
            acc[r] = baseline
        for t in range(n_trees):  # tree after tree, as scikit-learn adds them
            for r in range(rows):
                vec = init[t]
                for f in range(n_used):
                    vec &= masks[where[r, f] + t]
                leaf = debruijn_index[(np.uint64(vec) * debruijn) >> np.uint64(58)]
                acc[r] += leaf_value[t * width + leaf]
        for r in range(rows):
            out[first + r] = acc[r]


_cores: int | None = None
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def cores() -> int:
    """Return the CPUs this process may use (read once)."""
    global _cores
    if _cores is None:
        try:
            _cores = max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            _cores = os.cpu_count() or 1
    return _cores


def _pool_of(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(n, thread_name_prefix="trees")
    return _pool


class MaskScorer:
    """The compiled leaf-mask scorer of one model: call it with a float matrix to get the raw scores.

    Building it compiles the loop (or loads it from numba's cache), at model load. A call goes
    straight to the compiled version for these argument types, skipping numba's per-call type
    dispatch (a few microseconds of a one-row decision); the dispatcher stays the fallback.
    """

    def __init__(self, lm: LeafMasks):
        self.lm = lm
        self.args = (lm.columns, lm.cuts, lm.cut_start, lm.masks, lm.mask_start, lm.init, lm.leaf_value,
                     lm.width, lm.baseline, _DEBRUIJN, _DEBRUIJN_INDEX)
        started = time.perf_counter()
        probe = np.zeros((1, int(lm.columns.max(initial=-1)) + 1))
        self.call = jit.compile_loop(_score_masks, probe, np.empty(1), 0, 1, *self.args)
        self.compile_seconds = time.perf_counter() - started
        log.info("compiled tree scorer ready in %.3f s", self.compile_seconds)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != np.float64 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64)
        n = len(x)
        out = np.empty(n, dtype=np.float64)
        if n < PARALLEL_MIN_ROWS or cores() == 1:
            self.call(x, out, 0, n, *self.args)
            return out
        bounds = np.linspace(0, n, cores() + 1).astype(np.int64)
        pool = _pool_of(cores())
        for future in [pool.submit(self.call, x, out, int(a), int(b), *self.args)
                       for a, b in zip(bounds[:-1], bounds[1:])]:
            future.result()
        return out


def raw_masks(lm: LeafMasks, x: np.ndarray) -> np.ndarray:
    """Score rows with the compiled leaf-mask lookup (compiling first if needed); return the raw scores."""
    return MaskScorer(lm)(x)
