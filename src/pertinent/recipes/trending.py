"""Trending-Now (``aws-trending-now``): the items whose interactions grow fastest.

Time is cut into intervals of ``trend_discovery_frequency`` ending at the newest
interaction. An item's trend compares its interactions in the latest interval with
the one before, as a Poisson-style z-score, ``(now - before) / sqrt(before + 1)``, so a
jump from 0 to 2 does not outrank a jump from 100 to 300, as a plain ratio would. Items
that are not rising are ranked after the rising ones by plain popularity, which is also
the answer when nothing happened in the last two intervals (spec §8.2).

Trends move with live events, without retraining: the model keeps the interactions of
its last two intervals, and ``with_recent`` returns a model that also counts the events
streamed since, with the intervals re-anchored on the newest of them. Campaigns call it
every few seconds (spec §7.8: Trending-Now picks up new interactions without a new
solution version).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from pertinent.recipes.base import (
    BoolArray,
    FloatArray,
    IntArray,
    Model,
    Params,
    Query,
    Ranked,
    Recipe,
    RecipeType,
    TrainingData,
)
from pertinent.recipes.popularity import first_allowed, interaction_popularity, popularity_order

__all__ = ["TrendingModel", "TrendingNow", "TrendingParams"]

Frequency = Literal["30 minutes", "1 hour", "2 hours", "3 hours", "1 day"]
SECONDS: dict[str, int] = {
    "30 minutes": 1800,
    "1 hour": 3600,
    "2 hours": 7200,
    "3 hours": 10800,
    "1 day": 86400,
}
_FORMAT = "pertinent.trending"
_VERSION = 1


class TrendingParams(Params):
    """Trending-Now's one (featurization) hyperparameter (spec §8.2)."""

    trend_discovery_frequency: Frequency = Field(default="2 hours")


class TrendingModel(Model):
    """Recent interactions (last two intervals) plus the all-time popularity order."""

    def __init__(
        self,
        interval: int,
        recent_items: IntArray,
        recent_times: npt.NDArray[np.int64],
        popular: IntArray,
    ) -> None:
        self.interval = int(interval)
        self.recent_items = np.ascontiguousarray(recent_items, dtype=np.int32)
        self.recent_times = np.ascontiguousarray(recent_times, dtype=np.int64)
        self.popular = np.ascontiguousarray(popular, dtype=np.int32)
        self.n_items = int(self.popular.shape[0])
        self.window_seconds = 2.0 * self.interval
        self.trend, self.order = self._rank()

    def _rank(self) -> tuple[FloatArray, IntArray]:
        trend = np.zeros(self.n_items, dtype=np.float32)
        if self.recent_times.shape[0]:
            end = int(self.recent_times.max())
            now = self.recent_times > end - self.interval
            before = ~now & (self.recent_times > end - 2 * self.interval)
            c_now = np.bincount(self.recent_items[now], minlength=self.n_items)
            c_before = np.bincount(self.recent_items[before], minlength=self.n_items)
            trend = ((c_now - c_before) / np.sqrt(c_before + 1.0)).astype(np.float32)
        # Rising items first by trend; the rest keep the all-time popularity order.
        rank_in_popular = np.empty(self.n_items, dtype=np.int64)
        rank_in_popular[self.popular] = np.arange(self.n_items)
        rising = trend > 0
        order = np.lexsort((rank_in_popular, -np.where(rising, trend, 0.0), ~rising))
        return trend, order.astype(np.int32)

    def with_recent(self, items: IntArray, times: npt.NDArray[np.int64]) -> TrendingModel:
        """This model plus interactions streamed since training (known items only)."""
        if items.shape[0] == 0:
            return self
        all_items = np.concatenate([self.recent_items, items.astype(np.int32)])
        all_times = np.concatenate([self.recent_times, times.astype(np.int64)])
        keep = all_times > int(all_times.max()) - 2 * self.interval
        return TrendingModel(self.interval, all_items[keep], all_times[keep], self.popular)

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        # Trending lists are the same for everyone; userId only matters to filters.
        return Ranked(items=first_allowed(self.order, n, allowed), scores=None)

    def score_items(self, queries: Sequence[Query]) -> FloatArray:
        score = np.empty(self.n_items, dtype=np.float32)
        score[self.order] = np.arange(self.n_items, 0, -1, dtype=np.float32)
        return np.broadcast_to(score, (len(queries), self.n_items)).copy()

    def save(self, path: Path) -> None:
        np.savez(
            path / "model.npz",
            recent_items=self.recent_items,
            recent_times=self.recent_times,
            popular=self.popular,
        )
        meta = {"format": _FORMAT, "version": _VERSION, "interval": self.interval}
        (path / "model.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrendingModel:
        meta = json.loads((path / "model.json").read_text())
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ValueError(f"{path} does not hold a {_FORMAT} v{_VERSION} model: {meta!r}")
        with np.load(path / "model.npz", allow_pickle=False) as arrays:
            return cls(
                int(meta["interval"]),
                arrays["recent_items"],
                arrays["recent_times"],
                arrays["popular"],
            )


class TrendingNow(Recipe):
    """Items with the fastest-growing interaction rate; the same list for every user."""

    name: ClassVar[str] = "aws-trending-now"
    recipe_type: ClassVar[RecipeType] = "POPULAR_ITEMS"
    Params: ClassVar[type[Params]] = TrendingParams
    ModelClass: ClassVar[type[Model]] = TrendingModel

    def fit(self, data: TrainingData) -> TrendingModel:
        params = self.params
        assert isinstance(params, TrendingParams)
        interval = SECONDS[params.trend_discovery_frequency]
        inter = data.interactions
        popular = popularity_order(interaction_popularity(inter))
        if len(inter) == 0:
            empty = np.empty(0, dtype=np.int32)
            return TrendingModel(interval, empty, empty.astype(np.int64), popular)
        recent = inter.timestamp > int(inter.timestamp.max()) - 2 * interval
        return TrendingModel(interval, inter.item[recent], inter.timestamp[recent], popular)
