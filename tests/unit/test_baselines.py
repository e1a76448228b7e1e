"""The quality benchmark's baselines (bench/baselines): small, exact checks on toy data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from bench.baselines import (
    Baseline,
    coordinate_search,
    gram_matrix,
    history_matrix,
    user_item_matrix,
)
from bench.baselines.harness import personalize_metrics, ranked_from_scores
from bench.baselines.ials import IALS
from bench.baselines.recbole_models import DUMMY, export_split, fingerprint
from bench.baselines.simple import EASE, ItemKNN, Popularity, ease_weights

from pertinent.evaluation.loo import evaluate_loo, leave_last_out, repeat_targets
from pertinent.evaluation.split import split_users
from pertinent.recipes.base import Interactions, Query, TrainingData


def make_data(rows: list[tuple[int, int]], n_users: int, n_items: int) -> TrainingData:
    """Interactions from (user, item) pairs, in order; timestamps are the row numbers."""
    user = np.array([u for u, _ in rows], dtype=np.int32)
    item = np.array([i for _, i in rows], dtype=np.int32)
    order = np.argsort(user, kind="stable")
    inter = Interactions(
        user=user[order],
        item=item[order],
        timestamp=np.arange(len(rows), dtype=np.int64)[order],
        n_users=n_users,
        n_items=n_items,
    )
    return TrainingData(inter)


TOY = make_data(
    [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (2, 0), (2, 2), (2, 4), (3, 3), (3, 4)],
    n_users=4,
    n_items=5,
)


def random_data(seed: int = 0, n_users: int = 60, n_items: int = 25) -> TrainingData:
    rng = np.random.default_rng(seed)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.integers(0, n_items, 8)]
    return make_data(rows, n_users, n_items)


def test_ease_matches_its_closed_form() -> None:
    x = user_item_matrix(TOY).toarray().astype(np.float64)
    lam = 2.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(5))
    expected = np.eye(5) - p / np.diag(p)[None, :]  # B = I - P diagMat(1 / diag(P))
    got = ease_weights(gram_matrix(user_item_matrix(TOY)).copy(order="F"), lam)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.all(np.diag(got) == 0.0)

    model = EASE(l2=lam)
    model.fit(TOY)
    scores = model.score([Query(history=np.array([0, 2], dtype=np.int32))])
    np.testing.assert_allclose(scores[0], expected[0] + expected[2], atol=1e-5)


@pytest.mark.parametrize("block_bytes", [16, 1 << 20])
def test_gram_matrix_both_paths(block_bytes: int) -> None:
    x = user_item_matrix(random_data())
    dense = x.toarray()
    np.testing.assert_allclose(gram_matrix(x, block_bytes), dense.T @ dense)
    # A very sparse tall matrix takes the sparse x dense path.
    tall = user_item_matrix(random_data(n_users=3000, n_items=40))
    np.testing.assert_allclose(gram_matrix(tall, block_bytes), tall.toarray().T @ tall.toarray())


def test_item_knn_decay_by_hand() -> None:
    model = ItemKNN(history=2, decay=0.5, shrink=0.0, neighbors=0)
    model.fit(TOY)
    x = user_item_matrix(TOY).toarray()
    co = x.T @ x
    n = np.sqrt(np.diag(co))
    sim = co / np.outer(n, n)
    np.fill_diagonal(sim, 0.0)
    # History 0, 1, 3: only the newest two count, the older one at half weight.
    scores = model.score([Query(history=np.array([0, 1, 3], dtype=np.int32))])
    np.testing.assert_allclose(scores[0], sim[3] + 0.5 * sim[1], rtol=1e-6)


def test_item_knn_keeps_k_neighbours_and_shrinks() -> None:
    model = ItemKNN(history=1, neighbors=2, shrink=1.0)
    model.fit(random_data())
    assert np.all(np.count_nonzero(model.sim, axis=1) <= 2)
    full = ItemKNN(history=1, neighbors=0, shrink=0.0)
    full.fit(random_data())
    assert np.all(model.sim.max(axis=1) < full.sim.max(axis=1) + 1e-7)


def test_history_matrix_last_and_decay() -> None:
    q = Query(history=np.array([4, 2, 4, 1], dtype=np.int32))
    weights = history_matrix([q], 5, binary=False, last=3, decay=0.5).toarray()[0]
    # Newest first: 1 -> 1, 4 -> 0.5, 2 -> 0.25; the oldest 4 is beyond last=3.
    np.testing.assert_allclose(weights, [0, 1.0, 0.25, 0, 0.5])
    binary = history_matrix([q], 5).toarray()[0]
    np.testing.assert_allclose(binary, [0, 1, 1, 0, 1])


@pytest.mark.parametrize("cls", [Popularity, ItemKNN, EASE, IALS])
def test_scores_shape_and_seen_items_left_to_the_evaluator(cls: type[Baseline]) -> None:
    data = random_data()
    model = cls(seed=0, **({"factors": 8, "iterations": 3} if cls is IALS else {}))
    model.fit(data)
    queries = [Query(history=np.array([1, 2, 3], dtype=np.int32)), Query()]
    scores = model.score(queries)
    assert scores.shape == (2, data.n_items)
    assert scores.dtype == np.float32
    # Baselines never hide the query's history: every score is finite.
    assert np.all(np.isfinite(scores))


class InputFirst(Baseline):
    """Scores the user's own input highest, and the item after the newest one next when
    ``follow`` is set."""

    name: ClassVar[str] = "input-first"
    follow: ClassVar[bool] = False

    def fit(self, train: TrainingData) -> None:
        self.n_items = train.n_items

    def score(self, queries: Any) -> Any:
        out = np.zeros((len(queries), self.n_items), dtype=np.float32)
        for r, q in enumerate(queries):
            out[r, q.history] = 10.0
            if self.follow:
                out[r, (q.history[-1] + 1) % self.n_items] = 5.0
        return out


def test_evaluator_removes_seen_items_for_a_baseline() -> None:
    class SeenFirst(InputFirst):
        follow: ClassVar[bool] = True

    # Every user walks items in order: the target always follows the newest item.
    rows = [(u, (u + k) % 7) for u in range(5) for k in range(4)]
    data = make_data(rows, n_users=5, n_items=7)
    _, test = leave_last_out(data)
    model = SeenFirst()
    model.fit(test.train)
    assert evaluate_loo(model.score, test, seed=0)["hr@10"] == 1.0
    assert evaluate_loo(model.score, test, seed=0, exclude_seen=True)["mrr"] == 1.0
    kept = evaluate_loo(model.score, test, seed=0, exclude_seen=False)
    assert kept["mrr"] < 1.0


def test_a_repeat_target_is_not_evaluated_when_seen_items_are_removed() -> None:
    # Users 0-2 end on an item they had before (0 1 2 3 0); users 3-5 on a new one.
    rows = [(u, i) for u in range(3) for i in (0, 1, 2, 3, 0)]
    rows += [(u, i) for u in range(3, 6) for i in (0, 1, 2, 3, 4)]
    data = make_data(rows, n_users=6, n_items=8)
    _, test = leave_last_out(data)
    assert repeat_targets(test).tolist() == [True] * 3 + [False] * 3
    model = InputFirst()  # no signal about which new item comes next
    model.fit(test.train)
    removed = evaluate_loo(model.score, test, seed=0, exclude_seen=True)
    # Only the three new targets count, and knowing the input gives no free hit on them:
    # 4 unseen items tie, so the hit rate is the chance one.
    assert removed["users"] == 3.0
    assert removed["mrr"] < 0.6
    kept = evaluate_loo(model.score, test, seed=0, exclude_seen=False)
    assert kept["users"] == 6.0


def test_personalize_ranking_excludes_history_only_when_asked() -> None:
    data = random_data(n_users=100)
    split = split_users(data, seed=1)
    model = Popularity()
    model.fit(split.train)
    kept = ranked_from_scores(model.score, split, exclude_history=False)
    removed = ranked_from_scores(model.score, split, exclude_history=True)
    assert kept.shape == removed.shape == (len(split), 25)
    for k in range(len(split)):
        assert not np.isin(removed[k], split.history(k)).any()
    # Popularity gives everyone the same list when nothing is removed.
    assert (kept == kept[0]).all()
    metrics = personalize_metrics(kept, split)
    assert set(metrics) == {"ndcg@10", "precision@10", "mrr@25", "coverage"}
    assert metrics["coverage"] == pytest.approx(25 / data.n_items)


def test_coordinate_search_budget_and_order() -> None:
    class Toy(Baseline):
        name: ClassVar[str] = "toy"
        SPACE: ClassVar[dict[str, tuple[Any, ...]]] = {"a": (1, 2, 3), "b": (10, 20, 30)}
        DEFAULT: ClassVar[dict[str, Any]] = {"a": 1, "b": 10}

        def fit(self, train: TrainingData) -> None: ...

        def score(self, queries: Any) -> Any: ...

    def value(p: dict[str, Any]) -> float:
        return -abs(p["a"] - 2) - abs(p["b"] - 30)

    trials = coordinate_search(Toy, value, budget=12)
    assert trials[0][0] == {"a": 1, "b": 10}
    assert max(trials, key=lambda t: t[1])[0] == {"a": 2, "b": 30}
    assert len(trials) == 5  # default + 2 values of a + 2 values of b
    assert len(coordinate_search(Toy, value, budget=2)) == 2


def test_recbole_export_format(tmp_path: Path) -> None:
    data = make_data([(0, 3), (1, 2), (0, 1), (1, 0), (0, 2), (1, 4)], n_users=2, n_items=5)
    val, test = leave_last_out(data)
    queries = [test.query(k) for k in range(len(test))]
    export_split(tmp_path, "split", test.train, queries)

    lines = (tmp_path / "split" / "split.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\ttimestamp:float"
    rows = [line.split("\t") for line in lines[1:]]
    # Training rows only (the test targets 2 and 4 are held out), per user in time order,
    # each sequence closed by the dummy row RecBole holds out, and strictly increasing
    # timestamps so RecBole's sort can't reorder anything.
    assert [(u, i) for u, i, _ in rows] == [
        ("0", "3"), ("0", "1"), ("0", DUMMY), ("1", "2"), ("1", "0"), ("1", DUMMY),
    ]  # fmt: skip
    assert [float(t) for _, _, t in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]

    with np.load(tmp_path / "queries.npz") as arrays:
        assert arrays["offsets"].tolist() == [0, 2, 4]
        assert arrays["items"].tolist() == [3, 1, 2, 0]
    assert json.loads((tmp_path / "meta.json").read_text()) == {"n_items": 5}
    # The cache key changes with the data and with the queries.
    assert fingerprint(test.train, queries) != fingerprint(val.train, queries)
    assert fingerprint(test.train, queries) != fingerprint(test.train, queries[:1])
