"""Early stopping: the popularity floor and the patience that waits for it."""

from __future__ import annotations

import numpy as np

from pertinent.recipes._stopping import Patience, popularity_ndcg


def test_popularity_ndcg_matches_a_brute_force_ranking() -> None:
    rng = np.random.default_rng(3)
    n_items, n_rows = 60, 400
    popularity = rng.integers(0, 12, n_items).astype(np.float32)  # many ties
    target = rng.integers(0, n_items, n_rows).astype(np.int64)
    seen_rows = [
        rng.choice(np.delete(np.arange(n_items), t), rng.integers(0, 8), replace=False)
        for t in target
    ]
    # Seen lists repeat items, as histories do.
    listed = [np.r_[s, s[: len(s) // 2]] for s in seen_rows]
    offsets = np.r_[0, np.cumsum([s.shape[0] for s in listed])].astype(np.int64)
    items = np.concatenate(listed).astype(np.int64)

    gains = []
    for t, seen in zip(target, seen_rows, strict=True):
        scores = popularity.astype(np.float64).copy()
        scores[seen] = -np.inf
        rank = int((scores > scores[t]).sum())  # ties in the target's favour, as evaluate
        gains.append(1.0 / np.log2(rank + 2.0) if rank < 10 else 0.0)

    assert np.isclose(popularity_ndcg(popularity, target, (offsets, items)), np.mean(gains))
    empty = (np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64))
    assert popularity_ndcg(popularity, np.empty(0, dtype=np.int64), empty) == 0.0


def test_patience_waits_for_the_floor_then_counts() -> None:
    p = Patience(patience=3, floor=0.004)
    # A long plateau at the noise floor never stops training ...
    curve = [0.001, 0.003, 0.002, 0.003, 0.001, 0.002, 0.0025, 0.003, 0.001]
    assert [p.update(s) for s in curve][:2] == [(True, False), (True, False)]
    assert p.bad == 0 and p.best == 0.003
    # ... but once the best has passed it, three epochs without a new best do.
    assert p.update(0.010) == (True, False)
    assert p.update(0.009) == (False, False)
    assert p.update(0.010) == (False, False)  # equal is no improvement
    assert p.update(0.008) == (False, True)


def test_patience_counts_from_the_first_epoch_above_the_floor() -> None:
    # The floor is popularity's NDCG: a network past it at once stops as before.
    p = Patience(patience=2, floor=0.02)
    assert [p.update(s) for s in (0.05, 0.04, 0.03)] == [
        (True, False),
        (False, False),
        (False, True),
    ]
