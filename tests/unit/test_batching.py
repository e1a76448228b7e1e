"""Concurrent recommend calls on one model, gathered into batches (serving/batching.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pertinent.recipes.base import BoolArray, Model, Query, Ranked
from pertinent.recipes.user_personalization import TrainingOptions, UserPersonalization
from pertinent.serving import batching
from pertinent.serving.batching import Batcher
from tests.recipes.contract import block_data

FAST = TrainingOptions(max_epochs=20, lr=1e-2, layers=1, validation_users=0, threads=1)


@pytest.fixture(scope="module")
def model() -> Model:
    recipe = UserPersonalization(
        UserPersonalization.Params.model_validate({"hidden_dimension": "32", "bptt": "8"}),
        FAST,
    )
    return recipe.fit(block_data())


class Held(Model):
    """The real model, its first batch held until the test lets it go: later calls
    must then queue behind it and run as one batch."""

    batches = True

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.n_items = inner.n_items
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sizes: list[int] = []

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        return self.recommend_many([query], [n], [allowed])[0]

    def recommend_many(
        self, queries: Sequence[Query], n: Sequence[int], allowed: Sequence[BoolArray | None]
    ) -> list[Ranked]:
        self.sizes.append(len(queries))
        if len(self.sizes) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if any(q.user == -1 for q in queries):
            raise ValueError("bad query")
        return self.inner.recommend_many(queries, n, allowed)

    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path) -> Model:
        raise NotImplementedError


def query(user: int) -> Query:
    return Query(user=user, history=np.asarray([user % 20, (user + 1) % 20], dtype=np.int32))


def test_concurrent_calls_queue_into_one_batch(model: Model) -> None:
    held = Held(model)
    batcher = Batcher(held, runners=1)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.recommend, query(0), 5)
        assert held.entered.wait(10)
        rest = [pool.submit(batcher.recommend, query(u), 5) for u in range(1, 7)]
        while len(batcher._queue) < 6:  # the six are waiting behind the held batch
            threading.Event().wait(0.01)
        held.release.set()
        answers = [first.result(10)] + [f.result(10) for f in rest]
    assert held.sizes == [1, 6]
    assert (batcher.batches, batcher.requests) == (2, 7)
    for user, got in enumerate(answers):
        assert got.items.tolist() == model.recommend(query(user), 5).items.tolist()


def test_a_failing_query_fails_only_itself(model: Model) -> None:
    held = Held(model)
    batcher = Batcher(held, runners=1)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.recommend, query(0), 5)
        assert held.entered.wait(10)
        bad = pool.submit(batcher.recommend, Query(user=-1), 5)
        good = pool.submit(batcher.recommend, query(3), 5)
        while len(batcher._queue) < 2:
            threading.Event().wait(0.01)
        held.release.set()
        assert first.result(10).items.size == 5
        with pytest.raises(ValueError, match="bad query"):
            bad.result(10)
        assert good.result(10).items.tolist() == model.recommend(query(3), 5).items.tolist()


def test_many_threads_get_their_own_answers(model: Model) -> None:
    batcher = Batcher(model)
    users = list(range(200))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda u: batcher.recommend(query(u), 5), users))
    assert batcher.requests == len(users)
    for user, got in zip(users, answers, strict=True):
        assert got.items.tolist() == model.recommend(query(user), 5).items.tolist()


def test_models_that_do_not_batch_are_called_directly(model: Model) -> None:
    class Plain(Held):
        batches = False

    plain = Plain(model)
    plain.release.set()
    batching.recommend(plain, query(1), 3)
    assert plain not in batching._batchers
    assert (
        batching.recommend(model, query(1), 3).items.tolist()
        == model.recommend(query(1), 3).items.tolist()
    )
    assert model in batching._batchers
