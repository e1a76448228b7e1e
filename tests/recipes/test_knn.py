"""The blend's neighbour models: EASE and iALS weights against their closed forms, and
the choice."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pertinent.recipes._als import ALS_ALPHA, ALS_L2, item_factors
from pertinent.recipes._knn import (
    EASE_L2,
    NEIGHBORS,
    TRANSITION_BACK,
    TRANSITION_DECAY,
    TRANSITION_WEIGHT,
    VISIT_GAP,
    Builder,
    ItemKNN,
    choose_blend,
    neighbour_models,
    smoothed,
)


def _interactions(seed: int = 0) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(200), 6)
    # Two tastes: users of each half mostly take items of that half.
    half = (user % 2) * 20
    item = half + rng.integers(0, 20, user.shape[0]) * (rng.random(user.shape[0]) < 0.9)
    return user.astype(np.int64), item.astype(np.int64)


def test_ease_matches_the_closed_form() -> None:
    user, item = _interactions()
    n = 40
    keys = np.unique(user * n + item)
    x = sp.csr_matrix((np.ones(keys.shape[0]), (keys // n, keys % n)), shape=(200, n))
    knn = ItemKNN.ease(x.astype(np.float32), 30.0)
    gram = (x.T @ x).toarray() + 30.0 * np.eye(n)
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    strongest = b.max(axis=1).mean()
    for h in (0, 7, 25):
        expected = np.maximum(b[h], 0.0) / strongest
        np.testing.assert_allclose(knn.scores([np.array([h])])[0], expected, atol=1e-4)


def test_candidates_include_ease_and_als_only_for_small_catalogues() -> None:
    user, item = _interactions()
    names = [name for name, _ in neighbour_models(user, item, 200, 40)]
    assert names == ["cosine", *(f"ease(l2={l2:g})+als" for l2 in EASE_L2)]
    assert [name for name, _ in neighbour_models(user, item, 200, 9_000)] == ["cosine"]


def test_ease_and_als_keep_their_decay_through_save(tmp_path: object) -> None:
    user, item = _interactions()
    build = dict(neighbour_models(user, item, 200, 40))["ease(l2=30)+als"]
    knn = build(np.ones(user.shape[0], dtype=bool))
    again = ItemKNN.from_arrays(knn.arrays(), 40)
    assert again.decay == knn.decay == 1.0
    history = [np.array([3, 5, 7])]
    np.testing.assert_array_equal(again.scores(history), knn.scores(history))


def test_choose_blend_takes_the_best_then_refits_it_on_every_row() -> None:
    built: list[tuple[str, int]] = []

    def builder(name: str) -> Builder:
        def build(rows: npt.NDArray[np.bool_]) -> ItemKNN:
            built.append((name, int(rows.sum())))
            return ItemKNN(sp.eye(3, format="csr") * (1 + len(built)), decay=0.5)

        return build

    # "a" peaks on one weight; "b" holds a plateau that wins once each point is averaged
    # with its neighbours (a: 0.233 at 1.0; b: 0.333 at 1.0 and 2.0, the smaller kept).
    scores = {
        "a": np.array([0.1, 0.1, 0.5, 0.1, 0.1]),
        "b": np.array([0.1, 0.3, 0.35, 0.35, 0.3]),
    }
    weights = (0.0, 0.5, 1.0, 2.0, 4.0)

    def ndcg_of(knn: ItemKNN) -> npt.NDArray[np.float64]:
        # Build number n made a matrix of 1 + n: it says which candidate this is.
        return scores[built[int(knn.matrix.data[0]) - 2][0]]

    fit_rows, all_rows = np.array([True, False, True]), np.ones(3, dtype=bool)
    candidates = [("a", builder("a")), ("b", builder("b"))]
    knn, beta = choose_blend(candidates, fit_rows, all_rows, ndcg_of, weights, False)
    assert beta == 1.0 and knn is not None
    assert built == [("a", 2), ("b", 2), ("b", 3)]  # the winner, rebuilt on every row
    # Ties go to the earlier candidate; no gain over weight 0 means no blend.
    scores["b"] = scores["a"]
    built.clear()
    choose_blend(candidates, fit_rows, all_rows, ndcg_of, weights, False)
    assert built[-1] == ("a", 3)
    scores["a"] = scores["b"] = np.array([0.3, 0.2, 0.1, 0.1, 0.1])
    assert choose_blend(candidates, fit_rows, all_rows, ndcg_of, weights, False) == (None, 0.0)


def test_smoothing_averages_each_weight_with_its_neighbours() -> None:
    np.testing.assert_allclose(
        smoothed(np.array([0.3, 0.0, 0.6, 0.3])), [0.2, 0.3, 0.3, 0.4], rtol=1e-12
    )
    np.testing.assert_allclose(smoothed(np.array([0.5])), [0.5])


def test_als_factors_reach_the_fixed_point_of_exact_alternating_least_squares() -> None:
    user, item = _interactions()
    counts = sp.csr_matrix(
        (np.ones(user.shape[0], dtype=np.float32), (user, item)), shape=(200, 40)
    )
    y = item_factors(counts, seed=3, factors=8, iterations=60)
    np.testing.assert_array_equal(y, item_factors(counts, seed=3, factors=8, iterations=60))
    assert not np.array_equal(y, item_factors(counts, seed=4, factors=8, iterations=60))

    def exact(c: npt.NDArray[np.float64], other: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        """Each row's solution of min Σ_j c_j (p_j − x·o_j)² + λ|x|², c = α·count or 1."""
        conf = np.where(c > 0, c * ALS_ALPHA, 1.0)
        return np.stack(
            [
                np.linalg.solve(
                    other.T @ (w[:, None] * other) + ALS_L2 * np.eye(8), other.T @ (w * (r > 0))
                )
                for r, w in zip(c, conf, strict=True)
            ]
        )

    c = counts.toarray().astype(np.float64)
    x = exact(c, y.astype(np.float64))
    np.testing.assert_allclose(exact(c.T, x), y, atol=5e-3)


def test_low_rank_weights_are_the_fold_in_and_tell_the_tastes_apart() -> None:
    user, item = _interactions()
    counts = sp.csr_matrix(
        (np.ones(user.shape[0], dtype=np.float32), (user, item)), shape=(200, 40)
    )
    # Two tastes need two factors; more would fit this small sample's noise.
    y = item_factors(counts, seed=0, factors=2)
    knn = ItemKNN.low_rank(y, ALS_L2)
    assert knn.decay == 1.0
    fold_in = y @ np.linalg.solve(y.T @ y + ALS_L2 * np.eye(2), y.T)
    np.fill_diagonal(fold_in, 0.0)
    row = knn.scores([np.array([3])])[0]
    kept = row > 0
    # The kept weights are the fold-in's largest ones, scaled by one constant.
    ratio = row[kept] / fold_in[3, kept]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)
    assert fold_in[3, ~kept].max(initial=-np.inf) <= fold_in[3, kept].min() + 1e-6
    # Item 3 is of the first taste (items 0-19): its neighbours are too.
    assert set(np.argsort(-row)[:10].tolist()) <= set(range(20))
    assert row[:20].sum() > 100 * row[20:].sum()


def test_the_als_candidate_sums_ease_and_the_low_rank_weights() -> None:
    user, item = _interactions()
    models = dict(neighbour_models(user, item, 200, 40, seed=5))
    rows = np.arange(user.shape[0]) % 5 != 0
    both = models["ease(l2=30)+als"](rows)
    counts = sp.csr_matrix(
        (np.ones(int(rows.sum()), dtype=np.float32), (user[rows], item[rows])), shape=(200, 40)
    )
    binary = counts.copy()
    binary.data[:] = 1.0
    ease = ItemKNN.ease(binary, 30.0)
    low = ItemKNN.low_rank(item_factors(counts, seed=5), ALS_L2)
    assert both.decay == 1.0
    np.testing.assert_allclose(
        both.matrix.toarray(), ease.matrix.toarray() + low.matrix.toarray(), atol=1e-6
    )


def test_transitions_count_what_follows_within_each_users_sequence() -> None:
    # User 0: 0 -> 1 -> 2; user 1: 0 -> 1 -> 3, whose last row is held out; user 2: 4 -> 0.
    user = np.array([0, 0, 0, 1, 1, 1, 2, 2], dtype=np.int64)
    item = np.array([0, 1, 2, 0, 1, 3, 4, 0], dtype=np.int64)
    rows = np.array([True] * 5 + [False, True, True])
    knn = ItemKNN.transitions(user, item, rows, 5)
    back = TRANSITION_BACK
    raw = np.zeros((5, 5))
    raw[0, 1] = 2.0  # twice right after (gap 1)
    raw[0, 2] = 1 / 2  # two steps after (gap 2)
    raw[1, 2] = 1.0
    raw[1, 0] = 2 * back  # reversed pairs count ``back`` of the forward weight
    raw[2, 1] = back
    raw[2, 0] = back / 2
    raw[4, 0] = 1.0  # user 2's pair; no pair crosses users, none reaches item 3
    raw[0, 4] = back
    strongest = np.mean([2.0, 2 * back, back, 1.0])  # rows 0, 1, 2, 4 (row 3 is empty)
    np.testing.assert_allclose(knn.matrix.toarray(), raw / strongest, rtol=1e-6)
    assert knn.decay == TRANSITION_DECAY


def test_transitions_with_times_count_only_pairs_within_a_visit() -> None:
    # One user: 0 -> 1, an evening apart from 2 -> 3; 3 -> 4 exactly VISIT_GAP later.
    user = np.zeros(5, dtype=np.int64)
    item = np.arange(5, dtype=np.int64)
    t0 = 1_700_000_000
    times = np.array([0, 60, 60 + 6 * VISIT_GAP, 120 + 6 * VISIT_GAP, 0], dtype=np.int64)
    times[4] = times[3] + VISIT_GAP
    knn = ItemKNN.transitions(user, item, np.ones(5, dtype=bool), 5, times + t0)
    back = TRANSITION_BACK
    raw = np.zeros((5, 5))
    raw[0, 1], raw[1, 0] = 1.0, back  # the first visit
    raw[2, 3], raw[3, 2] = 1.0, back  # the second, with 3 -> 4 at the gap's edge
    raw[3, 4], raw[4, 3] = 1.0, back  # 2 -> 4 (two steps) spans more than the gap: none
    strongest = np.mean([1.0, back, 1.0, 1.0, back])
    np.testing.assert_allclose(knn.matrix.toarray(), raw / strongest, rtol=1e-6)
    # Without times every pair within TRANSITION_GAP steps counts, across the evening too.
    assert ItemKNN.transitions(user, item, np.ones(5, dtype=bool), 5).matrix[1, 2] > 0


def test_transitions_keep_each_items_strongest_neighbours() -> None:
    # Users 0..149 each view item 0 then item 1 + u; items 1..50 follow it twice.
    followers = np.concatenate([np.arange(1, 151), np.arange(1, 51)])
    user = np.repeat(np.arange(followers.shape[0]), 2).astype(np.int64)
    item = np.stack([np.zeros_like(followers), followers], axis=1).ravel().astype(np.int64)
    knn = ItemKNN.transitions(user, item, np.ones(user.shape[0], dtype=bool), 151)
    row = knn.matrix[0].toarray()[0]
    assert np.count_nonzero(row) == NEIGHBORS == 100
    assert np.all(row[1:51] == row.max())  # the twice-followed all kept, and strongest
    # Row maxima before the cut: item 0's 2, then 2 x back (items 1-50) and back (51-150).
    strongest = (2.0 + 50 * 2 * TRANSITION_BACK + 100 * TRANSITION_BACK) / 151
    np.testing.assert_allclose(row.max(), 2.0 / strongest, rtol=1e-6)


def test_parts_add_up_each_with_its_decay_and_survive_a_save() -> None:
    rng = np.random.default_rng(3)
    first = sp.random(30, 30, density=0.2, random_state=1, format="csr", dtype=np.float32)
    second = sp.random(30, 30, density=0.2, random_state=2, format="csr", dtype=np.float32)
    a, b = ItemKNN(first, decay=0.8), ItemKNN(second, decay=0.3)
    both = a.plus(b, 0.5)
    histories = [rng.integers(0, 30, n) for n in (0, 1, 4, 14)]
    expected = a.scores(histories) + 0.5 * b.scores(histories)
    np.testing.assert_allclose(both.scores(histories), expected, rtol=1e-5, atol=1e-6)
    # By hand for one history: the newest item counts decay^0, the one before decay^1.
    by_hand = first[7].toarray()[0] + 0.8 * first[2].toarray()[0]
    by_hand += 0.5 * (second[7].toarray()[0] + 0.3 * second[2].toarray()[0])
    np.testing.assert_allclose(both.scores([np.array([2, 7])])[0], by_hand, rtol=1e-5)
    # The serving path's sparse terms sum to the same block.
    flat, values = both.contributions(histories, 2.0, 30)
    block = np.bincount(flat, weights=values, minlength=len(histories) * 30).reshape(-1, 30)
    np.testing.assert_allclose(block, 2.0 * expected, rtol=1e-5, atol=1e-6)
    again = ItemKNN.from_arrays(both.arrays(), 30)
    np.testing.assert_allclose(again.scores(histories), expected, rtol=1e-5, atol=1e-6)


def test_every_candidate_adds_the_transitions_unless_told_not_to() -> None:
    user, item = _interactions()
    rows = np.ones(user.shape[0], dtype=bool)
    follow = ItemKNN.transitions(user, item, rows, 40)
    histories = [np.array([3, 5, 7]), np.array([30])]
    plain = dict(neighbour_models(user, item, 200, 40, transitions=False))
    for name, build in neighbour_models(user, item, 200, 40):
        expected = plain[name](rows).scores(histories)
        expected += TRANSITION_WEIGHT * follow.scores(histories)
        np.testing.assert_allclose(build(rows).scores(histories), expected, rtol=1e-5, atol=1e-6)
