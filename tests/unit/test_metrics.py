"""Offline metrics (spec §12.2) and the user split (spec §12.1)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pertinent.evaluation import (
    METRIC_KEYS,
    coverage,
    evaluate,
    hit_matrix,
    mean_reciprocal_rank,
    ndcg,
    precision,
    split_users,
)
from pertinent.evaluation.metrics import recommend_for_split
from pertinent.recipes.base import Interactions, Query, TrainingData
from pertinent.recipes.popularity import PopularityCount
from pertinent.recipes.sims import Sims

# Worked examples of spec §12.2 ------------------------------------------------------


def test_ndcg_worked_example() -> None:
    # Hits at ranks 2 and 5, two relevant items, K = 5.
    hits = hit_matrix([np.array([10, 1, 11, 12, 2])], [np.array([1, 2])], 5)
    assert hits.tolist() == [[False, True, False, False, True]]
    value = ndcg(hits, np.array([2]), 5)[0]
    expected = (1 / math.log(3) + 1 / math.log(6)) / (1 / math.log(2) + 1 / math.log(3))
    assert value == pytest.approx(expected)
    assert round(value, 4) == 0.6241


def test_mrr_worked_example() -> None:
    # Users whose first hits are at ranks 4, 2 and 6.
    hits = np.zeros((3, 25), dtype=bool)
    hits[0, [3, 8]] = True
    hits[1, [1, 2]] = True
    hits[2, 5] = True
    assert mean_reciprocal_rank(hits, 25).mean() == pytest.approx((1 / 4 + 1 / 2 + 1 / 6) / 3)
    assert round(float(mean_reciprocal_rank(hits, 25).mean()), 4) == 0.3056


def test_precision_worked_example() -> None:
    hits = hit_matrix([np.array([1, 9, 2, 8, 7])], [np.array([1, 2, 3])], 5)
    assert precision(hits, 5)[0] == pytest.approx(0.4)


def test_short_lists_are_padded_with_misses() -> None:
    # Two items recommended, both relevant: precision@5 still divides by 5.
    hits = hit_matrix([np.array([3, 4])], [np.array([3, 4])], 5)
    assert precision(hits, 5)[0] == pytest.approx(0.4)
    assert ndcg(hits, np.array([2]), 5)[0] == pytest.approx(1.0)


def test_user_without_relevant_items_scores_zero() -> None:
    hits = hit_matrix([np.array([1, 2, 3])], [np.array([], dtype=np.int64)], 3)
    assert ndcg(hits, np.array([0]), 3)[0] == 0.0
    assert mean_reciprocal_rank(hits, 3)[0] == 0.0
    assert precision(hits, 3)[0] == 0.0


def test_cut_off_must_fit_the_hit_matrix() -> None:
    hits = np.zeros((1, 5), dtype=bool)
    with pytest.raises(ValueError, match="k=6"):
        precision(hits, 6)
    with pytest.raises(ValueError, match="k=0"):
        ndcg(hits, np.array([1]), 0)


def test_coverage() -> None:
    assert coverage([np.array([0, 1]), np.array([1, 2]), np.array([], dtype=np.int64)], 10) == 0.3
    padded = np.array([[0, 1, -1], [4, -1, -1]])
    assert coverage(padded, 5) == pytest.approx(0.6)
    assert coverage([], 5) == 0.0


# Properties -------------------------------------------------------------------------

N_ITEMS = 30


@st.composite
def ranked_and_relevant(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """A duplicate-free ranked list and a non-empty relevant set over N_ITEMS items."""
    ranked = draw(st.lists(st.integers(0, N_ITEMS - 1), unique=True, max_size=25))
    relevant = draw(st.lists(st.integers(0, N_ITEMS - 1), unique=True, min_size=1, max_size=12))
    return ranked, relevant


def metrics_of(ranked: list[int], relevant: list[int], k: int) -> dict[str, float]:
    hits = hit_matrix([np.asarray(ranked, dtype=np.int64)], [np.asarray(relevant)], 25)
    n_relevant = np.array([len(set(relevant))])
    return {
        "ndcg": float(ndcg(hits, n_relevant, k)[0]),
        "mrr": float(mean_reciprocal_rank(hits, k)[0]),
        "precision": float(precision(hits, k)[0]),
    }


def naive_metrics(ranked: list[int], relevant: list[int], k: int) -> dict[str, float]:
    """The definitions of spec §12.2, one user, no vectorisation, natural log."""
    relevant_set = set(relevant)
    top = ranked[:k]
    dcg = sum(1 / math.log(1 + p) for p, item in enumerate(top, 1) if item in relevant_set)
    idcg = sum(1 / math.log(1 + p) for p in range(1, min(k, len(relevant_set)) + 1))
    ranks = [p for p, item in enumerate(top, 1) if item in relevant_set]
    return {
        "ndcg": dcg / idcg if idcg else 0.0,
        "mrr": 1 / ranks[0] if ranks else 0.0,
        "precision": len(ranks) / k,
    }


@given(ranked_and_relevant(), st.sampled_from([1, 5, 10, 25]))
def test_agrees_with_the_definitions(case: tuple[list[int], list[int]], k: int) -> None:
    ranked, relevant = case
    got, want = metrics_of(ranked, relevant, k), naive_metrics(ranked, relevant, k)
    for name, value in want.items():
        assert got[name] == pytest.approx(value), name


@given(ranked_and_relevant(), st.sampled_from([1, 5, 10, 25]))
def test_metrics_lie_in_unit_interval(case: tuple[list[int], list[int]], k: int) -> None:
    for name, value in metrics_of(*case, k).items():
        assert 0.0 <= value <= 1.0 + 1e-12, name


@given(st.lists(st.integers(0, N_ITEMS - 1), unique=True, min_size=1, max_size=25), st.data())
def test_perfect_ranking(relevant: list[int], data: st.DataObject) -> None:
    # All relevant items first, in any order, then anything else.
    order = data.draw(st.permutations(relevant))
    others = [i for i in range(N_ITEMS) if i not in set(relevant)]
    ranked = (list(order) + others)[:25]
    for k in (1, 5, 10, 25):
        got = metrics_of(ranked, relevant, k)
        assert got["ndcg"] == pytest.approx(1.0)
        assert got["mrr"] == 1.0
        assert got["precision"] == pytest.approx(min(k, len(relevant)) / k)


@given(ranked_and_relevant())
def test_precision_facts(case: tuple[list[int], list[int]]) -> None:
    ranked, relevant = case
    hits_at = {k: metrics_of(ranked, relevant, k)["precision"] * k for k in (5, 10, 25)}
    # Hits only accumulate with K; precision never beats what the relevant set allows.
    assert hits_at[5] <= hits_at[10] + 1e-9 <= hits_at[25] + 2e-9
    for k, hits in hits_at.items():
        assert hits / k <= min(1.0, len(relevant) / k) + 1e-12


@given(ranked_and_relevant(), st.randoms(use_true_random=False))
def test_permuting_irrelevant_items_changes_nothing(
    case: tuple[list[int], list[int]], rnd: random.Random
) -> None:
    ranked, relevant = case
    relevant_set = set(relevant)
    slots = [p for p, item in enumerate(ranked) if item not in relevant_set]
    shuffled_items = [ranked[p] for p in slots]
    rnd.shuffle(shuffled_items)
    permuted = list(ranked)
    for p, item in zip(slots, shuffled_items, strict=True):
        permuted[p] = item
    for k in (5, 10, 25):
        assert metrics_of(permuted, relevant, k) == metrics_of(ranked, relevant, k)


@given(st.lists(st.booleans(), min_size=2, max_size=25), st.integers(0, 10), st.data())
def test_promoting_a_hit_never_hurts(row: list[bool], extra: int, data: st.DataObject) -> None:
    # Swap a hit with a miss ranked above it: no metric may go down.
    pairs = [(i, j) for j, hit in enumerate(row) if hit for i in range(j) if not row[i]]
    assume(pairs)
    i, j = data.draw(st.sampled_from(pairs))
    better = list(row)
    better[i], better[j] = True, False
    width = 25
    before = np.zeros((1, width), dtype=bool)
    after = np.zeros((1, width), dtype=bool)
    before[0, : len(row)] = row
    after[0, : len(row)] = better
    n_relevant = np.array([sum(row) + extra])
    for k in (1, 5, 10, 25):
        assert ndcg(after, n_relevant, k)[0] >= ndcg(before, n_relevant, k)[0] - 1e-12
        assert mean_reciprocal_rank(after, k)[0] >= mean_reciprocal_rank(before, k)[0]
        assert precision(after, k)[0] >= precision(before, k)[0]


@given(ranked_and_relevant())
def test_relevant_duplicates_count_once(case: tuple[list[int], list[int]]) -> None:
    ranked, relevant = case
    doubled = relevant + relevant
    hits = hit_matrix([np.asarray(ranked)], [np.asarray(doubled)], 25)
    single = hit_matrix([np.asarray(ranked)], [np.asarray(relevant)], 25)
    np.testing.assert_array_equal(hits, single)


@given(st.lists(st.lists(st.integers(0, N_ITEMS - 1), unique=True, max_size=25), max_size=8))
def test_coverage_counts_distinct_items(lists: list[list[int]]) -> None:
    value = coverage([np.asarray(r, dtype=np.int64) for r in lists], N_ITEMS)
    assert value == len({i for r in lists for i in r}) / N_ITEMS
    assert 0.0 <= value <= 1.0


@given(st.lists(ranked_and_relevant(), min_size=1, max_size=6))
def test_hit_matrix_rows_are_independent(cases: list[tuple[list[int], list[int]]]) -> None:
    ranked = [np.asarray(r, dtype=np.int64) for r, _ in cases]
    relevant = [np.asarray(rel) for _, rel in cases]
    together = hit_matrix(ranked, relevant, 25)
    for row, (r, rel) in enumerate(zip(ranked, relevant, strict=True)):
        np.testing.assert_array_equal(together[row], hit_matrix([r], [rel], 25)[0])


# The split --------------------------------------------------------------------------


def random_data(n_users: int = 200, n_items: int = 50, seed: int = 0) -> TrainingData:
    """Users with 0 to 40 interactions, distinct timestamps, sorted by (user, time)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 41, n_users)
    lengths[:5] = [0, 1, 1, 2, 3]  # make sure the short edge cases are present
    user = np.repeat(np.arange(n_users), lengths).astype(np.int32)
    item = rng.integers(0, n_items, user.shape[0]).astype(np.int32)
    timestamp = rng.permutation(user.shape[0]).astype(np.int64) * 10
    order = np.lexsort((timestamp, user))
    return TrainingData(
        Interactions(
            user=user[order],
            item=item[order],
            timestamp=timestamp[order],
            n_users=n_users,
            n_items=n_items,
            event_value=rng.random(user.shape[0]).astype(np.float32)[order],
        ),
        seed=3,
    )


def test_split_sizes_and_index_space() -> None:
    data = random_data()
    split = split_users(data, seed=1)
    lengths = np.bincount(data.interactions.user, minlength=data.n_users)
    assert len(split) == round(0.1 * np.count_nonzero(lengths))
    assert np.all(lengths[split.test_users] >= 2)
    assert np.all(np.diff(split.test_users) > 0)
    train = split.train.interactions
    assert (train.n_users, train.n_items) == (data.n_users, data.n_items)
    assert split.train.seed == data.seed
    assert not np.isin(train.user, split.test_users).any()
    # Every other user keeps all their rows, columns aligned.
    kept = ~np.isin(data.interactions.user, split.test_users)
    np.testing.assert_array_equal(train.item, data.interactions.item[kept])
    np.testing.assert_array_equal(train.timestamp, data.interactions.timestamp[kept])
    assert train.event_value is not None and data.interactions.event_value is not None
    np.testing.assert_array_equal(train.event_value, data.interactions.event_value[kept])


def test_split_oldest_input_newest_relevant() -> None:
    data = random_data()
    split = split_users(data, seed=1)
    inter = data.interactions
    offsets = inter.user_offsets()
    for k, user in enumerate(split.test_users.tolist()):
        items = inter.item[offsets[user] : offsets[user + 1]]
        times = inter.timestamp[offsets[user] : offsets[user + 1]]
        n_input = min(max((9 * len(items)) // 10, 1), len(items) - 1)
        np.testing.assert_array_equal(split.history(k), items[:n_input])
        assert split.relevant(k).tolist() == sorted(set(items[n_input:].tolist()))
        assert times[:n_input].max() <= times[n_input:].min()
        assert len(split.history(k)) >= 1 and len(split.relevant(k)) >= 1


@pytest.mark.parametrize(("length", "n_input"), [(2, 1), (3, 2), (10, 9), (11, 9), (25, 22)])
def test_split_proportions(length: int, n_input: int) -> None:
    data = TrainingData(
        Interactions(
            user=np.repeat(np.arange(10), length).astype(np.int32),
            item=np.tile(np.arange(length), 10).astype(np.int32),
            timestamp=np.arange(10 * length, dtype=np.int64),
            n_users=10,
            n_items=length,
        )
    )
    split = split_users(data, seed=0)
    assert len(split) == 1
    assert split.history(0).tolist() == list(range(n_input))
    assert split.relevant(0).tolist() == list(range(n_input, length))


def test_split_sorts_by_timestamp_within_user() -> None:
    data = random_data()
    inter = data.interactions
    shuffled = np.random.default_rng(9).permutation(len(inter))
    scrambled = TrainingData(
        Interactions(
            user=inter.user[shuffled],
            item=inter.item[shuffled],
            timestamp=inter.timestamp[shuffled],
            n_users=inter.n_users,
            n_items=inter.n_items,
        )
    )
    a, b = split_users(data, seed=4), split_users(scrambled, seed=4)
    np.testing.assert_array_equal(a.test_users, b.test_users)
    np.testing.assert_array_equal(a.history_items, b.history_items)
    np.testing.assert_array_equal(a.relevant_items, b.relevant_items)
    np.testing.assert_array_equal(a.train.interactions.item, b.train.interactions.item)


def test_split_is_deterministic_in_the_seed() -> None:
    data = random_data()
    a, b, c = (split_users(data, seed=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.test_users, b.test_users)
    np.testing.assert_array_equal(a.history_items, b.history_items)
    assert not np.array_equal(a.test_users, c.test_users)


def test_split_edge_cases() -> None:
    one_user = TrainingData(
        Interactions(
            user=np.zeros(5, dtype=np.int32),
            item=np.arange(5, dtype=np.int32),
            timestamp=np.arange(5, dtype=np.int64),
            n_users=1,
            n_items=5,
        )
    )
    assert len(split_users(one_user, seed=0)) == 0  # nobody would be left to train on
    empty = TrainingData(
        Interactions(
            user=np.empty(0, dtype=np.int32),
            item=np.empty(0, dtype=np.int32),
            timestamp=np.empty(0, dtype=np.int64),
            n_users=3,
            n_items=4,
        )
    )
    split = split_users(empty, seed=0)
    assert len(split) == 0 and len(split.train.interactions) == 0
    singles = TrainingData(
        Interactions(
            user=np.arange(20, dtype=np.int32),
            item=np.zeros(20, dtype=np.int32),
            timestamp=np.arange(20, dtype=np.int64),
            n_users=20,
            n_items=1,
        )
    )
    assert len(split_users(singles, seed=0)) == 0  # one interaction each: all train


# evaluate ---------------------------------------------------------------------------


def test_evaluate_keys_range_and_determinism() -> None:
    data = random_data(n_users=300)
    for recipe in (PopularityCount(), Sims()):
        first = evaluate(recipe, data, seed=2)
        assert tuple(first) == METRIC_KEYS
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in first.values())
        assert evaluate(recipe, data, seed=2) == first


def test_evaluate_matches_a_naive_loop() -> None:
    data = random_data(n_users=300)
    split = split_users(data, seed=8)
    model = Sims().fit(split.train)
    per_user = []
    recommended: set[int] = set()
    for k in range(len(split)):
        ranked = model.recommend(Query(history=split.history(k)), 25).items.tolist()
        recommended.update(ranked)
        relevant = split.relevant(k).tolist()
        per_user.append({kk: naive_metrics(ranked, relevant, kk) for kk in (5, 10, 25)})
    got = evaluate(Sims(), data, seed=8)
    assert got["coverage"] == pytest.approx(len(recommended) / data.n_items)
    assert got["mean_reciprocal_rank_at_25"] == pytest.approx(
        np.mean([u[25]["mrr"] for u in per_user])
    )
    for kk in (5, 10, 25):
        assert got[f"precision_at_{kk}"] == pytest.approx(
            np.mean([u[kk]["precision"] for u in per_user])
        )
        assert got[f"normalized_discounted_cumulative_gain_at_{kk}"] == pytest.approx(
            np.mean([u[kk]["ndcg"] for u in per_user])
        )


def test_popularity_is_scored_on_the_training_users_only() -> None:
    # Test users love item 0, nobody in training does: popularity can't know it.
    n_users = 100
    user = np.repeat(np.arange(n_users), 10).astype(np.int32)
    item = np.tile(np.arange(1, 11), n_users).astype(np.int32)
    data = TrainingData(
        Interactions(
            user=user,
            item=item,
            timestamp=np.arange(user.shape[0], dtype=np.int64),
            n_users=n_users,
            n_items=11,
        )
    )
    result = evaluate(PopularityCount(), data, seed=0)
    # Every user's newest item is 10, which popularity ranks last of 1..10 (ties by
    # index): position 10, so MRR = 1/10 and precision@10 = 1/10.
    assert result["mean_reciprocal_rank_at_25"] == pytest.approx(0.1)
    assert result["precision_at_10"] == pytest.approx(0.1)
    assert result["precision_at_5"] == 0.0
    assert result["coverage"] == pytest.approx(11 / 11)


def test_exclude_history_removes_the_input_items() -> None:
    data = random_data()
    split = split_users(data, seed=0)
    model = PopularityCount().fit(split.train)
    ranked = recommend_for_split(model, split, exclude_history=True)
    for k in range(len(split)):
        assert not set(ranked[k].tolist()) & set(split.history(k).tolist())
    plain = recommend_for_split(model, split)
    assert (plain == plain[0]).all()  # popularity: same list for everyone


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_evaluate_any_seed_gives_valid_metrics(seed: int) -> None:
    result = evaluate(PopularityCount(), random_data(n_users=60, seed=seed % 7), seed=seed)
    assert tuple(result) == METRIC_KEYS
    assert all(0.0 <= v <= 1.0 for v in result.values())
