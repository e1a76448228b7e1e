"""Concurrent requests to one model answered together (``Model.recommend_many``).

A model whose ``batches`` is set (the sequence models: their cost is one read of a
100k x 64 item table, which a whole batch can share) is called from a ``Batcher`` on
the server's event loop. The loop keeps doing each request's own work (parsing, live
events, filters, the JSON answer) while ``RUNNERS`` threads score: the first request
that finds a runner free is scored at once, alone, so an idle server adds no wait;
requests that arrive while the runners are busy queue up, and the next free runner
takes the whole queue as one batch. Batches grow with load, and a request waits for at
most one batch ahead of its own (group commit, as databases flush their logs).

Under load a batch's clients come back together: each gets its answer, sends its next
request, and that request is parsed a fraction of a millisecond later. Launched at once,
the next batch would take only the first of them and the rest would queue behind it, so
batches settled at half the requests in flight, each paying the whole read of the table.
A runner that frees up therefore waits up to ``PERTINENT_BATCH_WAIT_MS`` (1 ms) until the
queue holds as many requests as the batch it just answered plus those already queued,
as Triton's dynamic batcher and TF-Serving's ``batch_timeout_micros`` wait for a fuller
batch. A request that finds the server quiet (no batch answered within the last ten
waits) is scored at once. uvloop's timers count whole milliseconds: 0.7 waits 1 ms and
anything under 0.5 one turn of the loop.

Running request handlers in a thread pool instead was tried: sixteen threads taking
turns at the GIL left batches of two and one busy core.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pertinent.recipes.base import BoolArray, Model, Query, Ranked

__all__ = ["Batcher", "recommend"]

MAX_BATCH = 32
# The event loop keeps a core; the others score (torch and BLAS on one core each). On
# 2 cores one runner beat two: 570 against 497 req/s at 4 connections, p99 9.3 against
# 13.8 ms, the same throughput at 16; two runners fought over the GIL and the memory
# bus, each batch taking twice its CPU time in wall time.
RUNNERS = max(1, (os.cpu_count() or 2) - 1)
# 1 ms: bench/serve.py --scenario up on 2 cores went from 434 / 475 to 559 / 727 req/s
# at 4 / 8 connections (one process) and from 705 / 883 to 811 / 1,265 (two); a timer
# of under 0.5 ms (no wait under uvloop) gained little, 2 ms no more. The server passes
# its ``Settings.batch_wait_ms`` (PERTINENT_BATCH_WAIT_MS).
WAIT = 0.001
_RETURN_WAITS = 10  # a batch answered this many waits ago is the server under load


def _one_core_each() -> None:
    """Each scoring thread's torch and BLAS kernels run on one core: the runners already
    fill the cores, and a small sgemm split over busy cores took 5.7 ms instead of 0.4."""
    import torch
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


# Threads start, and torch loads, only when a batching model is first asked.
_executor = ThreadPoolExecutor(
    max_workers=RUNNERS, thread_name_prefix="pertinent-score", initializer=_one_core_each
)
_batchers: weakref.WeakKeyDictionary[Model, Batcher] = weakref.WeakKeyDictionary()


async def recommend(
    model: Model,
    query: Query,
    n: int,
    allowed: BoolArray | None = None,
    *,
    wait: float = WAIT,
) -> Ranked:
    """``model.recommend``: batched with concurrent requests where the model gains by it,
    else answered at once on the event loop (cheap models: a thread hop would cost more
    than the answer). ``wait`` is the batch wait in seconds."""
    if not model.batches:
        return model.recommend(query, n, allowed)
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(model)
    if batcher is None or batcher.loop is not loop:
        batcher = _batchers[model] = Batcher(model, loop, wait=wait)
    return await batcher.recommend(query, n, allowed)


@dataclass(eq=False)
class _Call:
    query: Query
    n: int
    allowed: BoolArray | None
    future: asyncio.Future[Ranked]
    result: Ranked | None = None
    error: BaseException | None = None


class Batcher:
    """One model's queue on one event loop. Only the loop's thread touches its state."""

    def __init__(
        self,
        model: Model,
        loop: asyncio.AbstractEventLoop,
        runners: int = RUNNERS,
        max_batch: int = MAX_BATCH,
        wait: float = WAIT,
    ) -> None:
        # Weakly: ``_batchers`` is keyed weakly by the model, and a strong reference
        # from its value would keep every model ever served (each reload, each copy
        # with new items) alive. A request awaiting its answer holds the model.
        self._model = weakref.ref(model)
        self.loop = loop
        self.runners = runners
        self.max_batch = max_batch
        self.pending: list[_Call] = []
        self._running = 0
        self.wait = wait
        self.batches = 0  # batches run, and the requests in them: for tests and benchmarks
        self.requests = 0
        self._expect = 0  # requests of the batch last answered, likely back soon ...
        self._answered_at = float("-inf")  # ... if it was answered this recently
        self._timer: asyncio.TimerHandle | None = None

    async def recommend(self, query: Query, n: int, allowed: BoolArray | None) -> Ranked:
        call = _Call(query, n, allowed, self.loop.create_future())
        self.pending.append(call)
        self._next()
        return await call.future

    def _next(self) -> None:
        """Launches the queue on a free runner, or waits briefly for a fuller batch."""
        if not self.pending or self._running >= self.runners:
            return
        # Its clients' next requests come back within a few milliseconds (the answers
        # go out, the next requests are parsed, on this loop): 0.7 ms was too short.
        fresh = self.loop.time() - self._answered_at <= _RETURN_WAITS * self.wait
        if self.wait <= 0 or not fresh or len(self.pending) >= min(self._expect, self.max_batch):
            self._launch()
        elif self._timer is None:
            self._timer = self.loop.call_later(self.wait, self._waited)

    def _waited(self) -> None:
        self._timer = None
        if self.pending and self._running < self.runners:
            self._launch()

    def _launch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self.pending[: self.max_batch]
        del self.pending[: self.max_batch]
        model = self._model()
        assert model is not None  # the queued requests' handlers hold it
        self._running += 1
        self.batches += 1
        self.requests += len(batch)
        work = self.loop.run_in_executor(_executor, _answer, model, batch)
        work.add_done_callback(lambda _: self._finished(batch))

    def _finished(self, batch: Sequence[_Call]) -> None:
        self._running -= 1
        self._expect = len(batch) + len(self.pending)
        self._answered_at = self.loop.time()
        self._next()
        for call in batch:
            if call.future.done():  # its client went away
                continue
            if call.error is not None:
                call.future.set_exception(call.error)
            else:
                call.future.set_result(call.result)  # type: ignore[arg-type]


def _answer(model: Model, batch: Sequence[_Call]) -> None:
    """Runs on a scoring thread: fills in each call's result or error."""
    try:
        ranked = model.recommend_many(
            [c.query for c in batch], [c.n for c in batch], [c.allowed for c in batch]
        )
    except Exception as exc:
        if len(batch) == 1:
            batch[0].error = exc
            return
        # One bad request must not fail the others: answer each on its own.
        for call in batch:
            _answer(model, [call])
        return
    for call, result in zip(batch, ranked, strict=True):
        call.result = result
