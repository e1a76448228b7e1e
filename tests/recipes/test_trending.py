"""Trending-Now: the contract, trend ranking, and trends that move with live events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pertinent.recipes.base import Interactions, Query, TrainingData
from pertinent.recipes.trending import TrendingModel, TrendingNow

from .contract import RecipeContract

HOUR = 3600


class TestTrendingContract(RecipeContract):
    """With one-day intervals the whole block fixture (10 hours) is one interval, so
    nothing rose from a previous one and the trend is plain popularity: the POPULAR_ITEMS
    known answer holds."""

    recipe_class = TrendingNow

    @classmethod
    def make_recipe(cls) -> TrendingNow:
        return TrendingNow(TrendingNow.parse_params({"trend_discovery_frequency": "1 day"}))


def _data(events: list[tuple[int, int, int]], n_items: int) -> TrainingData:
    """(user, item, time) triples."""
    events = sorted(events)
    return TrainingData(
        Interactions(
            user=np.array([u for u, _, _ in events], dtype=np.int32),
            item=np.array([i for _, i, _ in events], dtype=np.int32),
            timestamp=np.array([t for _, _, t in events], dtype=np.int64),
            n_users=max(u for u, _, _ in events) + 1,
            n_items=n_items,
        )
    )


def _fit(events: list[tuple[int, int, int]], n_items: int, freq: str = "1 hour") -> TrendingModel:
    model = TrendingNow(TrendingNow.parse_params({"trend_discovery_frequency": freq})).fit(
        _data(events, n_items)
    )
    assert isinstance(model, TrendingModel)
    return model


def test_rising_beats_popular() -> None:
    t0 = 1_700_000_000
    events = []
    # Item 0: the all-time favourite, flat (10 per hour for 5 hours).
    events += [(u, 0, t0 + h * HOUR + u) for h in range(5) for u in range(10)]
    # Item 1: 1 in the previous hour, 8 in the latest.
    events += [(100, 1, t0 + 3 * HOUR + 5)] + [(200 + u, 1, t0 + 4 * HOUR + u) for u in range(8)]
    # Item 2: falling.
    events += [(300 + u, 2, t0 + 3 * HOUR + u) for u in range(6)] + [(400, 2, t0 + 4 * HOUR)]
    model = _fit(events, n_items=4)
    assert model.recommend(Query(), 4).items.tolist()[:1] == [1]
    # Not rising: all-time popularity decides the rest.
    assert model.recommend(Query(), 4).items.tolist()[1:] == [0, 2, 3]


def test_nothing_recent_falls_back_to_popular() -> None:
    t0 = 1_700_000_000
    events = [(u, 0, t0 + u) for u in range(5)] + [(10, 1, t0 + 1)]
    model = _fit(events, n_items=3)
    assert model.recommend(Query(), 3).items.tolist() == [0, 1, 2]


def test_live_events_move_the_trend_without_retraining(tmp_path: Path) -> None:
    t0 = 1_700_000_000
    events = [(u, 0, t0 + h * HOUR + u) for h in range(3) for u in range(5)]
    events += [(9, 2, t0)]  # before both intervals: not rising
    model = _fit(events, n_items=3)
    assert model.recommend(Query(), 1).items.tolist() == [0]
    # Item 2 takes off after training: 20 events in the next hour.
    live_items = np.full(20, 2, dtype=np.int32)
    live_times = t0 + 3 * HOUR + np.arange(20, dtype=np.int64)
    moved = model.with_recent(live_items, live_times)
    assert moved.recommend(Query(), 1).items.tolist() == [2]
    assert model.recommend(Query(), 1).items.tolist() == [0]  # the original is untouched
    moved.save(tmp_path)
    assert TrendingModel.load(tmp_path).recommend(Query(), 3).items.tolist() == [
        2, 0, 1
    ]  # fmt: skip


@pytest.mark.parametrize("bad", ["2 days", "hourly", ""])
def test_frequency_is_one_of_the_documented_values(bad: str) -> None:
    with pytest.raises(ValueError, match="trend_discovery_frequency"):
        TrendingNow.parse_params(featurization={"trend_discovery_frequency": bad})
