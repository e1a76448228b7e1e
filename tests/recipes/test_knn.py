"""The blend's neighbour models: EASE weights against the closed form, and the choice."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pertinent.recipes._knn import EASE_L2, ItemKNN, choose_blend, neighbour_models


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


def test_candidates_include_ease_only_for_small_catalogues() -> None:
    user, item = _interactions()
    keep = np.ones(user.shape[0], dtype=bool)
    names = [name for name, _ in neighbour_models(user, item, keep, 200, 40)]
    assert names == ["cosine", *(f"ease(l2={l2:g})" for l2 in EASE_L2)]
    big = neighbour_models(user, item, keep, 200, 9_000)
    assert [name for name, _ in big] == ["cosine"]


def test_choose_blend_takes_the_best_and_the_first_among_ties() -> None:
    a, b = ItemKNN(sp.eye(3, format="csr")), ItemKNN(sp.eye(3, format="csr") * 2)
    weights = (0.0, 0.5, 1.0)
    by = {id(a): np.array([0.1, 0.3, 0.2]), id(b): np.array([0.1, 0.4, 0.4])}
    assert choose_blend([("a", a), ("b", b)], lambda k: by[id(k)], weights, False) == (b, 0.5)
    by[id(b)] = np.array([0.1, 0.3, 0.3])
    assert choose_blend([("a", a), ("b", b)], lambda k: by[id(k)], weights, False) == (a, 0.5)
    flat = {id(a): np.array([0.3, 0.2, 0.1]), id(b): np.array([0.3, 0.1, 0.0])}
    assert choose_blend([("a", a), ("b", b)], lambda k: flat[id(k)], weights, False) == (None, 0.0)
