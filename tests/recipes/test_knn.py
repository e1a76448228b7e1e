"""The blend's neighbour models: EASE weights against the closed form, and the choice."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pertinent.recipes._knn import EASE_L2, Builder, ItemKNN, choose_blend, neighbour_models


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
    names = [name for name, _ in neighbour_models(user, item, 200, 40)]
    assert names == ["cosine", *(f"ease(l2={l2:g})" for l2 in EASE_L2)]
    assert [name for name, _ in neighbour_models(user, item, 200, 9_000)] == ["cosine"]


def test_ease_keeps_its_decay_through_save(tmp_path: object) -> None:
    user, item = _interactions()
    build = dict(neighbour_models(user, item, 200, 40))["ease(l2=30)"]
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

    scores = {"a": np.array([0.1, 0.3, 0.2]), "b": np.array([0.1, 0.4, 0.4])}

    def ndcg_of(knn: ItemKNN) -> npt.NDArray[np.float64]:
        # Build number n made a matrix of 1 + n: it says which candidate this is.
        return scores[built[int(knn.matrix.data[0]) - 2][0]]

    fit_rows, all_rows = np.array([True, False, True]), np.ones(3, dtype=bool)
    candidates = [("a", builder("a")), ("b", builder("b"))]
    knn, beta = choose_blend(candidates, fit_rows, all_rows, ndcg_of, (0.0, 0.5, 1.0), False)
    assert beta == 0.5 and knn is not None
    assert built == [("a", 2), ("b", 2), ("b", 3)]  # the winner, rebuilt on every row
    # Ties go to the earlier candidate; no gain over weight 0 means no blend.
    scores["b"] = scores["a"]
    built.clear()
    choose_blend(candidates, fit_rows, all_rows, ndcg_of, (0.0, 0.5, 1.0), False)
    assert built[-1] == ("a", 3)
    scores["a"] = scores["b"] = np.array([0.3, 0.2, 0.1])
    assert choose_blend(candidates, fit_rows, all_rows, ndcg_of, (0.0, 0.5, 1.0), False) == (
        None,
        0.0,
    )
