"""SIMS (``aws-sims``): item-to-item collaborative filtering on co-occurrence.

Two items are related when the same users interacted with both. At fit time we count,
for every pair of items, the distinct users who have both in their history
(``co(i, j)``), discount each candidate neighbour by its popularity, and keep the best
``MAX_NEIGHBORS`` neighbours of every item as CSR arrays. A request then only slices
those arrays, and back-fills with the most popular items when an item has too few
neighbours, or is unknown, as Personalize does (spec §8.2).

Scoring. The neighbour ``j`` of item ``i`` scores ``co(i, j) / pop(j) ** f`` where
``pop(j)`` is the number of distinct (kept) users of ``j`` and ``f`` is
``popularity_discount_factor``. This matches the documented extremes:

* ``f = 0`` ranks by raw co-occurrence, which is dominated by popular items ("the most
  popular items regardless of their correlation");
* ``f = 1`` ranks by ``co(i, j) / pop(j) = P(i | j)``, the share of ``j``'s users who
  also had ``i``: any co-interacted item can win, however rare ("regardless of their
  popularity");
* ``f = 0.5``, the default, ranks the neighbours of a fixed ``i`` exactly as cosine
  similarity ``co / sqrt(pop(i) pop(j))`` does, since ``pop(i)`` is constant in the row,
  the usual best choice for item-kNN and the value the docs call best "for most cases".

Featurization filters (spec §8.2). Users whose history length (interaction rows) falls
outside the given percentiles are dropped before counting (bots, one-off visitors).
Items whose interaction count falls outside their percentiles are never *neighbours*,
but they keep their own neighbour lists: with the documented default (0.9) the top
10 % of items would otherwise get no related items at all, and a shop's best sellers
are exactly the pages where "customers also viewed" is shown. They can still appear
in any list through the popular back-fill.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field, ValidationInfo, field_validator

from pertinent.recipes.base import (
    BoolArray,
    FloatArray,
    IntArray,
    Interactions,
    Model,
    Params,
    Query,
    Ranked,
    Recipe,
    RecipeType,
    TrainingData,
)
from pertinent.recipes.popularity import first_allowed, interaction_popularity, popularity_order

__all__ = ["MAX_NEIGHBORS", "Sims", "SimsModel", "SimsParams"]

MAX_NEIGHBORS = 500
"""Neighbours kept per item; more than any request asks for (numResults ≤ 500)."""

# Upper bound on the co-occurrence entries computed at once (one block of item rows).
# Peak memory is a small multiple of this times ~24 bytes, i.e. a few hundred MB.
_BLOCK_ENTRIES = 4_000_000

_FORMAT = "pertinent.sims"
_VERSION = 1


class SimsParams(Params):
    """SIMS hyperparameters, names, defaults and ranges as in spec §8.2."""

    popularity_discount_factor: float = Field(default=0.5, ge=0.0, le=1.0, allow_inf_nan=False)
    min_cointeraction_count: int = Field(default=3, ge=0, le=10)
    min_user_history_length_percentile: float = Field(
        default=0.005, ge=0.0, le=1.0, allow_inf_nan=False
    )
    max_user_history_length_percentile: float = Field(
        default=0.995, ge=0.0, le=1.0, allow_inf_nan=False
    )
    min_item_interaction_count_percentile: float = Field(
        default=0.01, ge=0.0, le=1.0, allow_inf_nan=False
    )
    max_item_interaction_count_percentile: float = Field(
        default=0.9, ge=0.0, le=1.0, allow_inf_nan=False
    )

    # Checked on the max field (validated after the min, which is declared first) so
    # the error names a parameter, as ``Recipe.parse_params`` expects.
    @field_validator("max_user_history_length_percentile", "max_item_interaction_count_percentile")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        assert info.field_name is not None
        low_name = "min_" + info.field_name.removeprefix("max_")
        low = info.data.get(low_name)
        if low is not None and value < low:
            raise ValueError(f"must be at least {low_name} ({low})")
        return value


class SimsModel(Model):
    """Precomputed neighbour lists (CSR) plus the popularity order for back-fill."""

    def __init__(
        self,
        indptr: npt.NDArray[np.int64],
        neighbors: IntArray,
        scores: FloatArray,
        popular: IntArray,
    ) -> None:
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.neighbors = np.ascontiguousarray(neighbors, dtype=np.int32)
        self.scores = np.ascontiguousarray(scores, dtype=np.float32)
        self.popular = np.ascontiguousarray(popular, dtype=np.int32)
        self.n_items = int(self.popular.shape[0])
        if self.indptr.shape[0] != self.n_items + 1:
            raise ValueError("indptr must have n_items + 1 entries")
        # Position of each item in the popularity order, for O(k) back-fill.
        self.popularity_rank = np.empty(self.n_items, dtype=np.int64)
        self.popularity_rank[self.popular] = np.arange(self.n_items)
        for array in (self.indptr, self.neighbors, self.scores, self.popular, self.popularity_rank):
            array.setflags(write=False)  # shared between threads for reading only

    def neighbors_of(self, item: int) -> IntArray:
        """The precomputed neighbours of ``item``, best first (empty if it has none)."""
        return self.neighbors[self.indptr[item] : self.indptr[item + 1]]

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        if n <= 0:
            return Ranked(items=np.empty(0, dtype=np.int32), scores=None)
        seed = query.item
        if seed is None and query.history.shape[0] > 0:
            # A history-only query (offline metrics, batch) is seeded by the newest item.
            seed = int(query.history[-1])
        if seed is None or not 0 <= seed < self.n_items:
            # Unknown or absent item: popular items, as Personalize answers (spec §8.2).
            return Ranked(items=first_allowed(self.popular, n, allowed), scores=None)

        near = self.neighbors_of(seed)
        if allowed is not None:
            near = near[allowed[near]]
        if near.shape[0] >= n:
            return Ranked(items=near[:n].copy(), scores=None)
        return Ranked(items=self._backfill(seed, near, n, allowed), scores=None)

    def _backfill(self, seed: int, near: IntArray, n: int, allowed: BoolArray | None) -> IntArray:
        """``near`` followed by popular items that are neither ``seed`` nor in ``near``."""
        missing = n - near.shape[0]
        if allowed is None:
            # At most len(near) + 1 of the first candidates are excluded, so this many
            # popular items are always enough: no O(n_items) work on the hot path.
            # The excluded ones are found by their popularity rank, in O(len(near)).
            candidates = self.popular[: missing + near.shape[0] + 1]
            keep = np.ones(candidates.shape[0], dtype=bool)
            ranks = self.popularity_rank[near]
            keep[ranks[ranks < candidates.shape[0]]] = False
            seed_rank = self.popularity_rank[seed]
            if seed_rank < candidates.shape[0]:
                keep[seed_rank] = False
            fill = candidates[keep][:missing]
        else:
            mask = allowed.copy()
            mask[near] = False
            mask[seed] = False
            fill = first_allowed(self.popular, missing, mask)
        return np.concatenate((near, fill)).astype(np.int32, copy=False)

    def score_items(self, queries: Sequence[Query]) -> FloatArray:
        # Neighbours score above 1 in their order; every other item gets a distinct
        # value in (0, 1) by popularity, the order the back-fill uses; the seed sinks.
        base = np.empty(self.n_items, dtype=np.float32)
        base[self.popular] = 1.0 - (np.arange(self.n_items) + 1.0) / (self.n_items + 1.0)
        out = np.broadcast_to(base, (len(queries), self.n_items)).copy()
        for row, query in enumerate(queries):
            seed = query.item
            if seed is None and query.history.shape[0] > 0:
                seed = int(query.history[-1])
            if seed is None or not 0 <= seed < self.n_items:
                continue
            near = self.neighbors_of(seed)
            out[row, near] = 2.0 + np.arange(near.shape[0], 0, -1, dtype=np.float32)
            out[row, seed] = -np.inf
        return out

    def save(self, path: Path) -> None:
        np.savez(
            path / "model.npz",
            indptr=self.indptr,
            neighbors=self.neighbors,
            scores=self.scores,
            popular=self.popular,
        )
        meta = {"format": _FORMAT, "version": _VERSION, "n_items": self.n_items}
        (path / "model.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> SimsModel:
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ValueError(f"{path} does not hold a {_FORMAT} v{_VERSION} model: {meta!r}")
        with np.load(path / "model.npz", allow_pickle=False) as arrays:
            return cls(
                indptr=arrays["indptr"],
                neighbors=arrays["neighbors"],
                scores=arrays["scores"],
                popular=arrays["popular"],
            )


class Sims(Recipe):
    """Item-to-item similarities from co-occurrence in user histories.

    Example::

        recipe = Sims(Sims.parse_params({"popularity_discount_factor": "0.3"}))
        model = recipe.fit(data)
        model.recommend(Query(item=42), n=25).items
    """

    name: ClassVar[str] = "aws-sims"
    recipe_type: ClassVar[RecipeType] = "RELATED_ITEMS"
    Params: ClassVar[type[Params]] = SimsParams
    ModelClass: ClassVar[type[Model]] = SimsModel

    def fit(self, data: TrainingData) -> SimsModel:
        params = self.params
        assert isinstance(params, SimsParams)
        inter = data.interactions
        popular = popularity_order(interaction_popularity(inter))
        matrix, candidate = _filtered_user_item_matrix(inter, params)
        indptr, neighbors, scores = _neighbors(
            matrix,
            candidate,
            discount=params.popularity_discount_factor,
            min_count=max(params.min_cointeraction_count, 1),
            max_neighbors=MAX_NEIGHBORS,
        )
        return SimsModel(indptr=indptr, neighbors=neighbors, scores=scores, popular=popular)


def _within_percentiles(
    counts: npt.NDArray[np.int64], low: float, high: float, *, per_interaction: bool = False
) -> npt.NDArray[np.bool_]:
    """Which entries of ``counts`` lie within the ``[low, high]`` percentiles.

    The percentiles are taken over the non-zero counts (users or items that have any
    interaction). Values equal to a bound are kept, so a flat distribution loses nothing.
    With ``per_interaction`` each entry weighs as much as its count: the bounds are
    percentiles of the interactions, not of the entries.
    """
    present = counts > 0
    if not present.any():
        return present
    values = counts[present].astype(np.float64)
    if per_interaction:
        lo, hi = np.quantile(values, [low, high], weights=values, method="inverted_cdf")
    else:
        lo, hi = np.quantile(values, [low, high])
    keep: npt.NDArray[np.bool_] = present & (counts >= lo) & (counts <= hi)
    return keep


def _filtered_user_item_matrix(
    inter: Interactions, params: SimsParams
) -> tuple[sp.csr_matrix, BoolArray]:
    """Binary users × items CSR of the kept users, and which items may be neighbours."""
    n_users, n_items = inter.n_users, inter.n_items
    history_length = np.bincount(inter.user, minlength=n_users).astype(np.int64)
    item_count = np.bincount(inter.item, minlength=n_items).astype(np.int64)
    keep_user = _within_percentiles(
        history_length,
        params.min_user_history_length_percentile,
        params.max_user_history_length_percentile,
    )
    # Item bounds are percentiles of the interactions, not of the items: read per item,
    # the documented default (0.9) would take the whole head of a long-tailed catalogue,
    # where most interactions are, out of every related list; read per interaction it
    # trims only the extreme blockbusters, which "retains the majority" as the docs say.
    keep_item = _within_percentiles(
        item_count,
        params.min_item_interaction_count_percentile,
        params.max_item_interaction_count_percentile,
        per_interaction=True,
    )
    rows = keep_user[inter.user]
    keys = np.unique(inter.user[rows].astype(np.int64) * n_items + inter.item[rows])
    users = (keys // n_items).astype(np.int32)
    items = (keys % n_items).astype(np.int32)
    # Keys are sorted by (user, item), so this is already canonical CSR.
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    ones = np.ones(items.shape[0], dtype=np.int32)
    return sp.csr_matrix((ones, items, indptr), shape=(n_users, n_items)), keep_item


def _neighbors(
    matrix: sp.csr_matrix,
    candidate: BoolArray,
    *,
    discount: float,
    min_count: int,
    max_neighbors: int,
) -> tuple[npt.NDArray[np.int64], IntArray, FloatArray]:
    """Top neighbours of every item as CSR (indptr, neighbour indices, scores).

    The item × item co-occurrence matrix ``XᵀX`` is computed a block of item rows at a
    time; block sizes come from an upper bound on each row's entries, so memory stays
    bounded however large the catalogue is.
    """
    n_items = matrix.shape[1]
    by_item = matrix.T.tocsr()  # items × users
    popularity = np.asarray(by_item.sum(axis=1)).ravel().astype(np.float64)
    # Discount weights for candidate neighbours; items without users never appear
    # as candidates, so their weight is irrelevant (set to 0 to avoid 0 ** -f).
    weight = np.zeros(n_items, dtype=np.float64)
    has_users = popularity > 0
    weight[has_users] = popularity[has_users] ** -discount

    # Row i of XᵀX has at most sum over i's users of their history length entries.
    history_length = np.diff(matrix.indptr).astype(np.int64)
    bound = np.minimum(by_item @ history_length, n_items).astype(np.int64)
    cumulative = np.cumsum(bound)

    counts = np.zeros(n_items, dtype=np.int64)
    parts_idx: list[IntArray] = []
    parts_score: list[FloatArray] = []
    start = 0
    while start < n_items:
        done = int(cumulative[start - 1]) if start else 0
        stop = int(np.searchsorted(cumulative, done + _BLOCK_ENTRIES, side="right"))
        stop = min(max(stop, start + 1), n_items)
        block = (by_item[start:stop] @ matrix).tocsr()
        idx, score, per_row = _top_of_block(
            block, start, weight, candidate, min_count=min_count, max_neighbors=max_neighbors
        )
        counts[start:stop] = per_row
        parts_idx.append(idx)
        parts_score.append(score)
        start = stop

    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    neighbors = np.concatenate(parts_idx) if parts_idx else np.empty(0, dtype=np.int32)
    scores = np.concatenate(parts_score) if parts_score else np.empty(0, dtype=np.float32)
    return indptr, neighbors.astype(np.int32), scores.astype(np.float32)


def _top_of_block(
    block: sp.csr_matrix,
    first_row: int,
    weight: npt.NDArray[np.float64],
    candidate: BoolArray,
    *,
    min_count: int,
    max_neighbors: int,
) -> tuple[IntArray, FloatArray, npt.NDArray[np.int64]]:
    """The best ``max_neighbors`` columns of each row of a co-occurrence block."""
    n_rows = block.shape[0]
    row = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(block.indptr))
    col = block.indices.astype(np.int64)
    co = block.data
    # An item is not its own neighbour; pairs with too few co-interactions are dropped,
    # and so are neighbours outside the item percentiles.
    keep = (col != row + first_row) & (co >= min_count) & candidate[col]
    row, col = row[keep], col[keep]
    score = co[keep].astype(np.float64) * weight[col]
    # Best first within each row; equal scores keep the lower item index first, so the
    # result doesn't depend on scipy's internal column order.
    order = np.lexsort((col, -score, row))
    row, col, score = row[order], col[order], score[order]
    per_row = np.bincount(row, minlength=n_rows).astype(np.int64)
    row_start = np.cumsum(per_row) - per_row
    rank = np.arange(row.shape[0], dtype=np.int64) - np.repeat(row_start, per_row)
    top = rank < max_neighbors
    return (
        col[top].astype(np.int32),
        score[top].astype(np.float32),
        np.minimum(per_row, max_neighbors),
    )
