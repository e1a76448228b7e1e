"""Personalize's offline metrics (spec §12.2) and ``evaluate``, which computes them.

Every metric is a mean over test users of a per-user value, computed here from a
*hit matrix*: row ``u`` marks which positions of user ``u``'s ranked list hold a
relevant item (position 0 = top). Lists shorter than the cut-off are padded with
misses, so a recipe that returns fewer items can only lose.

* precision@K = hits in the top K / K (K, not the list length, as Personalize does);
* NDCG@K = DCG@K / IDCG@K with gain ``1 / log(1 + position)`` (position 1 = top) and
  the ideal list holding ``min(K, #relevant)`` hits; the log base cancels out;
* MRR@K = 1 / position of the highest-ranked relevant item in the top K, else 0;
* coverage = distinct items in all the top-25 lists / items in the catalogue.

A user with no relevant items scores 0 on every metric (the split never makes one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from pertinent.evaluation.split import UserSplit, split_users
from pertinent.recipes.base import BoolArray, Model, Recipe, TrainingData

__all__ = [
    "CUTOFFS",
    "METRIC_KEYS",
    "NUM_RESULTS",
    "coverage",
    "evaluate",
    "hit_matrix",
    "mean_reciprocal_rank",
    "ndcg",
    "precision",
    "recommend_for_split",
]

NUM_RESULTS = 25
"""List length asked of the model for every test user (Personalize's numResults)."""

CUTOFFS = (5, 10, 25)

METRIC_KEYS = (
    "coverage",
    "mean_reciprocal_rank_at_25",
    "normalized_discounted_cumulative_gain_at_5",
    "normalized_discounted_cumulative_gain_at_10",
    "normalized_discounted_cumulative_gain_at_25",
    "precision_at_5",
    "precision_at_10",
    "precision_at_25",
)
"""The keys of ``evaluate``'s result, as GetSolutionMetrics names them."""

FloatVector = npt.NDArray[np.float64]
AnyInts = npt.NDArray[np.integer[Any]]
RankedLists = Sequence[AnyInts] | AnyInts
"""One ranked list per user: a sequence of 1-D arrays, or a 2-D array padded with -1."""


def hit_matrix(
    ranked: RankedLists,
    relevant: Sequence[AnyInts],
    length: int,
) -> BoolArray:
    """``hits[u, p]``: is the item at position ``p`` of ``ranked[u]`` in ``relevant[u]``.

    ``ranked`` is one list per user (or a 2-D array padded with -1); lists are cut or
    padded (with misses) to ``length``. Duplicates in ``relevant`` count once; lists are
    assumed free of duplicates, as ``Model.recommend`` guarantees.
    """
    padded = _pad(ranked, length)
    n_users = padded.shape[0]
    if n_users == 0 or length == 0:
        return np.zeros((n_users, length), dtype=bool)
    # One int64 key per (user, item) pair makes membership a single vectorised isin.
    rel_sizes = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n_users)
    rel_items = (
        np.concatenate([np.asarray(r, dtype=np.int64) for r in relevant])
        if rel_sizes.sum()
        else np.empty(0, dtype=np.int64)
    )
    span = int(max(padded.max(initial=0), rel_items.max(initial=0))) + 1
    rows = np.arange(n_users, dtype=np.int64)
    rel_keys = np.repeat(rows, rel_sizes) * span + rel_items
    keys = rows[:, None] * span + padded
    hits: BoolArray = np.isin(keys, rel_keys) & (padded >= 0)
    return hits


def precision(hits: BoolArray, k: int) -> FloatVector:
    """Per-user precision@k: hits in the top k over k."""
    _check_k(hits, k)
    out: FloatVector = hits[:, :k].sum(axis=1) / float(k)
    return out


def ndcg(hits: BoolArray, n_relevant: npt.NDArray[np.int64], k: int) -> FloatVector:
    """Per-user NDCG@k with gain 1/log(1 + position); 0 for users with nothing relevant."""
    _check_k(hits, k)
    gains = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = hits[:, :k].astype(np.float64) @ gains
    ideal_hits = np.minimum(n_relevant, k)
    ideal = np.concatenate(([0.0], np.cumsum(gains)))[ideal_hits]
    out = np.zeros(hits.shape[0], dtype=np.float64)
    has = ideal_hits > 0
    out[has] = dcg[has] / ideal[has]
    return out


def mean_reciprocal_rank(hits: BoolArray, k: int) -> FloatVector:
    """Per-user reciprocal rank of the highest-ranked relevant item in the top k, else 0."""
    _check_k(hits, k)
    top = hits[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)


def coverage(ranked: RankedLists, n_items: int) -> float:
    """Distinct items recommended in any list, over the catalogue size."""
    if n_items <= 0:
        return 0.0
    padded = _pad(ranked, None)
    items = np.unique(padded[padded >= 0])
    return float(items.shape[0]) / float(n_items)


def recommend_for_split(
    model: Model, split: UserSplit, *, n: int = NUM_RESULTS, exclude_history: bool = False
) -> npt.NDArray[np.int64]:
    """Each test user's top-``n`` list for their request (``split.query``), padded with -1.

    ``exclude_history`` removes the input items from the candidates. Personalize's
    metrics don't (a campaign doesn't either), so it is off by default; turn it on only
    to compare with papers that filter seen items.
    """
    out = np.full((len(split), n), -1, dtype=np.int64)
    allowed: BoolArray | None = None
    if exclude_history:
        allowed = np.ones(model.n_items, dtype=bool)
    for k in range(len(split)):
        history = split.history(k)
        if allowed is not None:
            allowed[history] = False
        items = model.recommend(split.query(k), n, allowed).items
        if allowed is not None:
            allowed[history] = True
        out[k, : items.shape[0]] = items
    return out


def evaluate(
    recipe: Recipe, data: TrainingData, *, seed: int, exclude_history: bool = False
) -> dict[str, float]:
    """Fit ``recipe`` on the training split of ``data`` and score it on the test users.

    Deterministic: the same data, recipe and seed give the same dictionary, whose keys
    are ``METRIC_KEYS``. ``exclude_history``: see ``recommend_for_split``.
    """
    split = split_users(data, seed=seed)
    model = recipe.fit(split.train)
    ranked = recommend_for_split(model, split, exclude_history=exclude_history)
    relevant = [split.relevant(k) for k in range(len(split))]
    n_relevant = np.diff(split.relevant_offsets)
    hits = hit_matrix(ranked, relevant, NUM_RESULTS)

    def mean(values: FloatVector) -> float:
        return float(values.mean()) if values.shape[0] else 0.0

    result = {
        "coverage": coverage(ranked, data.n_items),
        "mean_reciprocal_rank_at_25": mean(mean_reciprocal_rank(hits, 25)),
    }
    for k in CUTOFFS:
        result[f"normalized_discounted_cumulative_gain_at_{k}"] = mean(ndcg(hits, n_relevant, k))
    for k in CUTOFFS:
        result[f"precision_at_{k}"] = mean(precision(hits, k))
    out = {key: result[key] for key in METRIC_KEYS}
    objective = data.extra.get("objective")
    values = getattr(objective, "values", None)
    if values is not None:
        out["average_rewards_at_k"] = average_rewards(ranked, relevant, values, 25)
    return out


def average_rewards(
    ranked: RankedLists,
    relevant: Sequence[AnyInts],
    rewards: npt.NDArray[np.float64],
    k: int,
) -> float:
    """Per user, the reward of the held-out items found in the top ``k`` over the reward
    of all held-out items, averaged over users with any reward (spec §12.2's
    ``average_rewards_at_k``, whose exact formula is not published)."""
    reward = np.nan_to_num(np.maximum(rewards, 0.0))
    lists = _pad(ranked, k)
    shares = []
    for row, items in zip(lists, relevant, strict=True):
        total = float(reward[items].sum())
        if total <= 0:
            continue
        found = np.intersect1d(row[row >= 0], items)
        shares.append(float(reward[found].sum()) / total)
    return float(np.mean(shares)) if shares else 0.0


def _pad(ranked: RankedLists, length: int | None) -> npt.NDArray[np.int64]:
    """Lists as a 2-D int64 array, cut or padded with -1 to ``length`` (None: longest)."""
    if isinstance(ranked, np.ndarray) and ranked.ndim == 2:
        array = ranked.astype(np.int64, copy=False)
        if length is None or array.shape[1] == length:
            return array
        if array.shape[1] > length:
            return array[:, :length]
        pad = np.full((array.shape[0], length - array.shape[1]), -1, dtype=np.int64)
        return np.concatenate((array, pad), axis=1)
    lists = [np.asarray(r, dtype=np.int64) for r in ranked]
    width = length if length is not None else max((r.shape[0] for r in lists), default=0)
    out = np.full((len(lists), width), -1, dtype=np.int64)
    for row, items in enumerate(lists):
        items = items[:width]
        out[row, : items.shape[0]] = items
    return out


def _check_k(hits: BoolArray, k: int) -> None:
    if not 0 < k <= hits.shape[1]:
        raise ValueError(f"cut-off k={k} must be in 1..{hits.shape[1]} (the hit matrix width)")
