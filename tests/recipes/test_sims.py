"""SIMS: the contract, a brute-force reference, and each hyperparameter's effect."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pertinent.recipes import sims
from pertinent.recipes.base import Interactions, Query, TrainingData
from pertinent.recipes.popularity import PopularityCount
from pertinent.recipes.sims import Sims, SimsModel, SimsParams

from .contract import ITEMS_PER_BLOCK, RecipeContract, block_data

# Percentile filters that keep everything, to test the other knobs in isolation.
NO_FILTERS = {
    "min_user_history_length_percentile": "0",
    "max_user_history_length_percentile": "1",
    "min_item_interaction_count_percentile": "0",
    "max_item_interaction_count_percentile": "1",
}


class TestSimsContract(RecipeContract):
    recipe_class = Sims


def fit(data: TrainingData, **params: str) -> SimsModel:
    model = Sims(Sims.parse_params(params)).fit(data)
    assert isinstance(model, SimsModel)
    return model


def make_data(
    histories: dict[int, list[int]], n_items: int, n_users: int | None = None
) -> TrainingData:
    """Interactions from {user: [items, oldest first]}."""
    users, items = [], []
    for user in sorted(histories):
        users += [user] * len(histories[user])
        items += histories[user]
    return TrainingData(
        Interactions(
            user=np.asarray(users, dtype=np.int32),
            item=np.asarray(items, dtype=np.int32),
            timestamp=np.arange(len(users), dtype=np.int64),
            n_users=n_users if n_users is not None else max(histories, default=-1) + 1,
            n_items=n_items,
        )
    )


def naive_neighbors(
    data: TrainingData, params: SimsParams, max_neighbors: int = sims.MAX_NEIGHBORS
) -> dict[int, dict[int, float]]:
    """Straight from the definition: {item: {neighbour: score}}, pairs by brute force."""
    inter = data.interactions
    users, items = inter.user.tolist(), inter.item.tolist()
    history_length, item_count = Counter(users), Counter(items)

    def kept(counts: Counter[int], low: float, high: float, weighted: bool = False) -> set[int]:
        if not counts:
            return set()
        values = np.asarray(list(counts.values()), dtype=float)
        if weighted:  # item bounds are percentiles of the interactions
            values = np.repeat(values, values.astype(int))
            lo, hi = np.quantile(values, [low, high], method="inverted_cdf")
        else:
            lo, hi = np.quantile(values, [low, high])
        return {key for key, count in counts.items() if lo <= count <= hi}

    good_users = kept(
        history_length,
        params.min_user_history_length_percentile,
        params.max_user_history_length_percentile,
    )
    good_items = kept(
        item_count,
        params.min_item_interaction_count_percentile,
        params.max_item_interaction_count_percentile,
        weighted=True,
    )
    baskets: dict[int, set[int]] = {}
    for user, item in zip(users, items, strict=True):
        if user in good_users:
            baskets.setdefault(user, set()).add(item)
    co: Counter[tuple[int, int]] = Counter()
    popularity: Counter[int] = Counter()
    for basket in baskets.values():
        popularity.update(basket)
        for a, b in combinations(sorted(basket), 2):
            co[(a, b)] += 1
            co[(b, a)] += 1
    threshold = max(params.min_cointeraction_count, 1)
    out: dict[int, dict[int, float]] = {}
    for (a, b), count in co.items():
        # Items outside the percentiles keep neighbours but are never one.
        if count >= threshold and b in good_items:
            score = count / popularity[b] ** params.popularity_discount_factor
            out.setdefault(a, {})[b] = score
    return out


# The brute-force reference -------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    n_users=st.integers(1, 12),
    n_items=st.integers(1, 10),
    rows=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 9)), max_size=70),
    discount=st.floats(0, 1),
    min_count=st.integers(0, 4),
    user_bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
    item_bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted),
    block=st.sampled_from([1, 5, 4_000_000]),
)
def test_matches_brute_force(
    n_users: int,
    n_items: int,
    rows: list[tuple[int, int]],
    discount: float,
    min_count: int,
    user_bounds: list[float],
    item_bounds: list[float],
    block: int,
) -> None:
    histories: dict[int, list[int]] = {}
    for user, item in rows:
        if user < n_users and item < n_items:
            histories.setdefault(user, []).append(item)
    data = make_data(histories, n_items, n_users)
    params = SimsParams(
        popularity_discount_factor=discount,
        min_cointeraction_count=min_count,
        min_user_history_length_percentile=user_bounds[0],
        max_user_history_length_percentile=user_bounds[1],
        min_item_interaction_count_percentile=item_bounds[0],
        max_item_interaction_count_percentile=item_bounds[1],
    )
    with mock.patch.object(sims, "_BLOCK_ENTRIES", block):
        model = Sims(params).fit(data)
    assert isinstance(model, SimsModel)
    expected = naive_neighbors(data, params)
    for item in range(n_items):
        got = model.neighbors_of(item)
        want = expected.get(item, {})
        assert set(got.tolist()) == set(want), item
        scores = model.scores[model.indptr[item] : model.indptr[item + 1]]
        np.testing.assert_allclose(scores, [want[j] for j in got.tolist()], rtol=1e-5)
        assert np.all(np.diff(scores) <= 1e-6 * scores[:-1])  # best first


def test_block_size_does_not_change_the_model() -> None:
    data = block_data()
    reference = fit(data, **NO_FILTERS, min_cointeraction_count="0")
    for block in (1, 3, 17):
        with mock.patch.object(sims, "_BLOCK_ENTRIES", block):
            chunked = fit(data, **NO_FILTERS, min_cointeraction_count="0")
        np.testing.assert_array_equal(chunked.indptr, reference.indptr)
        np.testing.assert_array_equal(chunked.neighbors, reference.neighbors)
        np.testing.assert_array_equal(chunked.scores, reference.scores)


def test_neighbour_cap_keeps_the_best() -> None:
    data = block_data(block_users=(12, 10), items_per_block=8, n_cold=0)
    full = fit(data, **NO_FILTERS)
    with mock.patch.object(sims, "MAX_NEIGHBORS", 3):
        capped = fit(data, **NO_FILTERS)
    for item in range(data.n_items):
        np.testing.assert_array_equal(capped.neighbors_of(item), full.neighbors_of(item)[:3])


def test_equal_scores_keep_lower_index_first() -> None:
    model = fit(block_data())
    assert model.neighbors_of(2).tolist() == [0, 1, 3, 4]


# Hyperparameter effects ----------------------------------------------------------


def _popular_versus_niche() -> TrainingData:
    # Item 0 is the seed. Item 1 is popular (50 users), 5 of them also had item 0.
    # Item 2 is niche (4 users), all of whom also had item 0.
    histories = {u: [0, 1, 2] for u in range(4)}
    histories[4] = [0, 1]
    histories.update({u: [1] for u in range(5, 50)})
    return make_data(histories, n_items=3)


@pytest.mark.parametrize(
    ("factor", "expected"),
    [("0", [1, 2]), ("0.05", [1, 2]), ("0.2", [2, 1]), ("0.5", [2, 1]), ("1", [2, 1])],
)
def test_popularity_discount_factor(factor: str, expected: list[int]) -> None:
    # co(0,1) = 5 with pop(1) = 50; co(0,2) = 4 with pop(2) = 4. Discount 0 ranks by
    # raw co-occurrence, so the popular item wins; 1 ranks by the share of j's users
    # who also had item 0 (0.1 against 1.0), so the niche item wins. The two scores
    # cross at f = ln(5/4) / ln(50/4) ~ 0.088.
    model = fit(_popular_versus_niche(), **NO_FILTERS, popularity_discount_factor=factor)
    assert model.neighbors_of(0).tolist() == expected
    f = float(factor)
    expected_scores = {1: 5 / 50**f, 2: 4 / 4**f}
    np.testing.assert_allclose(
        model.scores[model.indptr[0] : model.indptr[1]],
        [expected_scores[j] for j in expected],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("minimum", "expected"),
    [("0", {1, 2, 3}), ("1", {1, 2, 3}), ("2", {1, 2}), ("3", {2}), ("4", set())],
)
def test_min_cointeraction_count(minimum: str, expected: set[int]) -> None:
    # co(0,1) = 2, co(0,2) = 3, co(0,3) = 1.
    histories = {0: [0, 1, 2], 1: [0, 1, 2], 2: [0, 2], 3: [0, 3]}
    model = fit(make_data(histories, n_items=4), **NO_FILTERS, min_cointeraction_count=minimum)
    assert set(model.neighbors_of(0).tolist()) == expected


def test_max_user_history_percentile_drops_bots() -> None:
    base = block_data(n_silent_users=0)
    inter = base.interactions
    bot = inter.n_users
    bot_items = np.arange(inter.n_items, dtype=np.int32)
    data = TrainingData(
        Interactions(
            user=np.concatenate((inter.user, np.full(bot_items.shape, bot, dtype=np.int32))),
            item=np.concatenate((inter.item, bot_items)),
            timestamp=np.concatenate((inter.timestamp, np.arange(bot_items.shape[0]))),
            n_users=bot + 1,
            n_items=inter.n_items,
        )
    )
    keep_all = {**NO_FILTERS, "min_cointeraction_count": "1"}
    with_bot = fit(data, **keep_all)
    assert set(with_bot.neighbors_of(0).tolist()) > set(range(1, ITEMS_PER_BLOCK))
    without_bot = fit(data, **{**keep_all, "max_user_history_length_percentile": "0.995"})
    assert set(without_bot.neighbors_of(0).tolist()) == set(range(1, ITEMS_PER_BLOCK))


def test_min_user_history_percentile_drops_short_histories() -> None:
    histories = {u: [0, 1] for u in range(10)}
    histories.update({u: [0, 2, 3, 4, 5] for u in range(10, 20)})
    data = make_data(histories, n_items=6)
    keep_all = {**NO_FILTERS, "min_cointeraction_count": "1"}
    assert 1 in fit(data, **keep_all).neighbors_of(0).tolist()
    filtered = fit(data, **{**keep_all, "min_user_history_length_percentile": "0.6"})
    assert filtered.neighbors_of(0).tolist() == [2, 3, 4, 5]
    assert filtered.neighbors_of(1).shape == (0,)


def test_item_percentiles_drop_the_head_and_the_tail() -> None:
    # Items 0-4 have 12 users, 5-9 have 10, 10-14 have 8, 15-19 have 6, 20-22 none, so
    # per interaction the 0.6 percentile is 10 and the 0.2 percentile 8.
    data = block_data()
    head_cut = fit(data, **{**NO_FILTERS, "max_item_interaction_count_percentile": "0.6"})
    for item in range(ITEMS_PER_BLOCK):
        assert head_cut.neighbors_of(item).shape == (0,)
    assert head_cut.neighbors_of(5).tolist() == [6, 7, 8, 9]
    tail_cut = fit(data, **{**NO_FILTERS, "min_item_interaction_count_percentile": "0.2"})
    assert tail_cut.neighbors_of(15).shape == (0,)
    assert tail_cut.neighbors_of(0).tolist() == [1, 2, 3, 4]
    # A dropped item is still answered, with popular items, never itself.
    assert head_cut.recommend(Query(item=0), 3).items.tolist() == [1, 2, 3]


def test_head_items_keep_their_neighbours_but_are_never_one() -> None:
    # Item 0 is in every history (the blockbuster); 1 and 2 co-occur with it often.
    histories = {u: [0, 1 + u % 2, 3 + u % 3] for u in range(12)}
    model = fit(
        make_data(histories, n_items=6),
        **{
            **NO_FILTERS,
            "max_item_interaction_count_percentile": "0.6",
            "min_cointeraction_count": "1",
        },
    )
    assert model.neighbors_of(0).shape[0] > 0
    assert all(0 not in model.neighbors_of(i).tolist() for i in range(6))


def test_defaults_keep_everything_on_a_flat_catalogue() -> None:
    # Equal counts everywhere: percentile bounds equal the counts, which are kept.
    histories = {u: [u % 4, (u + 1) % 4] for u in range(16)}
    model = fit(make_data(histories, n_items=4))
    assert all(model.neighbors_of(i).shape[0] > 0 for i in range(4))


# Request-time behaviour ----------------------------------------------------------


@pytest.fixture(scope="module")
def block_model() -> SimsModel:
    return fit(block_data())


def test_neighbours_first_then_popular_items(block_model: SimsModel) -> None:
    data = block_data()
    popular = PopularityCount().fit(data).recommend(Query(), data.n_items).items.tolist()
    got = block_model.recommend(Query(item=7), 12).items.tolist()
    assert got[:4] == [5, 6, 8, 9]
    assert got[4:] == [i for i in popular if i not in {5, 6, 7, 8, 9}][:8]


def test_unknown_or_absent_item_gets_popular_items(block_model: SimsModel) -> None:
    popular = PopularityCount().fit(block_data()).recommend(Query(), 10).items.tolist()
    for query in (Query(), Query(item=None, user=2), Query(item=10_000), Query(item=-1)):
        assert block_model.recommend(query, 10).items.tolist() == popular


def test_history_is_seeded_by_its_newest_item(block_model: SimsModel) -> None:
    history = np.asarray([0, 1, 12], dtype=np.int32)
    by_history = block_model.recommend(Query(history=history), 8).items
    np.testing.assert_array_equal(by_history, block_model.recommend(Query(item=12), 8).items)
    # An explicit item wins over the history.
    with_item = block_model.recommend(Query(history=history, item=3), 8).items
    np.testing.assert_array_equal(with_item, block_model.recommend(Query(item=3), 8).items)


def test_never_returns_the_query_item(block_model: SimsModel) -> None:
    n_items = block_model.n_items
    allowed = np.ones(n_items, dtype=bool)
    allowed[1::2] = False
    for item in range(n_items):
        for mask in (None, allowed):
            for n in (3, 10, n_items):
                got = block_model.recommend(Query(item=item), n, mask).items
                assert item not in got.tolist()
                expected = n_items - 1 if mask is None else int(mask.sum()) - bool(mask[item])
                assert got.shape[0] == min(n, expected)


def test_allowed_filters_neighbours_before_back_fill(block_model: SimsModel) -> None:
    allowed = np.ones(block_model.n_items, dtype=bool)
    allowed[[1, 3]] = False
    got = block_model.recommend(Query(item=0), 6, allowed).items.tolist()
    assert got[:2] == [2, 4]
    assert got[2:] == [5, 6, 7, 8]


def test_returns_no_scores(block_model: SimsModel) -> None:
    assert block_model.recommend(Query(item=0), 5).scores is None


def test_empty_training_data() -> None:
    model = fit(make_data({}, n_items=4, n_users=0))
    assert model.recommend(Query(item=1), 5).items.tolist() == [0, 2, 3]
    assert model.recommend(Query(), 5).items.tolist() == [0, 1, 2, 3]


def test_load_rejects_another_format(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"format": "pertinent.popularity", "version": 1}')
    with pytest.raises(ValueError, match="does not hold"):
        SimsModel.load(tmp_path)


# Hyperparameter validation -------------------------------------------------------


def test_defaults_are_personalize_defaults() -> None:
    assert Sims.parse_params().model_dump() == {
        "popularity_discount_factor": 0.5,
        "min_cointeraction_count": 3,
        "min_user_history_length_percentile": 0.005,
        "max_user_history_length_percentile": 0.995,
        "min_item_interaction_count_percentile": 0.01,
        "max_item_interaction_count_percentile": 0.9,
    }


def test_string_values_are_parsed() -> None:
    params = Sims.parse_params(
        {"popularity_discount_factor": "0.25", "min_cointeraction_count": "7"},
        {"max_item_interaction_count_percentile": "0.95"},
    )
    assert isinstance(params, SimsParams)
    assert params.popularity_discount_factor == 0.25
    assert params.min_cointeraction_count == 7
    assert params.max_item_interaction_count_percentile == 0.95


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("popularity_discount_factor", "1.5", "less than or equal to 1"),
        ("popularity_discount_factor", "-0.1", "greater than or equal to 0"),
        ("popularity_discount_factor", "nan", "finite number"),
        ("popularity_discount_factor", "high", "valid number"),
        ("min_cointeraction_count", "11", "less than or equal to 10"),
        ("min_cointeraction_count", "-1", "greater than or equal to 0"),
        ("min_cointeraction_count", "2.5", "valid integer"),
        ("min_user_history_length_percentile", "1.01", "less than or equal to 1"),
        ("max_user_history_length_percentile", "2", "less than or equal to 1"),
        ("min_item_interaction_count_percentile", "-1", "greater than or equal to 0"),
        ("max_item_interaction_count_percentile", "inf", "finite number"),
    ],
)
def test_out_of_range_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Sims.parse_params({name: value})
    text = str(raised.value)
    assert f"Invalid value {value!r} for hyperparameter {name} of recipe aws-sims" in text
    assert message in text


@pytest.mark.parametrize("kind", ["user_history_length", "item_interaction_count"])
def test_min_percentile_above_max_is_rejected(kind: str) -> None:
    with pytest.raises(ValueError) as raised:
        Sims.parse_params({f"min_{kind}_percentile": "0.6", f"max_{kind}_percentile": "0.4"})
    text = str(raised.value)
    assert f"Invalid value '0.4' for hyperparameter max_{kind}_percentile" in text
    assert f"must be at least min_{kind}_percentile (0.6)" in text
    # Equal bounds are fine.
    Sims.parse_params({f"min_{kind}_percentile": "0.5", f"max_{kind}_percentile": "0.5"})


def test_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError) as raised:
        Sims.parse_params({"hidden_dimension": "64"})
    text = str(raised.value)
    assert "Unknown hyperparameter 'hidden_dimension' for recipe aws-sims" in text
    assert "min_cointeraction_count" in text and "popularity_discount_factor" in text
