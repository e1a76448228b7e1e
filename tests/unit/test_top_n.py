"""``recipes.base.top_n``: the n best, ties to the lower index, across the cut too."""

from __future__ import annotations

import numpy as np
import pytest

from pertinent.recipes.base import top_n


def reference(scores: np.ndarray, n: int, allowed: np.ndarray | None) -> list[int]:
    keep = np.arange(scores.shape[0]) if allowed is None else np.flatnonzero(allowed)
    order = sorted(keep.tolist(), key=lambda i: (-float(scores[i]), i))
    return order[:n]


@pytest.mark.parametrize("size", [7, 300, 5_000, 100_003])
@pytest.mark.parametrize("levels", [3, 50, 0])
def test_top_n_is_the_stable_sort_of_the_scores(size: int, levels: int) -> None:
    rng = np.random.default_rng(size + levels)
    for trial in range(6):
        # Few distinct levels: ties everywhere, the cut among them. 0: all distinct.
        raw = rng.integers(0, levels, size) if levels else rng.permutation(size)
        scores = raw.astype(np.float32 if trial % 2 else np.float64)
        allowed = rng.random(size) < 0.7 if trial >= 3 else None
        for n in (1, 5, 25, size - 1, size + 2):
            got = top_n(scores, n, allowed).tolist()
            assert got == reference(scores, n, allowed), (size, levels, trial, n)


def test_disallowed_items_never_fill_the_list() -> None:
    scores = np.full(20_000, -np.inf, dtype=np.float32)
    allowed = np.zeros(20_000, dtype=bool)
    allowed[[5, 9_000]] = True
    assert top_n(scores, 10, allowed).tolist() == [5, 9_000]
