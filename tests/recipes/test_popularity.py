"""Popularity-Count: the contract plus what makes it Personalize's baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pertinent.recipes.base import Interactions, Query, TrainingData
from pertinent.recipes.popularity import PopularityCount, PopularityModel, unique_user_counts
from pertinent.recipes.registry import TRAINABLE, get_recipe

from .contract import RecipeContract


class TestPopularityContract(RecipeContract):
    recipe_class = PopularityCount


def _data(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> TrainingData:
    users = np.asarray([u for u, _ in pairs], dtype=np.int32)
    order = np.argsort(users, kind="stable")
    return TrainingData(
        Interactions(
            user=users[order],
            item=np.asarray([i for _, i in pairs], dtype=np.int32)[order],
            timestamp=np.arange(len(pairs), dtype=np.int64),
            n_users=n_users,
            n_items=n_items,
        )
    )


def test_counts_unique_users_not_interactions() -> None:
    # Item 0: one user, 50 clicks. Item 1: three users, one click each.
    pairs = [(0, 0)] * 50 + [(1, 1), (2, 1), (3, 1)]
    model = PopularityCount().fit(_data(pairs, n_users=4, n_items=3))
    assert model.recommend(Query(), 3).items.tolist() == [1, 0, 2]
    assert isinstance(model, PopularityModel)
    assert model.counts.tolist() == [1, 3, 0]


def test_ties_keep_lower_index_first() -> None:
    pairs = [(0, 4), (1, 2), (2, 0), (3, 3), (3, 1)]
    model = PopularityCount().fit(_data(pairs, n_users=4, n_items=6))
    assert model.recommend(Query(), 6).items.tolist() == [0, 1, 2, 3, 4, 5]


def test_same_list_for_every_query() -> None:
    pairs = [(0, 1), (1, 1), (1, 2), (2, 0)]
    model = PopularityCount().fit(_data(pairs, n_users=3, n_items=4))
    expected = model.recommend(Query(), 4).items.tolist()
    for query in (
        Query(user=0),
        Query(item=1),
        Query(history=np.asarray([1, 2], dtype=np.int32)),
        Query(user=2, history=np.asarray([0], dtype=np.int32), item=3),
    ):
        assert model.recommend(query, 4).items.tolist() == expected


def test_returns_no_scores() -> None:
    model = PopularityCount().fit(_data([(0, 0)], n_users=1, n_items=2))
    assert model.recommend(Query(), 2).scores is None


def test_empty_training_data_lists_the_catalogue() -> None:
    model = PopularityCount().fit(_data([], n_users=0, n_items=3))
    assert model.recommend(Query(), 5).items.tolist() == [0, 1, 2]


def test_no_hyperparameters() -> None:
    assert PopularityCount.parse_params({}) == PopularityCount.Params()
    with pytest.raises(ValueError, match="Allowed hyperparameters: none"):
        PopularityCount.parse_params({"popularity_discount_factor": "0.5"})


def test_unique_user_counts_matches_naive() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, 300).astype(np.int32)
    items = rng.integers(0, 15, 300).astype(np.int32)
    naive = [len({u for u, i in zip(users, items, strict=True) if i == item}) for item in range(16)]
    assert unique_user_counts(users, items, 20, 16).tolist() == naive


def test_load_rejects_another_format(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ValueError, match="does not hold"):
        PopularityModel.load(tmp_path)


def test_registry() -> None:
    assert get_recipe("aws-popularity-count") is PopularityCount
    assert set(TRAINABLE) >= {"aws-popularity-count", "aws-sims"}
    assert all(name == recipe.name for name, recipe in TRAINABLE.items())
    with pytest.raises(KeyError, match="aws-next-best-action"):
        get_recipe("aws-next-best-action")
