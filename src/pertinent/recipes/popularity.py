"""Popularity-Count (``aws-popularity-count``): the same most-popular list for everyone.

Personalize defines "most popular" as the items with the most interactions from
**unique users** (spec §8.2), so a user who clicks one item a hundred times counts
once. It is the baseline Personalize suggests for offline metrics (spec §12).

The helpers ``unique_user_counts`` and ``popularity_order`` are shared with other
recipes (SIMS back-fills its lists with the same order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

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

__all__ = ["PopularityCount", "PopularityModel", "popularity_order", "unique_user_counts"]

_FORMAT = "pertinent.popularity"
_VERSION = 1


def unique_user_counts(
    user: IntArray, item: IntArray, n_users: int, n_items: int
) -> npt.NDArray[np.int64]:
    """For each item, how many distinct users interacted with it (0 for cold items)."""
    if user.shape[0] == 0:
        return np.zeros(n_items, dtype=np.int64)
    # One int64 key per (user, item) pair: unique keys are unique pairs, and the item
    # is recovered as key % n_items. n_users * n_items stays far below 2**63.
    keys = np.unique(user.astype(np.int64) * n_items + item.astype(np.int64))
    return np.bincount(keys % n_items, minlength=n_items).astype(np.int64)


def popularity_order(counts: npt.NDArray[np.int64]) -> IntArray:
    """Every item index, most popular first; equal counts keep the lower index first.

    Cold items (count 0) come last, so the order is a permutation of the whole
    catalogue and a list can always be filled up to ``n`` when enough items are allowed.
    """
    # A stable sort on the negated counts keeps index order inside ties.
    return np.argsort(-counts, kind="stable").astype(np.int32)


def interaction_popularity(interactions: Interactions) -> npt.NDArray[np.int64]:
    """``unique_user_counts`` of a whole ``Interactions``."""
    return unique_user_counts(
        interactions.user, interactions.item, interactions.n_users, interactions.n_items
    )


def first_allowed(order: IntArray, n: int, allowed: BoolArray | None) -> IntArray:
    """The first ``n`` entries of ``order`` that ``allowed`` permits (all when it is None)."""
    if n <= 0:
        return np.empty(0, dtype=np.int32)
    if allowed is None:
        return order[:n].copy()  # callers get their own array, not a view of the model
    # Walk the order in growing chunks: a filter that keeps most items costs a few
    # hundred lookups, not a pass over the catalogue; one that keeps few still ends.
    kept: list[IntArray] = []
    found, start, step = 0, 0, max(4 * n, 256)
    while found < n and start < order.shape[0]:
        chunk = order[start : start + step]
        chunk = chunk[allowed[chunk]]
        kept.append(chunk)
        found += chunk.shape[0]
        start += step
        step *= 4
    return np.concatenate(kept)[:n] if kept else np.empty(0, dtype=np.int32)


class PopularityParams(Params):
    """Popularity-Count exposes no hyperparameters (spec §8.2)."""


class PopularityModel(Model):
    """The catalogue in popularity order, computed once at fit time."""

    def __init__(self, order: IntArray, counts: npt.NDArray[np.int64]) -> None:
        self.order = np.ascontiguousarray(order, dtype=np.int32)
        self.counts = np.ascontiguousarray(counts, dtype=np.int64)
        self.n_items = int(self.order.shape[0])
        # Shared between threads for reading only.
        self.order.setflags(write=False)
        self.counts.setflags(write=False)

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        # The query is ignored on purpose: Personalize returns the same list to every
        # user (spec §8.2); campaign filters reach us through ``allowed``.
        return Ranked(items=first_allowed(self.order, n, allowed), scores=None)

    def score_items(self, queries: Sequence[Query]) -> FloatArray:
        row = self.counts.astype(np.float32)
        return np.broadcast_to(row, (len(queries), self.n_items)).copy()

    def save(self, path: Path) -> None:
        np.savez(path / "model.npz", order=self.order, counts=self.counts)
        meta = {"format": _FORMAT, "version": _VERSION, "n_items": self.n_items}
        (path / "model.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PopularityModel:
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ValueError(f"{path} does not hold a {_FORMAT} v{_VERSION} model: {meta!r}")
        with np.load(path / "model.npz", allow_pickle=False) as arrays:
            return cls(order=arrays["order"], counts=arrays["counts"])


class PopularityCount(Recipe):
    """The items with the most unique users, best first; the same list for every query.

    Example::

        model = PopularityCount().fit(data)
        model.recommend(Query(), n=25).items
    """

    name: ClassVar[str] = "aws-popularity-count"
    recipe_type: ClassVar[RecipeType] = "POPULAR_ITEMS"
    Params: ClassVar[type[Params]] = PopularityParams
    ModelClass: ClassVar[type[Model]] = PopularityModel

    def fit(self, data: TrainingData) -> PopularityModel:
        counts = interaction_popularity(data.interactions)
        return PopularityModel(order=popularity_order(counts), counts=counts)
