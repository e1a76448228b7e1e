"""Concurrent recommend calls on one model, gathered into batches (serving/batching.py)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Callable, Sequence
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
    """The real model, its first batch held until the test lets it go: later requests
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


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_requests_queue_behind_a_busy_runner_and_run_as_one_batch(model: Model) -> None:
    held = Held(model)

    async def scenario() -> list[Ranked]:
        batcher = Batcher(held, asyncio.get_running_loop(), runners=1)
        first = asyncio.ensure_future(batcher.recommend(query(0), 5, None))
        await _until(held.entered.is_set)
        rest = [asyncio.ensure_future(batcher.recommend(query(u), 5, None)) for u in range(1, 7)]
        await _until(lambda: len(batcher.pending) == 6)
        held.release.set()
        answers = await asyncio.gather(first, *rest)
        assert (batcher.batches, batcher.requests) == (2, 7)
        return answers

    answers = asyncio.run(scenario())
    assert held.sizes == [1, 6]
    for user, got in enumerate(answers):
        assert got.items.tolist() == model.recommend(query(user), 5).items.tolist()


def test_a_failing_query_fails_only_itself(model: Model) -> None:
    held = Held(model)

    async def scenario() -> None:
        batcher = Batcher(held, asyncio.get_running_loop(), runners=1)
        first = asyncio.ensure_future(batcher.recommend(query(0), 5, None))
        await _until(held.entered.is_set)
        bad = asyncio.ensure_future(batcher.recommend(Query(user=-1), 5, None))
        good = asyncio.ensure_future(batcher.recommend(query(3), 5, None))
        await _until(lambda: len(batcher.pending) == 2)
        held.release.set()
        assert (await first).items.size == 5
        with pytest.raises(ValueError, match="bad query"):
            await bad
        assert (await good).items.tolist() == model.recommend(query(3), 5).items.tolist()

    asyncio.run(scenario())


def test_many_requests_get_their_own_answers(model: Model) -> None:
    users = list(range(200))

    async def scenario() -> list[Ranked]:
        return await asyncio.gather(*(batching.recommend(model, query(u), 5) for u in users))

    answers = asyncio.run(scenario())
    for user, got in zip(users, answers, strict=True):
        assert got.items.tolist() == model.recommend(query(user), 5).items.tolist()
    batcher = batching._batchers[model]
    assert batcher.requests == len(users) and batcher.batches < len(users)


def test_models_that_do_not_batch_are_answered_on_the_loop(model: Model) -> None:
    class Plain(Held):
        batches = False

    plain = Plain(model)
    plain.release.set()
    asyncio.run(batching.recommend(plain, query(1), 3))
    assert plain not in batching._batchers


def test_a_freed_runner_waits_for_the_clients_it_just_answered(model: Model) -> None:
    held = Held(model)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = Batcher(held, loop, runners=1, wait=5.0)
        started = loop.time()
        first = asyncio.ensure_future(batcher.recommend(query(0), 5, None))
        await _until(held.entered.is_set)  # a quiet server scores at once
        assert loop.time() - started < 1.0
        rest = [asyncio.ensure_future(batcher.recommend(query(u), 5, None)) for u in (1, 2)]
        await _until(lambda: len(batcher.pending) == 2)
        held.release.set()
        await first
        assert batcher.batches == 1  # the two queued wait for the first's client ...
        back = asyncio.ensure_future(batcher.recommend(query(3), 5, None))
        await asyncio.gather(*rest, back)  # ... and all three run as one batch, unwaited
        assert held.sizes == [1, 3] and loop.time() - started < 4.0

    asyncio.run(scenario())


def test_the_wait_is_bounded_and_a_quiet_server_does_not_wait(model: Model) -> None:
    held = Held(model)

    async def timed(batcher: Batcher, user: int) -> float:
        started = batcher.loop.time()
        await batcher.recommend(query(user), 5, None)
        return batcher.loop.time() - started

    async def scenario() -> None:
        batcher = Batcher(held, asyncio.get_running_loop(), runners=1, wait=0.2)
        first = asyncio.ensure_future(timed(batcher, 0))
        await _until(held.entered.is_set)
        rest = [asyncio.ensure_future(timed(batcher, u)) for u in (1, 2)]
        await _until(lambda: len(batcher.pending) == 2)
        held.release.set()
        # The two queued wait for the first's client, which never comes back: they run
        # together once the wait is over.
        waited = await asyncio.gather(*rest)
        await first
        assert held.sizes == [1, 2] and min(waited) >= 0.2
        # Without the quiet rule a lone request would now wait for two more (the batch
        # just answered); answered more than ten waits ago, it runs at once.
        await asyncio.sleep(2.1)
        assert await timed(batcher, 3) < 0.15
        assert held.sizes == [1, 2, 1]

    asyncio.run(scenario())


def test_no_wait_when_the_wait_is_zero(model: Model) -> None:
    held = Held(model)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = Batcher(held, loop, runners=1, wait=0.0)
        first = asyncio.ensure_future(batcher.recommend(query(0), 5, None))
        await _until(held.entered.is_set)
        rest = [asyncio.ensure_future(batcher.recommend(query(u), 5, None)) for u in (1, 2)]
        await _until(lambda: len(batcher.pending) == 2)
        held.release.set()
        await first
        assert batcher.batches == 2  # launched as the first batch ended, not later
        await asyncio.gather(*rest)
        assert held.sizes == [1, 2]

    asyncio.run(scenario())


def test_a_batcher_does_not_keep_its_model_alive(model: Model) -> None:
    async def scenario(held: Held) -> None:
        await batching.recommend(held, query(1), 3)

    held = Held(model)
    held.release.set()
    asyncio.run(scenario(held))
    assert held in batching._batchers
    alive = weakref.ref(held)
    del held
    # The executor's worker drops its work item (which holds the model) just after it
    # sets the result the loop awaited: give it a moment before calling the model kept.
    deadline = time.monotonic() + 5.0
    while alive() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert alive() is None


def test_the_servers_wait_reaches_the_models_batcher(model: Model) -> None:
    # runtime.get_recommendations passes Settings.batch_wait_ms, not an import-time read.
    held = Held(model)
    held.release.set()
    asyncio.run(batching.recommend(held, query(1), 3, wait=0.004))
    assert batching._batchers[held].wait == 0.004
