"""Concurrent requests to one model answered together (``Model.recommend_many``).

Requests run in a thread pool. A model whose ``batches`` is set (the sequence models:
their cost is one read of a 100k x 64 item table, shared by a whole batch) gets a
``Batcher``: the first request that finds the model idle runs alone at once, so an
idle server adds no wait; requests that arrive while a batch runs queue up, and when
it ends the oldest of them runs the queue as the next batch. Batches grow with load
and each request waits for at most one batch ahead of its own (group commit, as
databases flush their logs).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

from pertinent.recipes.base import BoolArray, Model, Query, Ranked

__all__ = ["Batcher", "recommend"]

MAX_BATCH = 32
RUNNERS = 2

_batchers: weakref.WeakKeyDictionary[Model, Batcher] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def recommend(model: Model, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
    """``model.recommend``, batched with concurrent requests where the model gains by it."""
    if not model.batches:
        return model.recommend(query, n, allowed)
    batcher = _batchers.get(model)
    if batcher is None:
        with _lock:
            batcher = _batchers.setdefault(model, Batcher(model))
    return batcher.recommend(query, n, allowed)


@dataclass(eq=False)
class _Call:
    query: Query
    n: int
    allowed: BoolArray | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Ranked | None = None
    error: BaseException | None = None
    # Set when this call is handed the next batch to run (itself first).
    batch: list[_Call] | None = None


class Batcher:
    def __init__(self, model: Model, max_batch: int = MAX_BATCH, runners: int = RUNNERS) -> None:
        self.model = model
        self.max_batch = max_batch
        self.runners = runners
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._running = 0
        self.batches = 0  # batches run, and the requests in them: for tests and benchmarks
        self.requests = 0

    def recommend(self, query: Query, n: int, allowed: BoolArray | None = None) -> Ranked:
        call = _Call(query, n, allowed)
        with self._lock:
            lead = self._running < self.runners
            if lead:
                self._running += 1
            else:
                self._queue.append(call)
        if lead:
            self._run([call])
        else:
            call.done.wait()
            if call.batch is not None:
                self._run(call.batch)
        if call.error is not None:
            raise call.error
        assert call.result is not None
        return call.result

    def _run(self, batch: list[_Call]) -> None:
        self._answer(batch)
        with self._lock:
            self.batches += 1
            self.requests += len(batch)
            following = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if not following:
                self._running -= 1
        if following:
            # The next batch is run by its oldest request's thread, not this one: this
            # request's answer is ready and must not wait behind other people's.
            following[0].batch = following
            following[0].done.set()
        for call in batch[1:]:
            call.done.set()

    def _answer(self, batch: Sequence[_Call]) -> None:
        try:
            ranked = self.model.recommend_many(
                [c.query for c in batch], [c.n for c in batch], [c.allowed for c in batch]
            )
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One bad request must not fail the others: answer each on its own.
            for call in batch:
                self._answer([call])
            return
        for call, result in zip(batch, ranked, strict=True):
            call.result = result
