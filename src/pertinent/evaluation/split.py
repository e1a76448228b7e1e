"""Personalize's offline-evaluation split (spec §12.1).

For every recipe type but USER_SEGMENTATION Personalize splits **users**: a random
10 % of them are test users, the other 90 % with all their interactions are the
training set. After training, each test user's oldest 90 % of interactions (by
timestamp) are the model's input and the newest 10 % are the "relevant" items the
metrics look for.

Details the docs leave open, and what we chose:

* Users with fewer than 2 interactions can't give both an input and a relevant item,
  so they always stay in training.
* The number of test users is 10 % of the users that have any interaction (rounded
  half up), at most the number of eligible users, and at least 1 when anyone is
  eligible and there are 2 or more active users.
* A user with ``L`` interactions gives ``floor(0.9 L)`` of them as input, clipped so
  that input and relevant each get at least one (L = 10 → 9 + 1, L = 25 → 22 + 3).
* Relevant items are a set: an item repeated among the newest interactions counts once.
* The draw is ``numpy.random.default_rng(seed)``: same data and seed, same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pertinent.recipes.base import IntArray, Interactions, Query, TrainingData

__all__ = ["TEST_USER_FRACTION", "UserSplit", "split_users"]

TEST_USER_FRACTION = 0.1
"""Share of users held out for testing (spec §12.1)."""

# Input share of a test user's history, as a fraction num / den; integer arithmetic
# avoids 0.9 * L landing a hair below an integer.
_INPUT_NUM, _INPUT_DEN = 9, 10


@dataclass(frozen=True)
class UserSplit:
    """The training set and, for each test user, input history and relevant items.

    ``history_items[history_offsets[k]:history_offsets[k+1]]`` is the input of test
    user ``test_users[k]``, oldest first; ``relevant_items`` with ``relevant_offsets``
    likewise holds the sorted, distinct relevant items. ``history_times`` are the
    input's timestamps.
    """

    train: TrainingData
    test_users: IntArray
    history_offsets: npt.NDArray[np.int64]
    history_items: IntArray
    relevant_offsets: npt.NDArray[np.int64]
    relevant_items: IntArray
    history_times: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.test_users.shape[0])

    def history(self, k: int) -> IntArray:
        """The input history of the k-th test user, oldest first."""
        return self.history_items[self.history_offsets[k] : self.history_offsets[k + 1]]

    def query(self, k: int) -> Query:
        """The k-th test user's request: their input and its times."""
        lo, hi = self.history_offsets[k], self.history_offsets[k + 1]
        return Query(
            history=self.history_items[lo:hi],
            history_times=self.history_times[lo:hi],
            time=int(self.history_times[hi - 1]) if hi > lo else None,
        )

    def relevant(self, k: int) -> IntArray:
        """The distinct relevant items of the k-th test user, sorted by index."""
        return self.relevant_items[self.relevant_offsets[k] : self.relevant_offsets[k + 1]]


def split_users(data: TrainingData, *, seed: int) -> UserSplit:
    """Split ``data`` by users as Personalize does; deterministic in ``seed``.

    The training set keeps the full index space (``n_users``, ``n_items``), so indices
    mean the same in training and testing; test users simply have no rows in it.
    """
    inter = _sorted_by_user_and_time(data.interactions)
    lengths = np.bincount(inter.user, minlength=inter.n_users)
    active = int(np.count_nonzero(lengths))
    eligible = np.flatnonzero(lengths >= 2).astype(np.int32)

    n_test = 0
    if eligible.shape[0] > 0 and active >= 2:
        wanted = int(np.floor(TEST_USER_FRACTION * active + 0.5))
        n_test = min(eligible.shape[0], max(1, wanted))
    rng = np.random.default_rng(seed)
    test_users = np.sort(rng.choice(eligible, size=n_test, replace=False)).astype(np.int32)

    is_test = np.zeros(inter.n_users, dtype=bool)
    is_test[test_users] = True
    train = TrainingData(
        interactions=_subset(inter, ~is_test[inter.user]),
        seed=data.seed,
        item_creation_time=data.item_creation_time,
        extra=data.extra,
    )

    offsets = inter.user_offsets()
    starts = offsets[test_users]
    sizes = lengths[test_users].astype(np.int64)
    n_input = np.clip((sizes * _INPUT_NUM) // _INPUT_DEN, 1, sizes - 1)

    history_offsets = _offsets(n_input)
    history_rows = _ranges(starts, n_input)
    history_items = inter.item[history_rows].astype(np.int32)

    # Newest rows of each test user, de-duplicated per user via (row, item) keys.
    newest = _ranges(starts + n_input, sizes - n_input)
    owner = np.repeat(np.arange(n_test, dtype=np.int64), sizes - n_input)
    keys = np.unique(owner * max(inter.n_items, 1) + inter.item[newest])
    relevant_owner = keys // max(inter.n_items, 1)
    relevant_items = (keys % max(inter.n_items, 1)).astype(np.int32)
    relevant_offsets = _offsets(np.bincount(relevant_owner, minlength=n_test).astype(np.int64))

    return UserSplit(
        train=train,
        test_users=test_users,
        history_offsets=history_offsets,
        history_items=history_items,
        relevant_offsets=relevant_offsets,
        relevant_items=relevant_items,
        history_times=inter.timestamp[history_rows].astype(np.int64),
    )


def _sorted_by_user_and_time(inter: Interactions) -> Interactions:
    """``inter`` in (user, timestamp, original order); itself when already so."""
    order = np.lexsort((inter.timestamp, inter.user))  # lexsort is stable
    if np.array_equal(order, np.arange(order.shape[0])):
        return inter
    return _subset(inter, order)


def _subset(
    inter: Interactions, rows: npt.NDArray[np.bool_] | npt.NDArray[np.int64]
) -> Interactions:
    """The rows ``rows`` (a mask or indices) of every column, same index space."""
    return Interactions(
        user=inter.user[rows],
        item=inter.item[rows],
        timestamp=inter.timestamp[rows],
        n_users=inter.n_users,
        n_items=inter.n_items,
        event_type=None if inter.event_type is None else inter.event_type[rows],
        event_types=inter.event_types,
        event_value=None if inter.event_value is None else inter.event_value[rows],
    )


def _offsets(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _ranges(starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    first = _offsets(lengths)[:-1]
    return np.arange(total, dtype=np.int64) - np.repeat(first - starts, lengths)
