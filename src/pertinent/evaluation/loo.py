"""Leave-last-out evaluation with full ranking, the academic protocol of spec/quality.md.

Each user's last interaction is the test target and the one before it the validation
target; the model ranks **every** item, the items already in the user's input are
removed, and ties are broken at random (optimistic tie-breaking inflated NDCG by 13 %
in quality.md §1.3). One relevant item per user, so HR@10 equals Recall@10.

Consecutive repeats of the same item are collapsed first (a view followed by a
purchase of that item is one step of the sequence): with seen items removed, a repeat
could never be hit, and sessions data is full of them.

With seen items removed, a user whose target is an earlier item of their own input is
not evaluated: the task is "the next new item", which no such target is. Keeping the
target rankable while removing the rest of the input leaked it: the one input item left
was the answer, so a model that scored its input high (EASE, iALS) hit it for free
(36 % of the generated data's targets, 23 % of Diginetica's; bench/results/oracle.json).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from pertinent.recipes.base import (
    CategoricalFeature,
    FeatureTable,
    FloatArray,
    IntArray,
    Interactions,
    NumericFeature,
    Query,
    TrainingData,
)

__all__ = ["LooSplit", "evaluate_loo", "leave_last_out", "rank_of_target", "repeat_targets"]

BatchScorer = Callable[[Sequence[Query]], npt.NDArray[np.floating]]


@dataclass(frozen=True)
class LooSplit:
    """Training data plus, per evaluated user, the input history and the one target."""

    train: TrainingData
    users: IntArray
    history_offsets: npt.NDArray[np.int64]
    history_items: IntArray
    history_times: npt.NDArray[np.int64]
    targets: IntArray

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def query(self, k: int) -> Query:
        lo, hi = self.history_offsets[k], self.history_offsets[k + 1]
        return Query(
            history=self.history_items[lo:hi],
            user=int(self.users[k]),
            history_times=self.history_times[lo:hi],
            time=int(self.history_times[hi - 1]) if hi > lo else None,
        )


def _collapse_repeats(inter: Interactions) -> npt.NDArray[np.bool_]:
    """Rows to keep: drop a row that repeats the previous row's item for the same user."""
    keep = np.ones(len(inter), dtype=bool)
    if len(inter) > 1:
        same = (inter.user[1:] == inter.user[:-1]) & (inter.item[1:] == inter.item[:-1])
        keep[1:] = ~same
    return keep


def take_csr(
    offsets: npt.NDArray[np.int64], values: IntArray, rows: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], IntArray]:
    """The CSR rows selected by the mask ``rows``."""
    lengths = np.diff(offsets)[rows]
    starts = offsets[:-1][rows]
    new_offsets = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    idx = np.repeat(starts, lengths) + (
        np.arange(int(new_offsets[-1])) - np.repeat(new_offsets[:-1], lengths)
    )
    return new_offsets, values[idx]


def subset_table(table: FeatureTable, rows: npt.NDArray[np.bool_]) -> FeatureTable:
    cats = []
    for f in table.categorical:
        offsets, codes = take_csr(f.offsets, f.codes, rows)
        cats.append(CategoricalFeature(f.name, offsets, codes, f.vocabulary))
    nums = [NumericFeature(f.name, f.values[rows]) for f in table.numeric]
    return FeatureTable(int(rows.sum()), tuple(cats), tuple(nums))


def subset_interactions(inter: Interactions, rows: npt.NDArray[np.bool_]) -> Interactions:
    """The interaction rows selected by the mask ``rows``, every per-row extra included."""
    return replace(
        inter,
        user=inter.user[rows],
        item=inter.item[rows],
        timestamp=inter.timestamp[rows],
        event_type=None if inter.event_type is None else inter.event_type[rows],
        event_value=None if inter.event_value is None else inter.event_value[rows],
        weight=None if inter.weight is None else inter.weight[rows],
        impressions=None if inter.impressions is None else take_csr(*inter.impressions, rows),
        context=None if inter.context is None else subset_table(inter.context, rows),
    )


def leave_last_out(
    data: TrainingData, *, collapse_repeats: bool = True
) -> tuple[LooSplit, LooSplit]:
    """(validation split, test split).

    Users with at least 3 interactions (after collapsing repeats) are evaluated. The
    test split trains on everything but their last interaction; the validation split
    also withholds the one before, so tuning never sees the test target.
    """
    inter = data.interactions
    if collapse_repeats:
        inter = subset_interactions(inter, _collapse_repeats(inter))
    offsets = inter.user_offsets()
    lengths = np.diff(offsets)
    users = np.flatnonzero(lengths >= 3).astype(np.int32)
    last = offsets[users + 1] - 1

    def make(holdout: int) -> LooSplit:
        target_rows = last - (holdout - 1)
        drop = np.zeros(len(inter), dtype=bool)
        for h in range(holdout):
            drop[last - h] = True
        train = replace(data, interactions=subset_interactions(inter, ~drop))
        starts = offsets[users]
        lengths_in = target_rows - starts
        hist_offsets = np.zeros(users.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths_in, out=hist_offsets[1:])
        idx = np.repeat(starts, lengths_in) + (
            np.arange(int(lengths_in.sum())) - np.repeat(hist_offsets[:-1], lengths_in)
        )
        return LooSplit(
            train=train,
            users=users,
            history_offsets=hist_offsets,
            history_items=inter.item[idx],
            history_times=inter.timestamp[idx],
            targets=inter.item[target_rows],
        )

    return make(2), make(1)


def rank_of_target(scores: npt.NDArray[np.floating], target: int, rng: np.random.Generator) -> int:
    """0-based rank of ``target``; ties with it are broken uniformly at random."""
    value = scores[target]
    greater = int(np.count_nonzero(scores > value))
    ties = int(np.count_nonzero(scores == value))
    return greater + int(rng.integers(0, ties))


def evaluate_loo(
    score: BatchScorer,
    split: LooSplit,
    *,
    k: int = 10,
    seed: int = 0,
    exclude_seen: bool = True,
    batch_size: int = 256,
) -> dict[str, float]:
    """HR@k, NDCG@k and MRR over the split's users (full ranking, random ties), and
    ``users``, how many were evaluated: with ``exclude_seen`` those whose target is in
    their input are left out (module docstring)."""
    rng = np.random.default_rng(seed)
    evaluated = np.ones(len(split), dtype=bool)
    if exclude_seen:
        evaluated = ~repeat_targets(split)
    order = np.flatnonzero(evaluated)
    ranks = np.empty(order.shape[0], dtype=np.int64)
    for start in range(0, order.shape[0], batch_size):
        chunk = order[start : start + batch_size]
        queries = [split.query(int(i)) for i in chunk]
        matrix = np.asarray(score(queries), dtype=np.float64)
        for row, i in enumerate(chunk.tolist()):
            scores = matrix[row]
            if exclude_seen:
                scores = scores.copy()
                scores[queries[row].history] = -np.inf
            ranks[start + row] = rank_of_target(scores, int(split.targets[i]), rng)
    n = ranks.shape[0]
    hit = ranks < k
    ndcg = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {
        f"hr@{k}": float(hit.mean()) if n else 0.0,
        f"ndcg@{k}": float(ndcg.mean()) if n else 0.0,
        "mrr": float((1.0 / (ranks + 1.0)).mean()) if n else 0.0,
        "users": float(n),
    }


def repeat_targets(split: LooSplit) -> npt.NDArray[np.bool_]:
    """Per evaluated user: is the target an item of their own input?"""
    owner = np.repeat(np.arange(len(split)), np.diff(split.history_offsets))
    repeat = split.history_items == split.targets[owner]
    out: npt.NDArray[np.bool_] = np.bincount(owner[repeat], minlength=len(split)) > 0
    return out


def single(score_one: Callable[[Query], FloatArray]) -> BatchScorer:
    """Adapt a one-query scorer to the batch interface."""

    def batch(queries: Sequence[Query]) -> npt.NDArray[np.floating]:
        return np.stack([score_one(q) for q in queries])

    return batch
